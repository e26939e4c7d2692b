-- IMAP bookkeeping: per account, the mailbox's UIDVALIDITY and the last UID
-- whose processing committed (written in the same transaction).
CREATE TABLE imap_state (
    account     TEXT PRIMARY KEY,
    uidvalidity INTEGER NOT NULL,
    last_uid    INTEGER NOT NULL
);

-- Mails committed but not yet flagged \Seen (or moved) on their server:
-- flushed after each commit, and again after a crash.
CREATE TABLE imap_pending (
    account     TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL,
    uid         INTEGER NOT NULL,
    PRIMARY KEY (account, uidvalidity, uid)
);

-- Mail delivered to an IMAP account and processed, for the per-account
-- "delete from the server after N days" option.
CREATE TABLE imap_received (
    account     TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL,
    uid         INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (account, uidvalidity, uid)
);

-- Outbox: the recipient key of a failure notice, for its rate limit, and
-- the server's last answer.
ALTER TABLE outbox ADD COLUMN rate_key TEXT;
ALTER TABLE outbox ADD COLUMN answer TEXT;
CREATE INDEX outbox_rate ON outbox(rate_key, created_at);
CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
