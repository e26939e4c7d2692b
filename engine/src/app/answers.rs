//! What the application layer's writes answer. The HTTP API serves them
//! as they are (the OpenAPI document is generated from them) and the CLI
//! prints them.

use relais_sdk::{Effect, ExchangeSummary};
use serde::Serialize;
use utoipa::ToSchema;

use crate::dispatch::{Outcome, Report};
use crate::store::{DirectoryCounts, ExchangeRecord, MessageRecord};

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
