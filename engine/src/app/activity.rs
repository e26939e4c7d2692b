//! A request's whole story, as `GET /requests/{number}/activity` and
//! `relais request show` tell it: its direct messages, its exchanges with
//! the customer, the mail it received and the mail Relais sent about it
//! (alerts, notices, replies, reminders), in the order they happened.

use super::CallError;
use crate::directory::RequestSpec;
use crate::store::prelude::*;
use crate::store::{ExchangeRecord, MAX_PAGE, MailQuery, MailRow, MessageRecord, OutboxRecord};

/// A mail Relais queued about a request, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct SentMail {
    /// Its outbox id (`relais outbox`).
    pub id: i64,
    /// Its Message-ID.
    pub message_id: String,
    /// `mail` (an alert, a notice, a reminder) or `failure-reply`.
    pub kind: String,
    /// Its recipients.
    pub to: Vec<String>,
    /// Subject.
    pub subject: String,
    /// Its text.
    pub body: String,
    /// `queued`, `sent`, `failed` or `suppressed`.
    pub status: String,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// The last delivery error.
    pub last_error: Option<String>,
}

impl From<OutboxRecord> for SentMail {
    fn from(record: OutboxRecord) -> Self {
        SentMail {
            id: record.id,
            message_id: record.mail.message_id,
            kind: record.mail.kind,
            to: record.mail.to,
            subject: record.mail.subject,
            body: record.mail.body,
            status: record.status,
            attempts: record.attempts,
            last_error: record.last_error,
        }
    }
}

/// One thing that happened on a request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Entry {
    /// A direct message was posted.
    Message {
        /// When.
        at: String,
        /// The message.
        message: MessageRecord,
    },
    /// An exchange with the customer was recorded (a mail linked, a call
    /// recorded by hand, a reminder sent...).
    Exchange {
        /// When.
        at: String,
        /// The exchange.
        exchange: ExchangeRecord,
    },
    /// A mail was received on the request (linked by a rule or by hand).
    MailReceived {
        /// When it was stored.
        at: String,
        /// The mail, with the run that processed it.
        mail: MailRow,
    },
    /// Relais queued a mail about the request (an alert, a notice, a
    /// failure reply, a reminder), with what became of it.
    MailSent {
        /// When it was queued.
        at: String,
        /// The mail and its delivery.
        mail: SentMail,
    },
}

impl Entry {
    fn at(&self) -> &str {
        match self {
            Entry::Message { at, .. }
            | Entry::Exchange { at, .. }
            | Entry::MailReceived { at, .. }
            | Entry::MailSent { at, .. } => at,
        }
    }
}

/// A request and what happened on it, oldest first.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct Activity {
    /// The request, as `GET /requests/{number}` gives it.
    pub request: RequestSpec,
    /// What happened on it, oldest first.
    pub activity: Vec<Entry>,
}

/// Request `number`'s activity.
pub fn activity(
    store: &(impl DirectoryRead + Conversations + Outbox + MailStore + Runs),
    number: u64,
) -> Result<Activity, CallError> {
    let Some(request) = store.request(number)? else {
        return Err(CallError::NotFound(format!("no request {number}")));
    };
    let mut activity: Vec<Entry> = Vec::new();
    activity.extend(
        store
            .messages(number)?
            .into_iter()
            .map(|message| Entry::Message {
                at: message.created_at.clone(),
                message,
            }),
    );
    activity.extend(
        store
            .exchanges(number)?
            .into_iter()
            .map(|exchange| Entry::Exchange {
                at: exchange.created_at.clone(),
                exchange,
            }),
    );
    let received = store.search_mails(&MailQuery {
        ticket: Some(number),
        limit: MAX_PAGE,
        ..MailQuery::default()
    })?;
    activity.extend(received.mails.into_iter().map(|mail| Entry::MailReceived {
        at: mail.received_at.clone(),
        mail,
    }));
    activity.extend(
        store
            .outbox_of_request(number)?
            .into_iter()
            .map(|mail| Entry::MailSent {
                at: mail.created_at.clone(),
                mail: mail.into(),
            }),
    );
    // The times are the store's, UTC with milliseconds: in order as text.
    activity.sort_by(|a, b| a.at().cmp(b.at()));
    Ok(Activity {
        request: RequestSpec::from(request),
        activity,
    })
}
