//! Exchanges with the customer on a request (the seed's "échanges reçus"
//! and "échanges transmis"): mail from the customer linked to the request,
//! mail sent to the customer as an exchange, exchanges recorded by hand.
//! They tell who spoke last, how many there were, and how many reminders
//! (`relance`) went since the customer last spoke.

use relais_sdk::{ExchangeSummary, REMINDER, Recipient, RequestActivity, RequestQuery, Side};
use rusqlite::{OptionalExtension, params};

use super::prelude::*;
use super::{Cached, ExchangeWrites, Exchanges, OutgoingMail, Store, StoreError, Tx, now};

/// An exchange as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct ExchangeRecord {
    /// Its id.
    pub id: i64,
    /// The request it is on.
    pub request: u64,
    /// `received` (from the customer) or `sent` (to the customer).
    pub direction: String,
    /// Its type: `relance` for a reminder, `message`, or the desk's own.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub exchange_type: Option<String>,
    /// The customer's contact, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// The customer's address used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The collaborator on staff's side, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collaborator: Option<String>,
    /// Its subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Its text (empty for a received mail: the mail is in the store).
    pub body: String,
    /// The Message-ID of the mail it was recorded from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// When it happened.
    pub created_at: String,
}

/// An exchange recorded by hand (a call, a visit, a mail sent elsewhere).
#[derive(
    Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NewExchange {
    /// `received` or `sent`.
    pub direction: String,
    /// Its type.
    #[serde(default, rename = "type")]
    pub exchange_type: Option<String>,
    /// The customer's contact: by default the request's requester.
    #[serde(default)]
    pub contact: Option<String>,
    /// The collaborator on staff's side.
    #[serde(default)]
    pub collaborator: Option<String>,
    /// Its subject (optional).
    #[serde(default)]
    pub subject: Option<String>,
    /// Its text (required).
    pub body: String,
}

/// Exchanges with the Message-ID of the mail each came from.
const SELECT: &str =
    "SELECT e.id, e.request, e.direction, e.type, e.contact, e.address, e.collaborator,
            e.subject, e.body, coalesce(m.message_id, o.message_id), e.created_at
     FROM exchanges AS e
     LEFT JOIN mails AS m ON m.id = e.mail
     LEFT JOIN outbox AS o ON o.id = e.outbox";

fn exchange_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ExchangeRecord> {
    Ok(ExchangeRecord {
        id: r.get(0)?,
        request: r.get::<_, i64>(1)? as u64,
        direction: r.get(2)?,
        exchange_type: r.get(3)?,
        contact: r.get(4)?,
        address: r.get(5)?,
        collaborator: r.get(6)?,
        subject: r.get(7)?,
        body: r.get(8)?,
        message_id: r.get(9)?,
        created_at: r.get(10)?,
    })
}

/// Checks an exchange type: a short code of lowercase letters, digits and
/// dashes (`relance`, `message`, `phone-call`).
pub fn check_type(code: &str) -> Result<(), StoreError> {
    let valid = !code.is_empty()
        && code.len() <= 32
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(StoreError::Refused(format!(
            "exchange type `{code}`: use lowercase letters, digits and dashes, at most 32 (e.g. `{REMINDER}`)"
        )))
    }
}

