//! The durable outbox: a mail an effect asks for is queued in the same
//! transaction as the effect, and sent after commit.

use rusqlite::params;

use chrono::{DateTime, Utc};

use super::prelude::*;
use super::{
    Cached, Outbox, OutboxWrites, Store, StoreError, Tx, from_json, now, parse_stamp, stamp,
    to_json,
};

/// A mail to queue.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct OutgoingMail {
    /// Its Message-ID, unique: the sender never sends one id twice.
    pub message_id: String,
    /// `mail` or `failure-reply`.
    pub kind: String,
    /// Recipient addresses.
    pub to: Vec<String>,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// Extra headers (`In-Reply-To`, `Auto-Submitted`, ...).
    pub headers: Vec<(String, String)>,
    /// The request it is about.
    pub request: Option<u64>,
    /// The ids it answers (its `In-Reply-To`), for thread lookups.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub in_reply_to: Vec<String>,
    /// Its `References`, for thread lookups.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
}

/// A queued, sent or failed mail.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct OutboxRecord {
    /// Outbox id.
    pub id: i64,
    /// The mail.
    #[serde(flatten)]
    pub mail: OutgoingMail,
    /// `queued`, `sent`, `failed` or `suppressed` (held back by a rate
    /// limit, never sent).
    pub status: String,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// The last delivery error.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: String,
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryMark {
    /// An attempt is about to be made: counted before the mail goes out,
    /// so that a mail that crashes the engine is not tried for ever; not
    /// due again before `next` (RFC 3339) unless recorded otherwise.
    Attempt {
        /// When it is due again if nothing else is recorded.
        next: String,
    },
    /// Delivered, with the server's answer.
    Sent(String),
    /// A temporary failure: try again at `next` (RFC 3339).
    Retry {
        /// What the server said.
        error: String,
        /// When to try again.
        next: String,
    },
    /// A permanent failure, with the server's answer.
    Failed(String),
}

