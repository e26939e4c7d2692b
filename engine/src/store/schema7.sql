-- What a mail says, hashed (sender, date, subject, text, attachments),
-- apart from its transport headers: the same message fetched again is a
-- duplicate; a different mail that reuses a Message-ID is not. NULL for
-- mail stored before: taken as the same mail as any with its id.
ALTER TABLE mails ADD COLUMN fingerprint TEXT;