/// A request's exchanges, as summarised by the SDK's rule
/// ([`ExchangeSummary::of`]): the store reads the rows, oldest first.
fn summary(conn: &rusqlite::Connection, request: u64) -> Result<ExchangeSummary, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT direction, type, created_at FROM exchanges WHERE request = ?1
         ORDER BY created_at, id",
    )?;
    let rows: Vec<(String, Option<String>, String)> = statement
        .query_map([request as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    Ok(ExchangeSummary::of(rows.iter().map(
        |(direction, kind, at)| {
            let side = if direction == "received" {
                Side::Customer
            } else {
                Side::Staff
            };
            (side, kind.as_deref().unwrap_or_default(), at.as_str())
        },
    )))
}

impl Exchanges for Store {
    fn exchanges(&self, request: u64) -> Result<Vec<ExchangeRecord>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(&format!(
            "{SELECT} WHERE e.request = ?1 ORDER BY e.created_at, e.id"
        ))?;
        let rows = statement.query_map([request as i64], exchange_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn exchange(&self, id: i64) -> Result<Option<ExchangeRecord>, StoreError> {
        Ok(self
            .conn()
            .one(
                &format!("{SELECT} WHERE e.id = ?1"),
                [id],
                exchange_from_row,
            )
            .optional()?)
    }

    fn exchange_summary(&self, request: u64) -> Result<ExchangeSummary, StoreError> {
        summary(&self.conn(), request)
    }

    fn find_requests(&self, query: &RequestQuery) -> Result<Vec<RequestActivity>, StoreError> {
        let limit = query.limit.min(RequestQuery::MAX_LIMIT);
        if query.states.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT * FROM (
                SELECT r.number, r.company, r.customer, r.type, r.requester, r.state, r.publishable,
                       r.conversation_locked, r.contract, r.subject,
                       max(r.updated_at,
                           coalesce((SELECT max(created_at) FROM exchanges WHERE request = r.number), ''),
                           coalesce((SELECT max(created_at) FROM messages WHERE request = r.number), ''))
                         AS last_activity
                FROM requests AS r
                WHERE r.state IN (SELECT value FROM json_each(?1)))
             WHERE ?2 IS NULL OR last_activity <= ?2
             ORDER BY last_activity, number LIMIT ?3",
        )?;
        let states = serde_json::to_string(&query.states)?;
        let found: Vec<(relais_sdk::Request, String)> = statement
            .query_map(params![states, query.idle_since, limit as i64], |r| {
                Ok((super::directory::request_from_row(r)?, r.get(10)?))
            })?
            .collect::<Result<_, _>>()?;
        found
            .into_iter()
            .map(|(request, last_activity)| {
                Ok(RequestActivity {
                    exchanges: summary(&conn, request.number)?,
                    request,
                    last_activity,
                })
            })
            .collect()
    }

    fn contact(&self, id: &str) -> Result<Option<Recipient>, StoreError> {
        self.recipient(relais_sdk::PartyKind::Contact, id)
    }
}

impl Tx<'_> {
    /// Records a received mail just linked to `request` as an exchange
    /// received from the customer, or moves its exchange along with it. A
    /// receipt, an automatic mail and a mail from staff are no exchange.
    pub(super) fn record_received_mail(
        &self,
        mail: i64,
        request: u64,
        run: Option<i64>,
    ) -> Result<(), StoreError> {
        let (sender, subject, automatic, report, received_at): (
            Option<String>,
            String,
            Option<String>,
            Option<String>,
            String,
        ) = self.conn.one(
            "SELECT sender, subject, automatic, report, received_at FROM mails WHERE id = ?1",
            [mail],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )?;
        let staff = match &sender {
            Some(sender) => self.conn.one(
                "SELECT EXISTS (SELECT 1 FROM collaborators
                                WHERE email = ?1 COLLATE NOCASE OR email2 = ?1 COLLATE NOCASE)",
                [sender],
                |r| r.get::<_, bool>(0),
            )?,
            None => false,
        };
        if automatic.is_some() || report.is_some() || staff {
            self.conn
                .run("DELETE FROM exchanges WHERE mail = ?1", [mail])?;
            return Ok(());
        }
        let contact = match &sender {
            Some(sender) => self.customer_contact(request, sender)?,
            None => None,
        };
        self.conn.run(
            "INSERT INTO exchanges (request, direction, contact, address, subject, mail, created_at, run)
             VALUES (?1, 'received', ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (mail) DO UPDATE SET request = excluded.request, contact = excluded.contact",
            params![request as i64, contact, sender, subject, mail, received_at, run],
        )?;
        Ok(())
    }

    /// The one contact of `request`'s customer with this address (email or
    /// email2, in any case); `None` when none or several have it.
    fn customer_contact(&self, request: u64, address: &str) -> Result<Option<String>, StoreError> {
        let conn = &*self.conn;
        let mut statement = conn.prepare_cached(
            "SELECT c.id FROM contacts AS c JOIN requests AS r ON r.customer = c.customer
             WHERE r.number = ?1
               AND (c.email = ?2 COLLATE NOCASE OR c.email2 = ?2 COLLATE NOCASE)
             LIMIT 2",
        )?;
        let ids: Vec<String> = statement
            .query_map(params![request as i64, address.trim()], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(match ids.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        })
    }
}

