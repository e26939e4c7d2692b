-- Version 10: the search index written once per commit. A stored mail's
-- subject and text wait here, written with the mail, and go into
-- `mail_search` in one statement when its transaction (or the batch of
-- events it is part of) commits: indexed one event at a time, each in its
-- own savepoint, they wrote a segment of the index per mail, which cost
-- as much as the rest of the event and grew with the index.
CREATE TABLE mail_search_pending (
    id      INTEGER PRIMARY KEY,
    subject TEXT NOT NULL,
    body    TEXT NOT NULL
);

-- The index keeps no copy of the text it indexes (`content = ''`): the
-- mails table has the subject and the raw mail the text, and a search
-- only needs the mails' ids. Rebuilt here; `Store::open` indexes the
-- stored mail again, once, from the raw messages.
DROP TABLE mail_search;
CREATE VIRTUAL TABLE mail_search USING fts5(
    subject,
    body,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2'
);
