-- Relais store, version 1.
-- Lists are JSON arrays in TEXT columns: they are read whole, never queried.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE companies (
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL
);

CREATE TABLE customers (
    code    TEXT PRIMARY KEY,
    name    TEXT NOT NULL,
    company TEXT NOT NULL REFERENCES companies(code)
);

CREATE TABLE sites (
    customer TEXT NOT NULL REFERENCES customers(code),
    code     TEXT NOT NULL,
    name     TEXT,
    main     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (customer, code)
);

CREATE TABLE alert_formats (
    customer TEXT NOT NULL REFERENCES customers(code),
    kind     TEXT NOT NULL,
    keyword  TEXT NOT NULL,
    template TEXT NOT NULL,
    PRIMARY KEY (customer, kind)
);

CREATE TABLE contacts (
    id        TEXT PRIMARY KEY,
    name      TEXT NOT NULL,
    customer  TEXT NOT NULL REFERENCES customers(code),
    site      TEXT,
    email     TEXT,
    email2    TEXT,
    reception TEXT NOT NULL,
    fax       TEXT,
    alerts    TEXT NOT NULL
);
CREATE INDEX contacts_email ON contacts(email COLLATE NOCASE);
CREATE INDEX contacts_email2 ON contacts(email2 COLLATE NOCASE);

CREATE TABLE collaborators (
    id     TEXT PRIMARY KEY,
    name   TEXT NOT NULL,
    email  TEXT,
    email2 TEXT,
    alerts TEXT NOT NULL
);
CREATE INDEX collaborators_email ON collaborators(email COLLATE NOCASE);
CREATE INDEX collaborators_email2 ON collaborators(email2 COLLATE NOCASE);

CREATE TABLE users (
    login        TEXT PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('internal', 'extranet')),
    collaborator TEXT REFERENCES collaborators(id),
    contact      TEXT REFERENCES contacts(id),
    rights       TEXT NOT NULL,
    catchmail    INTEGER NOT NULL,
    companies    TEXT NOT NULL
);
CREATE INDEX users_collaborator ON users(collaborator);
CREATE INDEX users_contact ON users(contact);

CREATE TABLE request_types (
    code      TEXT PRIMARY KEY,
    name      TEXT,
    catchmail INTEGER NOT NULL
);

CREATE TABLE contracts (
    code       TEXT PRIMARY KEY,
    customer   TEXT NOT NULL REFERENCES customers(code),
    alerts     TEXT NOT NULL,
    recipients TEXT NOT NULL
);

CREATE TABLE requests (
    number              INTEGER PRIMARY KEY,
    company             TEXT NOT NULL REFERENCES companies(code),
    customer            TEXT NOT NULL REFERENCES customers(code),
    type                TEXT NOT NULL REFERENCES request_types(code),
    requester           TEXT REFERENCES contacts(id),
    state               TEXT NOT NULL,
    publishable         INTEGER NOT NULL,
    conversation_locked INTEGER NOT NULL,
    contract            TEXT REFERENCES contracts(code),
    subject             TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);

-- Direct messages on a request's activity thread.
CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,
    request         INTEGER NOT NULL REFERENCES requests(number),
    author_kind     TEXT NOT NULL,
    author_id       TEXT NOT NULL,
    side            TEXT NOT NULL,
    source          TEXT NOT NULL,
    body            TEXT NOT NULL,
    read            INTEGER NOT NULL DEFAULT 0,
    notify_by_email INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    run             INTEGER REFERENCES runs(id)
);
CREATE INDEX messages_request ON messages(request);

-- Content-addressed blobs: raw messages and attachment contents.
CREATE TABLE blobs (
    sha256  TEXT PRIMARY KEY,
    size    INTEGER NOT NULL,
    content BLOB NOT NULL
);

-- The mail store: each mail once, by Message-ID.
CREATE TABLE mails (
    id          INTEGER PRIMARY KEY,
    message_id  TEXT NOT NULL UNIQUE,
    account     TEXT NOT NULL,
    subject     TEXT NOT NULL,
    sender      TEXT,
    sent_at     TEXT,
    in_reply_to TEXT NOT NULL,
    refs        TEXT NOT NULL,
    raw         TEXT NOT NULL REFERENCES blobs(sha256),
    size        INTEGER NOT NULL,
    status      TEXT NOT NULL,
    error       TEXT,
    received_at TEXT NOT NULL
);

CREATE TABLE mail_attachments (
    mail         INTEGER NOT NULL REFERENCES mails(id),
    position     INTEGER NOT NULL,
    filename     TEXT,
    content_type TEXT NOT NULL,
    size         INTEGER NOT NULL,
    sha256       TEXT NOT NULL REFERENCES blobs(sha256),
    PRIMARY KEY (mail, position)
);

-- One ticket per mail: the primary key enforces it.
CREATE TABLE mail_links (
    mail      INTEGER PRIMARY KEY REFERENCES mails(id),
    request   INTEGER NOT NULL REFERENCES requests(number),
    linked_at TEXT NOT NULL,
    run       INTEGER REFERENCES runs(id)
);
CREATE INDEX mail_links_request ON mail_links(request);

-- Durable outbox: queued in the transaction of the effect that asked.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    message_id      TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    recipients      TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    headers         TEXT NOT NULL,
    request         INTEGER,
    status          TEXT NOT NULL DEFAULT 'queued',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    sent_at         TEXT,
    run             INTEGER REFERENCES runs(id)
);
CREATE INDEX outbox_status ON outbox(status);

-- Run traces: one per event.
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    trigger     TEXT NOT NULL,
    summary     TEXT NOT NULL,
    message_id  TEXT,
    outcome     TEXT NOT NULL,
    error       TEXT,
    started_at  TEXT NOT NULL,
    duration_us INTEGER NOT NULL,
    trace       TEXT NOT NULL
);
CREATE INDEX runs_message_id ON runs(message_id);
