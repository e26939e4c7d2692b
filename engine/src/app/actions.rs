//! Commands run here and now, on the caller's store (the CLI's way; the
//! daemon hands the same [`Command`]s to its dispatcher), and what they
//! answer.

use relais_sdk::Event;
use serde::Deserialize;

use super::answers::EventAnswer;
use super::{CallError, Command};
use crate::config::RequestStates;
use crate::directory::RequestSpec;
use crate::dispatch::{Dispatcher, Report};
use crate::metrics::Metrics;

/// `POST /contract-events`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ContractEventBody {
    /// The contract's code.
    pub contract: String,
    /// The event kind, e.g. `expiring` or `alert-settings-changed`.
    pub kind: String,
}

impl ContractEventBody {
    /// The command it asks for.
    pub fn command(&self, dry_run: bool) -> Command {
        Command::ContractEvent {
            kind: self.kind.clone(),
            contract: self.contract.clone(),
            dry_run,
        }
    }
}

fn invalid(field: &str, message: impl Into<String>) -> CallError {
    CallError::Invalid {
        field: Some(field.to_string()),
        message: message.into(),
    }
}

/// Checks and saves a request, running `request-saved`, here and now (the
/// CLI's way; the daemon hands the same [`Command`] to its dispatcher).
pub fn save_request(
    dispatcher: &mut Dispatcher<'_>,
    request: &RequestSpec,
    states: &RequestStates,
    metrics: &Metrics,
    dry_run: bool,
) -> Result<EventAnswer, CallError> {
    let command = Command::SaveRequest {
        request: request.clone(),
        states: states.clone(),
        dry_run,
    };
    let report = command.run(dispatcher)?;
    metrics.record(&report);
    Ok(saved(request.number, &report))
}

/// What a request save answers: the run, the request and its change kinds.
pub fn saved(number: u64, report: &Report) -> EventAnswer {
    let changes = report
        .event
        .as_ref()
        .and_then(|event| event["changes"].as_array())
        .map(|changes| {
            changes
                .iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    EventAnswer {
        request: Some(number),
        changes: Some(changes),
        ..EventAnswer::from(report)
    }
}

/// Runs a `contract-event`, here and now (the CLI's way; the daemon hands
/// the same [`Command`] to its dispatcher).
pub fn contract_event(
    dispatcher: &mut Dispatcher<'_>,
    body: &ContractEventBody,
    metrics: &Metrics,
    dry_run: bool,
) -> Result<EventAnswer, CallError> {
    let report = body.command(dry_run).run(dispatcher)?;
    metrics.record(&report);
    Ok(EventAnswer::from(&report))
}

/// Retries a failed run, here and now (the CLI's way; the daemon hands
/// the same [`Command`] to its dispatcher): see [`super::retry`].
pub fn retry(
    dispatcher: &mut Dispatcher<'_>,
    run: i64,
    metrics: &Metrics,
) -> Result<EventAnswer, CallError> {
    let command = super::retry::prepare(&*dispatcher.store, run)?;
    let report = command.run(dispatcher)?;
    metrics.record(&report);
    Ok(EventAnswer::from(&report))
}

/// Runs a `schedule` rule now, as its schedule would at `at` (RFC 3339;
/// now by default). When the rule last fired is left as it was: its
/// schedule goes on as before.
pub fn fire_schedule(
    dispatcher: &mut Dispatcher<'_>,
    rule: &str,
    at: Option<&str>,
    metrics: &Metrics,
    dry_run: bool,
) -> Result<EventAnswer, CallError> {
    let Some(found) = dispatcher.rules.rules.iter().find(|r| r.id == rule) else {
        return Err(CallError::NotFound(format!(
            "no rule `{rule}` in the rule set"
        )));
    };
    if !found.trigger.scheduled() {
        return Err(invalid(
            "rule",
            format!(
                "rule `{rule}` runs on `{}`, not on a schedule",
                found.trigger.as_str()
            ),
        ));
    }
    let fired_at = match at {
        Some(at) => chrono::DateTime::parse_from_rfc3339(at)
            .map_err(|error| invalid("at", format!("`{at}` is not an RFC 3339 time: {error}")))?
            .with_timezone(&chrono::Utc),
        None => chrono::Utc::now(),
    };
    let event = Event::Schedule(relais_sdk::ScheduleFired {
        rule: rule.to_string(),
        fired_at: fired_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    let report = dispatcher.handle_event(&event, dry_run)?;
    metrics.record(&report);
    Ok(EventAnswer::from(&report))
}