impl Outbox for Store {
    fn outbox(&self, status: Option<&str>, limit: usize) -> Result<Vec<OutboxRecord>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(&format!(
            "SELECT {MAIL_COLUMNS}, status, attempts, last_error, created_at
             FROM outbox WHERE ?1 IS NULL OR status = ?1 ORDER BY id DESC LIMIT ?2"
        ))?;
        let rows = statement.query(params![status, limit as i64])?;
        records(rows)
    }

    fn outbox_mail(&self, id: i64) -> Result<Option<OutboxRecord>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(&format!(
            "SELECT {MAIL_COLUMNS}, status, attempts, last_error, created_at
             FROM outbox WHERE id = ?1"
        ))?;
        let rows = statement.query([id])?;
        Ok(records(rows)?.pop())
    }

    fn outbox_of_request(&self, number: u64) -> Result<Vec<OutboxRecord>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(&format!(
            "SELECT {MAIL_COLUMNS}, status, attempts, last_error, created_at
             FROM outbox WHERE request = ?1 ORDER BY id"
        ))?;
        let rows = statement.query([number as i64])?;
        records(rows)
    }

    fn due_mail(&self, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(&format!(
            "SELECT {MAIL_COLUMNS}, attempts FROM outbox
             WHERE status = 'queued' AND (next_attempt_at IS NULL OR next_attempt_at <= ?1)
             ORDER BY id LIMIT ?2"
        ))?;
        let mut rows = statement.query(params![now(), limit as i64])?;
        let mut due = Vec::new();
        while let Some(row) = rows.next()? {
            let (id, mail) = mail_from_row(row)?;
            due.push(Delivery {
                id,
                mail,
                attempts: row.get::<_, i64>(10)? as u32,
            });
        }
        Ok(due)
    }

    fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let next: Option<String> = self.conn().one(
            "SELECT min(coalesce(next_attempt_at, '')) FROM outbox WHERE status = 'queued'",
            [],
            |r| r.get(0),
        )?;
        // A mail never tried is due now (its empty time sorts first).
        Ok(next.map(|at| parse_stamp(&at).unwrap_or(DateTime::<Utc>::MIN_UTC)))
    }

    fn record_deliveries(&mut self, marks: &[(i64, DeliveryMark)]) -> Result<(), StoreError> {
        let tx = self.begin()?;
        for (id, mark) in marks {
            // The attempt itself was counted by its `Attempt` mark.
            match mark {
                DeliveryMark::Attempt { next } => tx.conn.run(
                    "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2
                     WHERE id = ?1 AND status = 'queued'",
                    params![id, next],
                )?,
                DeliveryMark::Sent(answer) => tx.conn.run(
                    "UPDATE outbox SET status = 'sent', sent_at = ?2,
                            last_error = NULL, next_attempt_at = NULL, answer = ?3
                     WHERE id = ?1",
                    params![id, now(), answer],
                )?,
                DeliveryMark::Retry { error, next } => tx.conn.run(
                    "UPDATE outbox SET last_error = ?2, next_attempt_at = ?3
                     WHERE id = ?1",
                    params![id, error, next],
                )?,
                DeliveryMark::Failed(error) => tx.conn.run(
                    "UPDATE outbox SET status = 'failed', last_error = ?2,
                            next_attempt_at = NULL
                     WHERE id = ?1",
                    params![id, error],
                )?,
            };
        }
        tx.commit()
    }

    fn outbox_status(&self, message_id: &str) -> Result<Option<String>, StoreError> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn()
            .one(
                "SELECT status FROM outbox WHERE message_id = ?1",
                [message_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn retry_mail(&self, id: Option<i64>) -> Result<usize, StoreError> {
        Ok(self.conn().run(
            "UPDATE outbox SET status = 'queued', next_attempt_at = NULL
             WHERE status = 'failed' AND (?1 IS NULL OR id = ?1)",
            params![id],
        )?)
    }

    fn outbox_depth(&self) -> Result<u64, StoreError> {
        Ok(self.conn().one(
            "SELECT count(*) FROM outbox WHERE status = 'queued'",
            [],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    fn outbox_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT s.status, (SELECT count(*) FROM outbox AS o WHERE o.status = s.status)
             FROM (SELECT 'queued' AS status UNION ALL SELECT 'sent' UNION ALL SELECT 'failed'
                   UNION ALL SELECT 'suppressed') AS s",
        )?;
        let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// The outbox records of `rows` (columns: [`MAIL_COLUMNS`], then status,
/// attempts, last error, created at).
fn records(mut rows: rusqlite::Rows<'_>) -> Result<Vec<OutboxRecord>, StoreError> {
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let (id, mail) = mail_from_row(row)?;
        out.push(OutboxRecord {
            id,
            mail,
            status: row.get(10)?,
            attempts: row.get::<_, i64>(11)? as u32,
            last_error: row.get(12)?,
            created_at: row.get(13)?,
        });
    }
    Ok(out)
}

/// A mail due for delivery.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Outbox id.
    pub id: i64,
    /// The mail.
    pub mail: OutgoingMail,
    /// Attempts so far.
    pub attempts: u32,
}

/// The columns [`mail_from_row`] reads, first in a query.
const MAIL_COLUMNS: &str =
    "id, message_id, kind, recipients, subject, body, headers, request, in_reply_to, refs";

/// The outbox id and the mail of a row whose first columns are
/// [`MAIL_COLUMNS`].
fn mail_from_row(row: &rusqlite::Row<'_>) -> Result<(i64, OutgoingMail), StoreError> {
    Ok((
        row.get(0)?,
        OutgoingMail {
            message_id: row.get(1)?,
            kind: row.get(2)?,
            to: from_json(&row.get::<_, String>(3)?)?,
            subject: row.get(4)?,
            body: row.get(5)?,
            headers: from_json(&row.get::<_, String>(6)?)?,
            request: row.get::<_, Option<i64>>(7)?.map(|r| r as u64),
            in_reply_to: from_json(&row.get::<_, String>(8)?)?,
            references: from_json(&row.get::<_, String>(9)?)?,
        },
    ))
}

impl OutboxWrites for Tx<'_> {
    fn queue_mail(
        &self,
        mail: &OutgoingMail,
        run: Option<i64>,
        rate_key: Option<&str>,
        suppressed: bool,
    ) -> Result<i64, StoreError> {
        self.conn.run(
            "INSERT INTO outbox (message_id, kind, recipients, subject, body, headers, request,
                                 created_at, run, rate_key, status, last_error, in_reply_to, refs)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                mail.message_id,
                mail.kind,
                to_json(&mail.to)?,
                mail.subject,
                mail.body,
                to_json(&mail.headers)?,
                mail.request.map(|r| r as i64),
                now(),
                run,
                rate_key,
                if suppressed { "suppressed" } else { "queued" },
                suppressed.then_some("rate limit: too many failure notices to this sender"),
                to_json(&mail.in_reply_to)?,
                to_json(&mail.references)?,
            ],
        )?;
        let id = self.conn.last_insert_rowid();
        self.insert_refs(
            &mail.message_id,
            mail.in_reply_to.iter().chain(&mail.references),
        )?;
        Ok(id)
    }

    fn notices_since(
        &self,
        rate_key: &str,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<u32, StoreError> {
        Ok(self.conn.one(
            "SELECT count(*) FROM (SELECT 1 FROM outbox WHERE rate_key = ?1 AND created_at >= ?2
               AND status <> 'suppressed' LIMIT ?3)",
            params![rate_key, stamp(since), limit],
            |r| r.get(0),
        )?)
    }
}
