//! The bodies the API answers, as types: the handlers answer them and the
//! OpenAPI document is generated from them, so the two cannot differ.
//! Every field is kebab-case, as in the bodies the API takes, the rule
//! files and the import format.

use relais_sdk::{Effect, ExchangeSummary};
use serde::Serialize;
use utoipa::ToSchema;

use crate::dispatch::{Outcome, Report};
use crate::store::{Candidate, DirectoryCounts, ExchangeRecord, MessageRecord, ThreadNode};

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

/// What an event did: a request save (with the request and what changed),
/// a contract event, a fired schedule.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct EventAnswer {
    /// A request save's request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<u64>,
    /// What a request save changed: `opened`, `resolved`, `closed`,
    /// `state-changed`; empty when nothing rules look at did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<String>>,
    /// The recorded run (`relais runs show ID`); none on a dry run.
    pub run: Option<i64>,
    /// How it ended.
    pub outcome: Outcome,
    /// One line saying what the event was.
    pub summary: String,
    /// The rules that matched.
    pub rules: Vec<String>,
    /// Every effect, in order (on a dry run, those that would apply).
    pub effects: Vec<Effect>,
    /// Why it failed or was rejected.
    pub error: Option<String>,
}

impl From<&Report> for EventAnswer {
    fn from(report: &Report) -> Self {
        EventAnswer {
            request: None,
            changes: None,
            run: report.run,
            outcome: report.outcome,
            summary: report.summary.clone(),
            rules: report.rules.clone(),
            effects: report.effects.clone(),
            error: report.error.clone(),
        }
    }
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

/// `POST /requests/{number}/messages`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct PostedMessage {
    /// The message as stored.
    pub message: Option<MessageRecord>,
    /// The address told by mail, when one is.
    pub notified: Option<String>,
    /// Why no one is told, when no one is.
    pub not_notified_because: Option<&'static str>,
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

/// `POST /requests/{number}/exchanges`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct RecordedExchange {
    /// The exchange as stored.
    pub exchange: Option<ExchangeRecord>,
    /// The request's summary with it.
    pub summary: ExchangeSummary,
}

/// `POST /import`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct ImportAnswer {
    /// How many records of each kind were written.
    pub imported: DirectoryCounts,
    /// What is worth a look (an alert format with no template...).
    pub warnings: Vec<String>,
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
