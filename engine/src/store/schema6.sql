-- Exchanges with the customer on a request: mail received from the
-- customer on the request, mail sent to the customer as an exchange (a
-- reminder, typed `relance`), and exchanges recorded by hand (a call).
CREATE TABLE exchanges (
    id           INTEGER PRIMARY KEY,
    request      INTEGER NOT NULL REFERENCES requests(number),
    direction    TEXT NOT NULL CHECK (direction IN ('received', 'sent')),
    -- `relance` for a reminder, `message`, or a code of the desk's own.
    type         TEXT,
    -- The customer's side: the contact, when known, and the address used.
    contact      TEXT REFERENCES contacts(id),
    address      TEXT,
    -- Staff's side, when known.
    collaborator TEXT REFERENCES collaborators(id),
    subject      TEXT,
    body         TEXT NOT NULL DEFAULT '',
    -- The received mail, or the mail sent, it was recorded from.
    mail         INTEGER UNIQUE REFERENCES mails(id),
    outbox       INTEGER UNIQUE REFERENCES outbox(id),
    created_at   TEXT NOT NULL,
    run          INTEGER REFERENCES runs(id)
);
CREATE INDEX exchanges_request ON exchanges(request, created_at);

-- Why a received mail is automatic (out-of-office, list, bounce...), or
-- NULL when a person sent it: automatic mail is no exchange.
ALTER TABLE mails ADD COLUMN automatic TEXT;

-- Mail already on a ticket from someone who is not staff: received
-- exchanges (receipts are not).
INSERT INTO exchanges (request, direction, address, subject, mail, created_at, run)
    SELECT l.request, 'received', m.sender, m.subject, m.id, m.received_at, l.run
    FROM mail_links AS l JOIN mails AS m ON m.id = l.mail
    WHERE m.report IS NULL
      AND NOT EXISTS (SELECT 1 FROM collaborators AS c
                      WHERE c.email = m.sender COLLATE NOCASE OR c.email2 = m.sender COLLATE NOCASE);

-- Requests by state: what a scheduled check looks for.
CREATE INDEX requests_state ON requests(state);

-- The schedule a rule was armed with (its cron and time zone): a rule
-- whose schedule changed starts counting again; one whose schedule did
-- not keeps its arming, whatever else changed.
ALTER TABLE schedule_state ADD COLUMN schedule TEXT;
