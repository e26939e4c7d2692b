//! The mail store, searched: what a support agent asks of it (the mail
//! left to link by hand, a sender's mail, the mail naming a word or
//! carrying a file), newest first, a page at a time. Each row says which
//! ticket the mail is on, if any, how it got there, and the run that
//! processed it.

use rusqlite::types::Value as SqlValue;
use rusqlite::{OptionalExtension, params};

use super::prelude::*;
use super::{Cached, MailSearch, Store, StoreError, Tx, stamp};

/// The most rows one page holds.
pub const MAX_PAGE: usize = 500;

/// What to look for; every filter given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailQuery {
    /// `Some(false)`: only mail on no ticket; `Some(true)`: only mail on
    /// one.
    pub linked: Option<bool>,
    /// Only mail on this ticket.
    pub ticket: Option<u64>,
    /// Only mail of this account.
    pub account: Option<String>,
    /// The sender's address contains this (case-insensitive).
    pub sender: Option<String>,
    /// The subject contains this (case-insensitive).
    pub subject: Option<String>,
    /// The subject or the text holds these words (each word, or a word
    /// starting with it; case and diacritics ignored).
    pub text: Option<String>,
    /// An attachment's file name contains this (case-insensitive).
    pub attachment: Option<String>,
    /// Only mail whose sender is no contact's and no collaborator's
    /// address (or that has no sender).
    pub unknown_sender: bool,
    /// `Some(false)`: no automatic mail (out-of-office, list, bounce);
    /// `Some(true)`: only automatic mail.
    pub automatic: Option<bool>,
    /// Received at or after this time.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Received before this time.
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// Only mail older than the mail of this row id (the page after one
    /// that ended there).
    pub before: Option<i64>,
    /// At most this many rows (capped at [`MAX_PAGE`]).
    pub limit: usize,
}

/// A stored mail as a search lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct MailRow {
    /// Its row id: `before` of the next page.
    pub id: i64,
    /// Message-ID, without `<>`.
    pub message_id: String,
    /// The account it came from.
    pub account: String,
    /// The `From` address.
    pub sender: Option<String>,
    /// Subject.
    pub subject: String,
    /// Its `Date`, RFC 3339.
    pub sent_at: Option<String>,
    /// When Relais stored it, RFC 3339.
    pub received_at: String,
    /// What became of it (`processed`, `failed`, `rejected`...).
    pub status: String,
    /// Why it is automatic (an out-of-office, a list, a bounce), when it
    /// is.
    pub automatic: Option<String>,
    /// Its size in bytes.
    pub size: u64,
    /// Its attachments' file names (unnamed ones as `""`).
    pub attachments: Vec<String>,
    /// The ticket it is on; none when it waits to be linked by hand.
    pub ticket: Option<u64>,
    /// How it got there: `rule` or `manual`.
    pub linked_by: Option<String>,
    /// The run that linked it.
    pub link_run: Option<i64>,
    /// The run that processed it (`relais runs show ID` says why).
    pub run: Option<i64>,
    /// That run's outcome.
    pub outcome: Option<String>,
}

/// One page of a search.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct MailPage {
    /// The mails, newest first.
    pub mails: Vec<MailRow>,
    /// `before` for the next page, when there may be one.
    pub next_before: Option<i64>,
}

