//! The mail store: each mail once, by Message-ID; the raw message and the
//! attachments kept as content-addressed blobs.

use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::{Cached, MailWrites, Mails, Store, StoreError, Tx, from_json, now, to_json};

/// What became of a stored mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailStatus {
    /// Rules ran and their effects were applied (or nothing matched).
    Processed,
    /// A plugin or an effect failed; the mail waits for a retry.
    Failed,
    /// Kept but not processed: larger than the configured limit.
    TooLarge,
    /// Kept but not processed: not a readable MIME message.
    Malformed,
}

impl MailStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            MailStatus::Processed => "processed",
            MailStatus::Failed => "failed",
            MailStatus::TooLarge => "too-large",
            MailStatus::Malformed => "malformed",
        }
    }
}

/// An attachment to store with its mail.
#[derive(Debug, Clone)]
pub struct NewAttachment {
    /// File name, if any.
    pub filename: Option<String>,
    /// MIME type.
    pub content_type: String,
    /// Decoded content.
    pub content: Vec<u8>,
    /// Where its body lies in the raw message and how it is written, when
    /// it can be written again exactly: then the body is stored once, as
    /// this content, and cut out of the raw message.
    pub cut: Option<super::apart::Cut>,
}

/// A mail to store.
#[derive(Debug, Clone)]
pub struct NewMail<'a> {
    /// Message-ID (without angle brackets).
    pub message_id: &'a str,
    /// Account it came from.
    pub account: &'a str,
    /// Decoded subject.
    pub subject: &'a str,
    /// From address.
    pub sender: Option<&'a str>,
    /// Date header, RFC 3339.
    pub sent_at: Option<&'a str>,
    /// In-Reply-To ids.
    pub in_reply_to: &'a [String],
    /// References ids.
    pub references: &'a [String],
    /// The raw message, as received.
    pub raw: &'a [u8],
    /// Attachments (decoded).
    pub attachments: &'a [NewAttachment],
    /// For a receipt: its report type.
    pub report: Option<&'a str>,
    /// Why it is automatic (out-of-office, list...), when it is.
    pub automatic: Option<&'a str>,
    /// What became of it.
    pub status: MailStatus,
    /// Why it was not processed, if it was not.
    pub error: Option<&'a str>,
    /// The hash of what it says (see `sources::mail::fingerprint`).
    pub fingerprint: Option<&'a str>,
    /// Its text, as plugins read it: indexed for search with its subject.
    pub text: &'a str,
}

/// A stored mail, as listed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct MailRecord {
    /// Message-ID.
    pub message_id: String,
    /// Account it came from.
    pub account: String,
    /// Subject.
    pub subject: String,
    /// From address.
    pub sender: Option<String>,
    /// In-Reply-To ids.
    pub in_reply_to: Vec<String>,
    /// References ids.
    pub references: Vec<String>,
    /// Raw size in bytes.
    pub size: u64,
    /// Stored status name.
    pub status: String,
    /// Why it was not processed.
    pub error: Option<String>,
    /// The ticket it is linked to, if any.
    pub ticket: Option<u64>,
}

/// An attachment of a stored mail, as listed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct StoredAttachment {
    /// Its place among the mail's attachments, from 0: what
    /// `GET /mails/{message_id}/attachments/{n}` takes.
    pub position: u32,
    /// Its file name, as the sender gave it.
    pub filename: Option<String>,
    /// Its content type, as the sender gave it (never what it is served
    /// with).
    pub content_type: String,
    /// Its size in bytes.
    pub size: u64,
}