impl ExchangeWrites for Tx<'_> {
    fn record_sent_mail(
        &self,
        outbox: i64,
        mail: &OutgoingMail,
        exchange_type: &str,
        run: Option<i64>,
    ) -> Result<(), StoreError> {
        check_type(exchange_type)?;
        let Some(request) = mail.request else {
            return Err(StoreError::Refused(format!(
                "a mail recorded as an exchange (`{exchange_type}`) names its request"
            )));
        };
        self.require_request(request)?;
        let address = mail.to.first().map(|a| a.trim().to_string());
        let contact = match &address {
            Some(address) => self.customer_contact(request, address)?,
            None => None,
        };
        self.conn.run(
            "INSERT INTO exchanges (request, direction, type, contact, address, subject, body, outbox,
                                    created_at, run)
             VALUES (?1, 'sent', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                request as i64,
                exchange_type,
                contact,
                address,
                mail.subject,
                mail.body,
                outbox,
                now(),
                run
            ],
        )?;
        Ok(())
    }

    fn record_exchange(&self, request: u64, new: &NewExchange) -> Result<i64, StoreError> {
        let found = self.require_request(request)?;
        if new.direction != "received" && new.direction != "sent" {
            return Err(StoreError::Refused(format!(
                "direction `{}`: `received` (from the customer) or `sent` (to the customer)",
                new.direction
            )));
        }
        if new.body.trim().is_empty() {
            return Err(StoreError::Refused(
                "an exchange needs its text (`body`)".to_string(),
            ));
        }
        if let Some(code) = &new.exchange_type {
            check_type(code)?;
        }
        let contact = new.contact.clone().or(found.requester);
        // The contact must be the request's customer's; its Mail 1 is the
        // address the exchange went through.
        let mut address = None;
        if let Some(id) = &contact {
            let row: Option<(String, Option<String>)> = self
                .conn
                .one(
                    "SELECT customer, email FROM contacts WHERE id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            match row {
                Some((customer, email)) if customer == found.customer => address = email,
                _ => {
                    return Err(StoreError::Refused(format!(
                        "contact `{id}` is not a contact of customer `{}`",
                        found.customer
                    )));
                }
            }
        }
        if let Some(id) = &new.collaborator {
            let known: bool = self.conn.one(
                "SELECT EXISTS (SELECT 1 FROM collaborators WHERE id = ?1)",
                [id],
                |r| r.get(0),
            )?;
            if !known {
                return Err(StoreError::Refused(format!("no collaborator `{id}`")));
            }
        }
        self.conn.run(
            "INSERT INTO exchanges (request, direction, type, contact, address, collaborator,
                                    subject, body, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                request as i64,
                new.direction,
                new.exchange_type,
                contact,
                address,
                new.collaborator,
                new.subject,
                new.body,
                now()
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const DIRECTORY: &str = "companies: [ { code: A, name: Acme } ]\n\
        customers: [ { code: C1, name: Dupont, company: A } ]\n\
        contacts: [ { id: ct1, name: Jeanne, customer: C1, email: jeanne@dupont.example } ]\n\
        collaborators: [ { id: co1, name: Paul, email: paul@acme.example } ]\n\
        request-types: [ { code: INC } ]\n\
        requests: [ { number: 7, company: A, customer: C1, type: INC, requester: ct1, state: waiting },\n\
                    { number: 8, company: A, customer: C1, type: INC, requester: ct1, state: waiting },\n\
                    { number: 9, company: A, customer: C1, type: INC, requester: ct1, state: open } ]\n";

    fn store() -> Store {
        let mut store = Store::open_in_memory().expect("store");
        let data = crate::directory::parse(Path::new("d.yaml"), DIRECTORY, &store).expect("valid");
        store.import_directory(&data).expect("import");
        // Every request last saved on 1 November.
        store
            .conn()
            .execute_batch("UPDATE requests SET updated_at = '2026-11-01T00:00:00.000Z'")
            .expect("age");
        store
    }

    fn record(store: &mut Store, request: u64, direction: &str, kind: Option<&str>, at: &str) {
        let tx = store.begin().expect("tx");
        let id = tx
            .record_exchange(
                request,
                &NewExchange {
                    direction: direction.to_string(),
                    exchange_type: kind.map(str::to_string),
                    body: "text".to_string(),
                    ..NewExchange::default()
                },
            )
            .expect("recorded");
        tx.conn
            .run(
                "UPDATE exchanges SET created_at = ?2 WHERE id = ?1",
                params![id, at],
            )
            .expect("date");
        tx.commit().expect("commit");
    }

    fn waiting(store: &Store, idle_since: &str) -> Vec<(u64, String)> {
        store
            .find_requests(&RequestQuery {
                states: vec!["waiting".to_string()],
                idle_since: Some(idle_since.to_string()),
                limit: 10,
            })
            .expect("found")
            .into_iter()
            .map(|a| (a.request.number, a.last_activity))
            .collect()
    }

    #[test]
    fn idle_requests_are_found_by_state_and_last_activity_longest_idle_first() {
        let mut store = store();
        assert_eq!(
            waiting(&store, "2026-11-10T00:00:00.000Z"),
            [
                (7, "2026-11-01T00:00:00.000Z".to_string()),
                (8, "2026-11-01T00:00:00.000Z".to_string())
            ]
        );
        // An exchange on 7 on the 12th: active since, and listed after 8.
        record(
            &mut store,
            7,
            "sent",
            Some(REMINDER),
            "2026-11-12T00:00:00.000Z",
        );
        assert_eq!(
            waiting(&store, "2026-11-10T00:00:00.000Z"),
            [(8, "2026-11-01T00:00:00.000Z".to_string())]
        );
        let later = waiting(&store, "2026-11-20T00:00:00.000Z");
        assert_eq!(later[1], (7, "2026-11-12T00:00:00.000Z".to_string()));
        // A direct message counts as activity too.
        let tx = store.begin().expect("tx");
        tx.conn
            .run(
                "INSERT INTO messages (request, author_kind, author_id, side, source, body,
                                       notify_by_email, created_at)
                 VALUES (8, 'contact', 'ct1', 'customer', 'portal', 'hi', 0, '2026-11-15T00:00:00.000Z')",
                [],
            )
            .expect("message");
        tx.commit().expect("commit");
        assert_eq!(
            waiting(&store, "2026-11-14T00:00:00.000Z"),
            [(7, "2026-11-12T00:00:00.000Z".to_string())]
        );
        // No state, no limit: nothing asked, nothing found.
        let none = store
            .find_requests(&RequestQuery {
                states: vec![],
                idle_since: None,
                limit: 10,
            })
            .expect("found");
        assert!(none.is_empty());
    }

    #[test]
    fn the_summary_tells_who_spoke_last_and_counts_reminders_since_the_customer_did() {
        let mut store = store();
        assert_eq!(
            store.exchange_summary(7).expect("summary"),
            ExchangeSummary::default()
        );
        record(
            &mut store,
            7,
            "sent",
            Some(REMINDER),
            "2026-11-02T00:00:00.000Z",
        );
        record(&mut store, 7, "received", None, "2026-11-03T00:00:00.000Z");
        record(
            &mut store,
            7,
            "sent",
            Some("message"),
            "2026-11-04T00:00:00.000Z",
        );
        record(
            &mut store,
            7,
            "sent",
            Some(REMINDER),
            "2026-11-05T00:00:00.000Z",
        );
        record(
            &mut store,
            7,
            "sent",
            Some(REMINDER),
            "2026-11-06T00:00:00.000Z",
        );
        assert_eq!(
            store.exchange_summary(7).expect("summary"),
            ExchangeSummary {
                count: 5,
                last_side: Some(Side::Staff),
                last_at: Some("2026-11-06T00:00:00.000Z".to_string()),
                reminders: 2,
            }
        );
        record(&mut store, 7, "received", None, "2026-11-07T00:00:00.000Z");
        let summary = store.exchange_summary(7).expect("summary");
        assert_eq!(
            (summary.last_side, summary.reminders),
            (Some(Side::Customer), 0)
        );
        // The requester is the contact by default.
        assert_eq!(
            store.exchanges(7).expect("list")[0].contact.as_deref(),
            Some("ct1")
        );
    }

    #[test]
    fn a_bad_exchange_is_refused_and_nothing_written() {
        let mut store = store();
        let tx = store.begin().expect("tx");
        for (exchange, needle) in [
            (
                NewExchange {
                    direction: "out".into(),
                    body: "x".into(),
                    ..NewExchange::default()
                },
                "direction `out`",
            ),
            (
                NewExchange {
                    direction: "sent".into(),
                    body: " ".into(),
                    ..NewExchange::default()
                },
                "needs its text",
            ),
            (
                NewExchange {
                    direction: "sent".into(),
                    body: "x".into(),
                    exchange_type: Some("Relance!".into()),
                    ..NewExchange::default()
                },
                "exchange type `Relance!`",
            ),
            (
                NewExchange {
                    direction: "sent".into(),
                    body: "x".into(),
                    contact: Some("ct9".into()),
                    ..NewExchange::default()
                },
                "contact `ct9` is not a contact of customer `C1`",
            ),
            (
                NewExchange {
                    direction: "sent".into(),
                    body: "x".into(),
                    collaborator: Some("co9".into()),
                    ..NewExchange::default()
                },
                "no collaborator `co9`",
            ),
        ] {
            let error = tx.record_exchange(7, &exchange).expect_err("refused");
            assert!(error.to_string().contains(needle), "{error}");
        }
        let error = tx
            .record_exchange(
                99,
                &NewExchange {
                    direction: "sent".into(),
                    body: "x".into(),
                    ..NewExchange::default()
                },
            )
            .expect_err("refused");
        assert!(
            error.to_string().contains("request 99 does not exist"),
            "{error}"
        );
        drop(tx);
        assert!(store.exchanges(7).expect("list").is_empty());
    }
}