/// `text` as an FTS5 query: each word quoted (so that no word is read as
/// an operator) and matched as a prefix; `None` when it holds no word.
fn match_expression(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(|word| format!("\"{word}\"*"))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// `%value%` for a LIKE, its wildcards escaped with `\`.
fn contains(value: &str) -> String {
    let escaped = value
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// The conditions of a search, and the values they bind, in order.
#[derive(Default)]
pub(super) struct Filter {
    conditions: Vec<&'static str>,
    values: Vec<SqlValue>,
}

impl Filter {
    pub(super) fn holds(&mut self, condition: &'static str) {
        self.conditions.push(condition);
    }

    pub(super) fn bind(&mut self, condition: &'static str, value: SqlValue) {
        self.conditions.push(condition);
        self.values.push(value);
    }

    /// The `WHERE` clause (empty when nothing is asked) and the values it
    /// binds, then `limit` for the `LIMIT ?` that ends the statement.
    pub(super) fn finish(self, limit: usize) -> (String, Vec<SqlValue>) {
        let Filter {
            conditions,
            mut values,
        } = self;
        values.push(SqlValue::Integer(limit as i64));
        let clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        (clause, values)
    }
}

impl Store {
    /// Indexes the mails stored before the store was searchable, from
    /// their raw message (once, when the store is opened).
    pub(super) fn index_unsearchable(&self) -> Result<usize, StoreError> {
        let missing: Vec<(i64, String, String)> = self
            .conn()
            .prepare(
                "SELECT m.id, m.message_id, m.subject FROM mails AS m
                 WHERE m.id NOT IN (SELECT rowid FROM mail_search)",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        for (id, message_id, subject) in &missing {
            let body = self
                .raw_mail(message_id)?
                .and_then(|raw| {
                    mail_parser::MessageParser::default()
                        .parse(&raw)
                        .and_then(|parsed| parsed.body_text(0).map(|text| text.into_owned()))
                })
                .unwrap_or_default();
            self.conn().run(
                "INSERT INTO mail_search (rowid, subject, body) VALUES (?1, ?2, ?3)",
                params![id, subject, body],
            )?;
        }
        Ok(missing.len())
    }
}

impl MailSearch for Store {
    fn search_mails(&self, query: &MailQuery) -> Result<MailPage, StoreError> {
        let mut filter = Filter::default();
        match query.linked {
            Some(true) => filter.holds("l.request IS NOT NULL"),
            Some(false) => filter.holds("l.request IS NULL"),
            None => {}
        }
        if let Some(ticket) = query.ticket {
            filter.bind("l.request = ?", SqlValue::Integer(ticket as i64));
        }
        if let Some(account) = &query.account {
            filter.bind("m.account = ?", SqlValue::Text(account.clone()));
        }
        if let Some(sender) = &query.sender {
            filter.bind(
                "m.sender LIKE ? ESCAPE '\\'",
                SqlValue::Text(contains(sender.trim())),
            );
        }
        if let Some(subject) = &query.subject {
            filter.bind(
                "m.subject LIKE ? ESCAPE '\\'",
                SqlValue::Text(contains(subject)),
            );
        }
        if let Some(text) = &query.text {
            match match_expression(text) {
                Some(expression) => filter.bind(
                    "m.id IN (SELECT rowid FROM mail_search WHERE mail_search MATCH ?)",
                    SqlValue::Text(expression),
                ),
                None => filter.holds("0"),
            }
        }
        if let Some(name) = &query.attachment {
            filter.bind(
                "EXISTS (SELECT 1 FROM mail_attachments AS a
                         WHERE a.mail = m.id AND a.filename LIKE ? ESCAPE '\\')",
                SqlValue::Text(contains(name)),
            );
        }
        if query.unknown_sender {
            filter.holds(
                "(m.sender IS NULL OR m.sender = ''
                  OR (NOT EXISTS (SELECT 1 FROM contacts AS c
                                  WHERE c.email = m.sender COLLATE NOCASE
                                     OR c.email2 = m.sender COLLATE NOCASE)
                      AND NOT EXISTS (SELECT 1 FROM collaborators AS o
                                      WHERE o.email = m.sender COLLATE NOCASE
                                         OR o.email2 = m.sender COLLATE NOCASE)))",
            );
        }
        match query.automatic {
            Some(true) => filter.holds("m.automatic IS NOT NULL"),
            Some(false) => filter.holds("m.automatic IS NULL"),
            None => {}
        }
        if let Some(since) = &query.since {
            filter.bind("m.received_at >= ?", SqlValue::Text(stamp(*since)));
        }
        if let Some(until) = &query.until {
            filter.bind("m.received_at < ?", SqlValue::Text(stamp(*until)));
        }
        if let Some(before) = query.before {
            filter.bind("m.id < ?", SqlValue::Integer(before));
        }
        let limit = query.limit.clamp(1, MAX_PAGE);
        // One more than asked: whether a next page exists.
        let (filter, values) = filter.finish(limit + 1);
        let sql = format!(
            "SELECT m.id, m.message_id, m.account, m.sender, m.subject, m.sent_at, m.received_at,
                    m.status, m.size, l.request, l.how, l.run, m.automatic,
                    (SELECT r.id FROM runs AS r WHERE r.message_id = m.message_id
                      ORDER BY r.id DESC LIMIT 1),
                    (SELECT r.outcome FROM runs AS r WHERE r.message_id = m.message_id
                      ORDER BY r.id DESC LIMIT 1)
             FROM mails AS m
             LEFT JOIN mail_links AS l ON l.mail = m.id
             {filter}
             ORDER BY m.id DESC
             LIMIT ?"
        );
        let conn = self.conn();
        let mut statement = conn.prepare(&sql)?;
        let mut mails = statement
            .query_map(rusqlite::params_from_iter(values), |r| {
                Ok(MailRow {
                    id: r.get(0)?,
                    message_id: r.get(1)?,
                    account: r.get(2)?,
                    sender: r.get(3)?,
                    subject: r.get(4)?,
                    sent_at: r.get(5)?,
                    received_at: r.get(6)?,
                    status: r.get(7)?,
                    size: r.get::<_, i64>(8)? as u64,
                    attachments: Vec::new(),
                    ticket: r.get::<_, Option<i64>>(9)?.map(|n| n as u64),
                    linked_by: r.get(10)?,
                    link_run: r.get(11)?,
                    automatic: r.get(12)?,
                    run: r.get(13)?,
                    outcome: r.get(14)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let more = mails.len() > limit;
        mails.truncate(limit);
        let mut names = conn.prepare_cached(
            "SELECT coalesce(filename, '') FROM mail_attachments WHERE mail = ?1 ORDER BY position",
        )?;
        for mail in &mut mails {
            mail.attachments = names
                .query_map([mail.id], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
        }
        let next_before = if more {
            mails.last().map(|m| m.id)
        } else {
            None
        };
        Ok(MailPage { mails, next_before })
    }
}

impl Tx<'_> {
    /// Indexes a mail just stored, by its row id, when its transaction
    /// commits ([`flush_search`]).
    pub(super) fn index_mail(&self, id: i64, subject: &str, text: &str) -> Result<(), StoreError> {
        self.conn.run(
            "INSERT INTO mail_search_pending (id, subject, body) VALUES (?1, ?2, ?3)",
            params![id, subject, text],
        )?;
        Ok(())
    }
}

/// Moves the mail waiting to be indexed into the search index, in one
/// statement: called just before a commit, so that what is committed is
/// searchable, and the index grows by one segment per commit rather than
/// per mail.
pub(super) fn flush_search(conn: &rusqlite::Connection) -> Result<(), StoreError> {
    let waiting: bool = conn.one(
        "SELECT EXISTS (SELECT 1 FROM mail_search_pending)",
        [],
        |r| r.get(0),
    )?;
    if waiting {
        conn.run(
            "INSERT INTO mail_search (rowid, subject, body)
             SELECT id, subject, body FROM mail_search_pending ORDER BY id",
            [],
        )?;
        conn.run("DELETE FROM mail_search_pending", [])?;
    }
    Ok(())
}

/// Forgets the text of mail `id` (its raw message expired), keeping its
/// subject searchable.
pub(super) fn forget_text(conn: &rusqlite::Connection, id: i64) -> Result<(), StoreError> {
    conn.run(
        "UPDATE mail_search_pending SET body = '' WHERE id = ?1",
        [id],
    )?;
    let subject: Option<String> = conn
        .one(
            "SELECT m.subject FROM mails AS m
             WHERE m.id = ?1 AND EXISTS (SELECT 1 FROM mail_search WHERE rowid = ?1)",
            [id],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(subject) = subject {
        conn.run("DELETE FROM mail_search WHERE rowid = ?1", [id])?;
        conn.run(
            "INSERT INTO mail_search (rowid, subject, body) VALUES (?1, ?2, '')",
            params![id, subject],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MailStatus, NewMail};

    fn store_with_a_mail() -> Store {
        let mut store = Store::open_in_memory().expect("store");
        let raw = b"From: a@x.example\r\nSubject: Imprimante\r\nMessage-ID: <m1@x>\r\n\r\nL'\xc3\xa9ch\xc3\xa9ance approche.\r\n";
        let tx = store.begin().expect("tx");
        tx.insert_mail(&NewMail {
            message_id: "m1@x",
            account: "support",
            subject: "Imprimante",
            sender: Some("a@x.example"),
            sent_at: None,
            in_reply_to: &[],
            references: &[],
            raw,
            attachments: &[],
            report: None,
            automatic: None,
            status: MailStatus::Processed,
            error: None,
            fingerprint: None,
            text: "L'échéance approche.",
        })
        .expect("insert");
        tx.commit().expect("commit");
        store
    }

    fn found(store: &Store, text: &str) -> usize {
        store
            .search_mails(&MailQuery {
                text: Some(text.into()),
                limit: 10,
                ..MailQuery::default()
            })
            .expect("search")
            .mails
            .len()
    }

    #[test]
    fn an_expired_mail_keeps_its_subject_searchable_not_its_text() {
        let store = store_with_a_mail();
        assert_eq!(found(&store, "echeance"), 1);
        assert_eq!(found(&store, "imprimante"), 1);
        forget_text(&store.conn(), 1).expect("forget");
        assert_eq!(found(&store, "echeance"), 0);
        assert_eq!(found(&store, "imprimante"), 1);
    }

    #[test]
    fn mails_stored_before_the_index_are_indexed_from_their_raw_message() {
        let store = store_with_a_mail();
        store
            .conn()
            .execute("DELETE FROM mail_search", [])
            .expect("as before version 9");
        assert_eq!(found(&store, "echeance"), 0);
        assert_eq!(store.index_unsearchable().expect("index"), 1);
        assert_eq!(found(&store, "echeance"), 1);
        assert_eq!(store.index_unsearchable().expect("again"), 0, "once");
    }

    #[test]
    fn words_are_quoted_prefixes_and_operators_are_words() {
        assert_eq!(
            match_expression("imprim étage").as_deref(),
            Some("\"imprim\"* \"étage\"*")
        );
        assert_eq!(
            match_expression("NOT \"x\" OR y*").as_deref(),
            Some("\"NOT\"* \"x\"* \"OR\"* \"y\"*")
        );
        assert_eq!(match_expression(" -- "), None);
        assert_eq!(contains("50%_off"), "%50\\%\\_off%");
    }
}
