-- Thread references: the Message-IDs each mail names in In-Reply-To and
-- References, received mail and mail Relais sent alike, so that a thread
-- is walked in both directions by index, across accounts.
CREATE TABLE mail_refs (
    message_id TEXT NOT NULL,
    ref        TEXT NOT NULL,
    PRIMARY KEY (message_id, ref)
) WITHOUT ROWID;
CREATE INDEX mail_refs_ref ON mail_refs(ref);
INSERT OR IGNORE INTO mail_refs (message_id, ref)
    SELECT m.message_id, j.value FROM mails AS m, json_each(m.in_reply_to) AS j;
INSERT OR IGNORE INTO mail_refs (message_id, ref)
    SELECT m.message_id, j.value FROM mails AS m, json_each(m.refs) AS j;

-- Mail Relais sent: the ids it answers, for the thread view.
ALTER TABLE outbox ADD COLUMN in_reply_to TEXT NOT NULL DEFAULT '[]';
ALTER TABLE outbox ADD COLUMN refs TEXT NOT NULL DEFAULT '[]';
CREATE INDEX outbox_request ON outbox(request);

-- Receipts (multipart/report): `delivery-status` or `disposition-notification`.
ALTER TABLE mails ADD COLUMN report TEXT;

-- How a mail came to its ticket: `rule` (a run) or `manual`.
ALTER TABLE mail_links ADD COLUMN how TEXT NOT NULL DEFAULT 'rule';

-- Requests by requester and by customer: the candidates of a manual link.
CREATE INDEX requests_requester ON requests(requester);
CREATE INDEX requests_customer ON requests(customer);
