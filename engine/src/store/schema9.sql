-- Version 9: the mail store searchable by text. Each stored mail's subject
-- and text body (what plugins read, at most `limits.max-text-kib`) are
-- indexed under the mail's id; diacritics and case are ignored, so
-- `echeance` finds `Échéance`. Mails stored before this version are
-- indexed by `Store::open` once, from their raw message.
CREATE VIRTUAL TABLE mail_search USING fts5(
    subject,
    body,
    tokenize = 'unicode61 remove_diacritics 2'
);
