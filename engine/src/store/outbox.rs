//! The durable outbox: a mail an effect asks for is queued in the same
//! transaction as the effect, and sent after commit.

use rusqlite::params;

use super::{Cached, Store, StoreError, Tx, from_json, now, to_json};

/// A mail to queue.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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
}

/// A queued, sent or failed mail.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OutboxRecord {
    /// Outbox id.
    pub id: i64,
    /// The mail.
    #[serde(flatten)]
    pub mail: OutgoingMail,
    /// `queued`, `sent` or `failed`.
    pub status: String,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// The last delivery error.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: String,
}

impl Store {
    /// The outbox, newest first, optionally only one status.
    pub fn outbox(
        &self,
        status: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT id, message_id, kind, recipients, subject, body, headers, request, status, attempts,
                    last_error, created_at
             FROM outbox WHERE ?1 IS NULL OR status = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = statement.query_map(params![status, limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, Option<i64>>(7)?,
                r.get::<_, String>(8)?,
                r.get::<_, i64>(9)?,
                r.get::<_, Option<String>>(10)?,
                r.get::<_, String>(11)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (
                id,
                message_id,
                kind,
                to,
                subject,
                body,
                headers,
                request,
                status,
                attempts,
                last_error,
                created_at,
            ) = row?;
            out.push(OutboxRecord {
                id,
                mail: OutgoingMail {
                    message_id,
                    kind,
                    to: from_json(&to)?,
                    subject,
                    body,
                    headers: from_json(&headers)?,
                    request: request.map(|r| r as u64),
                },
                status,
                attempts: attempts as u32,
                last_error,
                created_at,
            });
        }
        Ok(out)
    }
}

impl Tx<'_> {
    /// Queues a mail for the sender task.
    pub fn queue_mail(&self, mail: &OutgoingMail, run: Option<i64>) -> Result<i64, StoreError> {
        self.conn.run(
            "INSERT INTO outbox (message_id, kind, recipients, subject, body, headers, request, created_at, run)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                mail.message_id,
                mail.kind,
                to_json(&mail.to)?,
                mail.subject,
                mail.body,
                to_json(&mail.headers)?,
                mail.request.map(|r| r as i64),
                now(),
                run
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }
}
