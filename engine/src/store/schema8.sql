-- Attachments apart: an attachment whose encoded body can be written
-- again exactly from its content is cut out of the stored raw message,
-- which keeps the rest; `raw_at` says where in it the body goes back, and
-- `layout` how it is written (`plain`, or `base64:LINE:EOL:END`). NULL: the
-- body is still in the raw message (mail stored before, or a body that
-- could not be written again exactly).
ALTER TABLE mail_attachments ADD COLUMN raw_at INTEGER;
ALTER TABLE mail_attachments ADD COLUMN layout TEXT;
