//! What an event did and why: the report a run answers and stores.

use relais_sdk::Effect;
use serde::Serialize;

use crate::effects;

/// How an event ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Rules matched and their effects were applied.
    Applied,
    /// No rule matched: nothing to do.
    NoMatch,
    /// Dry run: the effects were computed, not applied.
    DryRun,
    /// A plugin or an effect failed; nothing was applied.
    Failed,
    /// The input is not processable (empty, malformed, too large, unreadable).
    Rejected,
    /// This mail was already processed.
    Duplicate,
}

impl Outcome {
    /// The name used in traces and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::NoMatch => "no-match",
            Outcome::DryRun => "dry-run",
            Outcome::Failed => "failed",
            Outcome::Rejected => "rejected",
            Outcome::Duplicate => "duplicate",
        }
    }
}

/// A plugin's log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// The plugin's name.
    pub plugin: String,
    /// `debug`, `info`, `warn` or `error`.
    pub level: &'static str,
    /// The line.
    pub message: String,
}

/// What one rule did with the event.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RuleTrace {
    /// The rule's id.
    pub id: String,
    /// Where it is defined.
    pub source: String,
    /// Whether its conditions held.
    pub matched: bool,
    /// Which condition failed, when it did not match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The plugin run, when it matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// The effects its plugin returned.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub effects: Vec<Effect>,
    /// Its plugin's log lines.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<LogLine>,
    /// Why its plugin failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `refused` (the plugin said no), `fault` (trap, loop, memory, limits)
    /// or `host` (our failure): the first two are the plugin's, a `host`
    /// failure is worth a retry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<&'static str>,
    /// How long its plugin took, in microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_us: Option<u64>,
}

/// What an event did: printed by the CLI, stored as the run trace.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Report {
    /// The recorded run's id (none on a dry run).
    pub run: Option<i64>,
    /// The trigger.
    pub trigger: String,
    /// Where the input came from (a file path), when it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The mail's Message-ID, for mail events.
    pub message_id: Option<String>,
    /// One line saying what the event was.
    pub summary: String,
    /// Ids of the rules that matched.
    pub rules: Vec<String>,
    /// Every effect, in order.
    pub effects: Vec<Effect>,
    /// What the rule behind each effect allows it (its identity, whether
    /// its plugin may mail anyone), side by side with `effects`.
    #[serde(skip)]
    pub grants: Vec<effects::Grant>,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it failed or was rejected.
    pub error: Option<String>,
    /// What could not be read well.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// For a mail: whether its sender is who `From` says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication: Option<relais_sdk::SenderAuthentication>,
    /// Per rule that matched: its plugin, effects, logs, failure.
    pub trace: Vec<RuleTrace>,
    /// How many of the trigger's rules did not match (counted, not
    /// traced: `relais runs show` says why each did not).
    pub not_matched: usize,
    /// The hash of the rule set the event ran on.
    pub rule_set: Option<String>,
    /// How long it took, in microseconds.
    pub duration_us: u64,
    /// The event, for events that carry no mail: kept in the trace so that
    /// the run can be replayed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<serde_json::Value>,
    /// The failed run this one replays (`POST /runs/{id}/retry`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<i64>,
}

impl Report {
    pub(super) fn new(trigger: &str, summary: String, outcome: Outcome) -> Report {
        Report {
            run: None,
            trigger: trigger.to_string(),
            source: None,
            message_id: None,
            summary,
            rules: Vec::new(),
            effects: Vec::new(),
            grants: Vec::new(),
            outcome,
            error: None,
            warnings: Vec::new(),
            authentication: None,
            trace: Vec::new(),
            not_matched: 0,
            rule_set: None,
            duration_us: 0,
            event: None,
            retry_of: None,
        }
    }
}
