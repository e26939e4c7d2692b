//! The bodies the API answers, as types: the handlers answer them and the
//! OpenAPI document is generated from them, so the two cannot differ.
//! Every field is kebab-case, as in the bodies the API takes, the rule
//! files and the import format.

use relais_sdk::ExchangeSummary;
use serde::Serialize;
use utoipa::ToSchema;

pub use crate::app::answers::{EventAnswer, ImportAnswer, PostedMessage, RecordedExchange};
use crate::app::links::Candidate;
use crate::store::{ExchangeRecord, MessageRecord, ThreadNode};

/// Every failure: `field` names what in the body or path was at fault.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
    /// The field at fault (`author.id`, `number`...), for a 400.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// `GET /health`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
    /// Relais's version.
    pub version: &'static str,
    /// Mails waiting in the outbox.
    pub outbox_queued: u64,
}

/// `GET /requests/{number}/messages`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct MessagesAnswer {
    /// The request.
    pub request: u64,
    /// Its direct messages, oldest first.
    pub messages: Vec<MessageRecord>,
}

/// `GET /requests/{number}/exchanges`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct ExchangesAnswer {
    /// The request.
    pub request: u64,
    /// Who spoke last, how many, the reminders since the customer spoke.
    pub summary: ExchangeSummary,
    /// Its exchanges, oldest first.
    pub exchanges: Vec<ExchangeRecord>,
}

/// `GET /mails/{message_id}/thread`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct ThreadAnswer {
    /// The mail asked about.
    pub message_id: String,
    /// Its thread's roots, each with its replies.
    pub thread: Vec<ThreadNode>,
}

/// `GET /mails/{message_id}/candidates`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct CandidatesAnswer {
    /// The mail asked about.
    pub message_id: String,
    /// The open tickets it could go to, best first.
    pub candidates: Vec<Candidate>,
}
