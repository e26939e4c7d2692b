//! Direct messages on a request's activity thread.

use relais_sdk::{Author, MessageSource, Side};
use rusqlite::params;

use super::prelude::*;
use super::{Cached, MessageWrites, Messages, Store, StoreError, Tx, now};

/// A direct message as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct MessageRecord {
    /// Its id.
    pub id: i64,
    /// The request it is on.
    pub request: u64,
    /// `collaborator` or `contact`.
    pub author_kind: String,
    /// The author's id.
    pub author_id: String,
    /// `staff` or `customer`.
    pub side: String,
    /// `catchmail`, `portal`, `desktop` or `plugin`.
    pub source: String,
    /// The text.
    pub body: String,
    /// Whether the other side read it.
    pub read: bool,
    /// Whether the other side is notified by mail.
    pub notify_by_email: bool,
    /// When it was posted.
    pub created_at: String,
}

/// A direct message to post.
#[derive(Debug, Clone, Copy)]
pub struct NewMessage<'a> {
    /// The request it goes on.
    pub request: u64,
    /// Who wrote it.
    pub author: &'a Author,
    /// Staff or customer side.
    pub side: Side,
    /// Where it was written.
    pub source: MessageSource,
    /// The text.
    pub body: &'a str,
    /// Whether the other side is notified by mail.
    pub notify_by_email: bool,
}

const MESSAGE_COLUMNS: &str =
    "id, request, author_kind, author_id, side, source, body, read, notify_by_email, created_at";

fn message_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageRecord> {
    Ok(MessageRecord {
        id: r.get(0)?,
        request: r.get::<_, i64>(1)? as u64,
        author_kind: r.get(2)?,
        author_id: r.get(3)?,
        side: r.get(4)?,
        source: r.get(5)?,
        body: r.get(6)?,
        read: r.get(7)?,
        notify_by_email: r.get(8)?,
        created_at: r.get(9)?,
    })
}

fn name<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    match serde_json::to_value(value)? {
        serde_json::Value::String(text) => Ok(text),
        other => Ok(other.to_string()),
    }
}

impl Store {
    /// Marks a message read or unread; `None` when there is no such message.
    pub fn set_message_read(
        &mut self,
        id: i64,
        read: bool,
    ) -> Result<Option<MessageRecord>, StoreError> {
        let tx = self.begin()?;
        let changed = tx.set_message_read(id, read)?;
        tx.commit()?;
        if !changed {
            return Ok(None);
        }
        self.message(id)
    }
}

impl Messages for Store {
    fn messages(&self, request: u64) -> Result<Vec<MessageRecord>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE request = ?1 ORDER BY id"
        ))?;
        let rows = statement.query_map([request as i64], message_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn message(&self, id: i64) -> Result<Option<MessageRecord>, StoreError> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn()
            .one(
                &format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1"),
                [id],
                message_from_row,
            )
            .optional()?)
    }

    fn message_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .conn()
            .one("SELECT count(*) FROM messages", [], |r| r.get::<_, i64>(0))? as u64)
    }
}

impl MessageWrites for Tx<'_> {
    fn set_message_read(&self, id: i64, read: bool) -> Result<bool, StoreError> {
        let changed = self.conn.run(
            "UPDATE messages SET read = ?2 WHERE id = ?1",
            params![id, read],
        )?;
        Ok(changed > 0)
    }

    fn require_request(&self, request: u64) -> Result<relais_sdk::Request, StoreError> {
        use rusqlite::OptionalExtension;
        self.conn
            .one(
                "SELECT number, company, customer, type, requester, state, publishable,
                        conversation_locked, contract, subject
                 FROM requests WHERE number = ?1",
                [request as i64],
                super::directory::request_from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::Refused(format!("request {request} does not exist")))
    }

    fn post_message(&self, message: &NewMessage<'_>, run: Option<i64>) -> Result<i64, StoreError> {
        let NewMessage {
            request,
            author,
            side,
            source,
            body,
            notify_by_email,
        } = *message;
        let found = self.require_request(request)?;
        if found.conversation_locked {
            return Err(StoreError::Refused(format!(
                "request {request}: the conversation is locked, no new message is accepted"
            )));
        }
        self.conn.run(
            "INSERT INTO messages (request, author_kind, author_id, side, source, body, notify_by_email,
                                   created_at, run)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                request as i64,
                name(&author.kind)?,
                author.id,
                name(&side)?,
                name(&source)?,
                body,
                notify_by_email,
                now(),
                run
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    fn create_request(
        &self,
        company: &str,
        customer: &str,
        requester: Option<&str>,
        subject: &str,
        request_type: &str,
    ) -> Result<u64, StoreError> {
        let next: i64 = self.conn.one(
            "SELECT coalesce(max(number), 0) + 1 FROM requests",
            [],
            |r| r.get(0),
        )?;
        let stamp = now();
        self.conn
            .run(
                "INSERT INTO requests (number, company, customer, type, requester, state, publishable,
                   conversation_locked, contract, subject, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'open', 1, 0, NULL, ?6, ?7, ?7)",
                params![next, company, customer, request_type, requester, subject, stamp],
            )
            .map_err(|error| match error {
                rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                    StoreError::Refused(format!(
                        "cannot create a ticket: company `{company}`, customer `{customer}`, type `{request_type}` or requester must exist"
                    ))
                }
                other => other.into(),
            })?;
        Ok(next as u64)
    }
}