/// SHA-256 of `bytes`, lowercase hex: the key of a blob.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Mails for Store {
    fn mail_fingerprint(&self, message_id: &str) -> Result<Option<Option<String>>, StoreError> {
        Ok(self
            .conn()
            .one(
                "SELECT fingerprint FROM mails WHERE message_id = ?1",
                [message_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn mail_exists(&self, message_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .one(
                "SELECT 1 FROM mails WHERE message_id = ?1",
                [message_id],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    fn mail(&self, message_id: &str) -> Result<Option<MailRecord>, StoreError> {
        let row = self
            .conn()
            .one(
                "SELECT m.message_id, m.account, m.subject, m.sender, m.in_reply_to, m.refs, m.size,
                        m.status, m.error, l.request
                 FROM mails m LEFT JOIN mail_links l ON l.mail = m.id WHERE m.message_id = ?1",
                [message_id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, i64>(6)?,
                        r.get::<_, String>(7)?,
                        r.get::<_, Option<String>>(8)?,
                        r.get::<_, Option<i64>>(9)?,
                    ))
                },
            )
            .optional()?;
        row.map(
            |(message_id, account, subject, sender, irt, refs, size, status, error, ticket)| {
                Ok(MailRecord {
                    message_id,
                    account,
                    subject,
                    sender,
                    in_reply_to: from_json(&irt)?,
                    references: from_json(&refs)?,
                    size: size as u64,
                    status,
                    error,
                    ticket: ticket.map(|t| t as u64),
                })
            },
        )
        .transpose()
    }

    fn attachments(&self, message_id: &str) -> Result<Option<Vec<StoredAttachment>>, StoreError> {
        let conn = self.conn();
        let Some(id) = conn
            .one(
                "SELECT id FROM mails WHERE message_id = ?1",
                [message_id],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
        else {
            return Ok(None);
        };
        let listed = conn
            .prepare_cached(
                "SELECT position, filename, content_type, size FROM mail_attachments
                  WHERE mail = ?1 ORDER BY position",
            )?
            .query_map([id], |r| {
                Ok(StoredAttachment {
                    position: r.get::<_, i64>(0)? as u32,
                    filename: r.get(1)?,
                    content_type: r.get(2)?,
                    size: r.get::<_, i64>(3)? as u64,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(listed))
    }

    fn attachment(
        &self,
        message_id: &str,
        position: u32,
    ) -> Result<Option<(StoredAttachment, Vec<u8>)>, StoreError> {
        Ok(self
            .conn()
            .one(
                "SELECT a.position, a.filename, a.content_type, a.size, b.content
                   FROM mails m JOIN mail_attachments a ON a.mail = m.id
                   JOIN blobs b ON b.sha256 = a.sha256
                  WHERE m.message_id = ?1 AND a.position = ?2",
                params![message_id, position],
                |r| {
                    Ok((
                        StoredAttachment {
                            position: r.get::<_, i64>(0)? as u32,
                            filename: r.get(1)?,
                            content_type: r.get(2)?,
                            size: r.get::<_, i64>(3)? as u64,
                        },
                        r.get::<_, Vec<u8>>(4)?,
                    ))
                },
            )
            .optional()?)
    }

    fn raw_mail(&self, message_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let conn = self.conn();
        let Some((id, kept)) = conn
            .one(
                "SELECT m.id, b.content FROM mails m JOIN blobs b ON b.sha256 = m.raw WHERE m.message_id = ?1",
                [message_id],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)),
            )
            .optional()?
        else {
            return Ok(None);
        };
        let bodies = conn
            .prepare_cached(
                "SELECT a.raw_at, a.layout, b.content FROM mail_attachments a
                   JOIN blobs b ON b.sha256 = a.sha256
                  WHERE a.mail = ?1 AND a.raw_at IS NOT NULL ORDER BY a.raw_at, a.position",
            )?
            .query_map([id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        if bodies.is_empty() {
            return Ok(Some(kept));
        }
        let mut placed = Vec::with_capacity(bodies.len());
        for (at, layout, content) in bodies {
            let layout = super::apart::Layout::parse(&layout).ok_or_else(|| {
                StoreError::Refused(format!(
                    "mail <{message_id}>: unknown attachment layout `{layout}`"
                ))
            })?;
            placed.push((at as usize, layout, content));
        }
        Ok(Some(super::apart::rebuild(&kept, &placed)))
    }

    fn blob_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .conn()
            .one("SELECT count(*) FROM blobs", [], |r| r.get::<_, i64>(0))? as u64)
    }
}

impl Tx<'_> {
    fn put_blob(&self, content: &[u8]) -> Result<String, StoreError> {
        let key = sha256_hex(content);
        // A big blob is written in place into a row made for its size:
        // bound as a parameter, SQLite would copy it whole, twice, on its
        // way to the pages.
        let inserted = self.conn.run(
            "INSERT INTO blobs (sha256, size, content) VALUES (?1, ?2, zeroblob(?2)) ON CONFLICT (sha256) DO NOTHING",
            params![key, content.len() as i64],
        )?;
        if inserted == 1 && !content.is_empty() {
            let row = self.conn.last_insert_rowid();
            self.conn
                .blob_open(rusqlite::MAIN_DB, "blobs", "content", row, false)?
                .write_at(content, 0)?;
        }
        Ok(key)
    }
}

impl MailWrites for Tx<'_> {
    fn set_mail_status(&self, message_id: &str, status: MailStatus) -> Result<(), StoreError> {
        self.conn.run(
            "UPDATE mails SET status = ?2,
                    error = CASE WHEN ?2 = 'processed' THEN NULL ELSE error END
             WHERE message_id = ?1",
            params![message_id, status.as_str()],
        )?;
        Ok(())
    }

    fn insert_mail(&self, mail: &NewMail<'_>) -> Result<i64, StoreError> {
        // Each byte once: the bodies of attachments stored apart leave the
        // raw message, which must still come back whole.
        let cuts: Vec<(usize, super::apart::Cut)> = mail
            .attachments
            .iter()
            .enumerate()
            .filter_map(|(position, a)| a.cut.map(|cut| (position, cut)))
            .collect();
        // Each body was checked to be written again exactly from its
        // content (`Layout::of`), at the place it is cut from.
        let apart = if cuts.is_empty() {
            None
        } else {
            let only: Vec<super::apart::Cut> = cuts.iter().map(|(_, cut)| *cut).collect();
            super::apart::cut(mail.raw, &only)
        };
        let raw = match &apart {
            Some((kept, _)) => self.put_blob(kept)?,
            None => self.put_blob(mail.raw)?,
        };
        let inserted = self.conn.run(
            "INSERT INTO mails (message_id, account, subject, sender, sent_at, in_reply_to, refs, raw,
                                size, status, error, received_at, report, automatic, fingerprint)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
             ON CONFLICT (message_id) DO NOTHING",
            params![
                mail.message_id,
                mail.account,
                mail.subject,
                mail.sender,
                mail.sent_at,
                to_json(&mail.in_reply_to)?,
                to_json(&mail.references)?,
                raw,
                mail.raw.len() as i64,
                mail.status.as_str(),
                mail.error,
                now(),
                mail.report,
                mail.automatic,
                mail.fingerprint,
            ],
        )?;
        if inserted == 0 {
            return Err(StoreError::Refused(format!(
                "mail <{}> is already stored",
                mail.message_id
            )));
        }
        let id = self.conn.last_insert_rowid();
        self.index_mail(id, mail.subject, mail.text)?;
        self.insert_refs(
            mail.message_id,
            mail.in_reply_to.iter().chain(mail.references),
        )?;
        for (position, attachment) in mail.attachments.iter().enumerate() {
            let key = self.put_blob(&attachment.content)?;
            // Where its body goes back in the raw message, when it left it.
            let place = apart.as_ref().and_then(|(_, at)| {
                cuts.iter()
                    .position(|(p, _)| *p == position)
                    .map(|index| (at[index] as i64, cuts[index].1.layout.as_text()))
            });
            self.conn.run(
                "INSERT INTO mail_attachments (mail, position, filename, content_type, size, sha256, raw_at, layout)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    id,
                    position as i64,
                    attachment.filename,
                    attachment.content_type,
                    attachment.content.len() as i64,
                    key,
                    place.as_ref().map(|(at, _)| *at),
                    place.as_ref().map(|(_, layout)| layout.as_str()),
                ],
            )?;
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::prelude::*;

    fn mail<'a>(id: &'a str, raw: &'a [u8], attachments: &'a [NewAttachment]) -> NewMail<'a> {
        NewMail {
            message_id: id,
            account: "cli",
            subject: "s",
            sender: None,
            sent_at: None,
            in_reply_to: &[],
            references: &[],
            raw,
            attachments,
            report: None,
            automatic: None,
            status: MailStatus::Processed,
            error: None,
            fingerprint: None,
            text: "",
        }
    }

    #[test]
    fn each_mail_once_and_attachments_shared() {
        let mut store = Store::open_in_memory().expect("store");
        let pdf = [NewAttachment {
            filename: Some("a.pdf".into()),
            content_type: "application/pdf".into(),
            content: b"%PDF".to_vec(),
            cut: None,
        }];
        let tx = store.begin().expect("tx");
        tx.insert_mail(&mail("a@x", b"raw a", &pdf)).expect("first");
        tx.insert_mail(&mail("b@x", b"raw b", &pdf))
            .expect("second");
        let again = tx
            .insert_mail(&mail("a@x", b"raw a", &pdf))
            .expect_err("duplicate");
        assert!(again.to_string().contains("already stored"));
        tx.commit().expect("commit");
        // two raw messages and one shared attachment
        assert_eq!(store.blob_count().expect("count"), 3);
        assert_eq!(store.raw_mail("b@x").expect("raw"), Some(b"raw b".to_vec()));
    }
}
