//! Retention: what the store keeps, and for how long (`retention:` in
//! `relais.yaml`), applied by the daemon in small batches.
//!
//! - Runs (traces) older than `runs-days` are deleted; a failed run is
//!   kept, as the dead letter a person may still retry. What referred to a
//!   run (a message, a link, an outbox mail, an exchange) stays, without
//!   it.
//! - The raw message and attachment contents of mail older than
//!   `raw-mail-days` are dropped; the mail's record (sender, subject,
//!   thread ids, ticket, status) stays, and so does everything built on it.
//! - Sent and suppressed outbox mail older than `sent-outbox-days` is
//!   deleted; an exchange it recorded stays, without it.

use rusqlite::params;

use chrono::{DateTime, Utc};

use super::prelude::*;
use super::{Cached, Expiry, Store, StoreError, sha256_hex, stamp};

/// Cut-off times: what is older goes.
#[derive(Debug, Clone, Default)]
pub struct Cutoffs {
    /// Runs started before this.
    pub runs: Option<DateTime<Utc>>,
    /// Raw mail received before this.
    pub raw_mail: Option<DateTime<Utc>>,
    /// Outbox mail sent (or held back) before this.
    pub sent_outbox: Option<DateTime<Utc>>,
}

/// How much one batch removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expired {
    /// Runs deleted.
    pub runs: usize,
    /// Mails whose raw content was dropped.
    pub raw_mails: usize,
    /// Outbox mails deleted.
    pub outbox: usize,
}

impl Expired {
    /// Whether the batch removed nothing: the store is within its limits.
    pub fn is_empty(&self) -> bool {
        *self == Expired::default()
    }
}

impl Expiry for Store {
    fn expire(&mut self, cutoffs: &Cutoffs, batch: usize) -> Result<Expired, StoreError> {
        let tx = self.begin()?;
        let conn = &*tx.conn;
        let batch = batch.max(1) as i64;
        let mut expired = Expired::default();
        if let Some(before) = cutoffs.runs.map(stamp) {
            let ids = ids(
                conn,
                "SELECT id FROM runs WHERE started_at < ?1 AND outcome != 'failed' ORDER BY id LIMIT ?2",
                &before,
                batch,
            )?;
            for id in &ids {
                for sql in [
                    "UPDATE messages SET run = NULL WHERE run = ?1",
                    "UPDATE mail_links SET run = NULL WHERE run = ?1",
                    "UPDATE outbox SET run = NULL WHERE run = ?1",
                    "UPDATE exchanges SET run = NULL WHERE run = ?1",
                    "DELETE FROM runs WHERE id = ?1",
                ] {
                    conn.run(sql, [id])?;
                }
            }
            expired.runs = ids.len();
        }
        if let Some(before) = cutoffs.raw_mail.map(stamp) {
            let empty = sha256_hex(b"");
            conn.run(
                "INSERT INTO blobs (sha256, size, content) VALUES (?1, 0, x'') ON CONFLICT (sha256) DO NOTHING",
                [&empty],
            )?;
            let ids = conn
                .prepare_cached(
                    "SELECT id FROM mails WHERE received_at < ?1 AND raw != ?2 ORDER BY id LIMIT ?3",
                )?
                .query_map(params![before, empty, batch], |r| r.get::<_, i64>(0))?
                .collect::<Result<Vec<i64>, _>>()?;
            for id in &ids {
                let raw: String =
                    conn.one("SELECT raw FROM mails WHERE id = ?1", [id], |r| r.get(0))?;
                let attachments: Vec<String> = conn
                    .prepare_cached("SELECT sha256 FROM mail_attachments WHERE mail = ?1")?
                    .query_map([id], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                conn.run(
                    "UPDATE mails SET raw = ?2 WHERE id = ?1",
                    params![id, empty],
                )?;
                conn.run("DELETE FROM mail_attachments WHERE mail = ?1", [id])?;
                super::search::forget_text(conn, *id)?;
                // A blob goes once nothing refers to it: content-addressed,
                // it may be another mail's too.
                for key in std::iter::once(raw).chain(attachments) {
                    conn.run(
                        "DELETE FROM blobs WHERE sha256 = ?1
                           AND NOT EXISTS (SELECT 1 FROM mails WHERE raw = ?1)
                           AND NOT EXISTS (SELECT 1 FROM mail_attachments WHERE sha256 = ?1)",
                        [&key],
                    )?;
                }
            }
            expired.raw_mails = ids.len();
        }
        if let Some(before) = cutoffs.sent_outbox.map(stamp) {
            let ids = ids(
                conn,
                "SELECT id FROM outbox WHERE status IN ('sent', 'suppressed')
                   AND coalesce(sent_at, created_at) < ?1 ORDER BY id LIMIT ?2",
                &before,
                batch,
            )?;
            for id in &ids {
                conn.run("UPDATE exchanges SET outbox = NULL WHERE outbox = ?1", [id])?;
                conn.run("DELETE FROM outbox WHERE id = ?1", [id])?;
            }
            expired.outbox = ids.len();
        }
        tx.commit()?;
        Ok(expired)
    }
}

fn ids(
    conn: &rusqlite::Connection,
    sql: &str,
    before: &str,
    batch: i64,
) -> Result<Vec<i64>, StoreError> {
    Ok(conn
        .prepare_cached(sql)?
        .query_map(params![before, batch], |r| r.get::<_, i64>(0))?
        .collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DeliveryMark, OutgoingMail};

    #[test]
    fn sent_mail_past_its_time_goes_and_queued_mail_stays() {
        let mut store = Store::open_in_memory().expect("store");
        let mail = |id: &str| OutgoingMail {
            message_id: id.to_string(),
            kind: "mail".to_string(),
            to: vec!["jeanne@dupont.example".to_string()],
            subject: "s".to_string(),
            body: "b".to_string(),
            headers: Vec::new(),
            request: None,
            in_reply_to: Vec::new(),
            references: Vec::new(),
        };
        let tx = store.begin().expect("tx");
        let sent = tx
            .queue_mail(&mail("sent@x"), None, None, false)
            .expect("queue");
        tx.queue_mail(&mail("queued@x"), None, None, false)
            .expect("queue");
        tx.commit().expect("commit");
        store
            .record_deliveries(&[(sent, DeliveryMark::Sent("250 ok".to_string()))])
            .expect("sent");
        let future = chrono::Utc::now() + chrono::Duration::days(1);
        let cutoffs = Cutoffs {
            sent_outbox: Some(future),
            ..Cutoffs::default()
        };
        let first = store.expire(&cutoffs, 10).expect("expire");
        assert_eq!(first.outbox, 1);
        assert!(store.expire(&cutoffs, 10).expect("expire").is_empty());
        let left = store.outbox(None, 10).expect("outbox");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].mail.message_id, "queued@x");
    }
}
