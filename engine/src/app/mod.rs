//! The application layer: what each write means. The HTTP API, the CLI,
//! the scheduler and the sources hand it data (a [`Command`] that runs
//! plugins, a [`manual::Write`] that a person asks for) and map its
//! answers and [`CallError`]s; none of them writes business data itself.
//!
//! - [`Command`]: a request save, a contract event, a scheduled run:
//!   decided where plugins may run (beside the writer, reading only), then
//!   committed by the writer.
//! - [`manual::Write`]: a direct message posted, an exchange recorded, a
//!   message marked read, a mail linked by hand, a directory import:
//!   checked, applied through the effects path
//!   ([`crate::effects::apply_manual`]) and traced as a run of its own,
//!   marked manual.
//! - [`actions`]: the CLI's way of running a command here and now, and
//!   what a request save answers.

pub mod actions;
pub mod activity;
pub mod answers;
pub mod links;
pub mod mails;
pub mod manual;
pub mod retry;
pub mod runs;

use relais_sdk::{Contract, ContractEvent, Event};

use crate::config::RequestStates;
use crate::directory::RequestSpec;
use crate::dispatch::{DecidedEvent, Decider, Dispatcher, Report};
use crate::store::prelude::*;

/// Why a call was not carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The input is wrong (`field` names what, when one field is); nothing
    /// was written.
    Invalid {
        /// The field at fault.
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// What the call names does not exist.
    NotFound(String),
    /// The data does not allow it now (a locked conversation...).
    Conflict(String),
    /// The engine failed (the store...); nothing was written.
    Internal(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Invalid {
                field: Some(field),
                message,
            } => write!(f, "{field}: {message}"),
            CallError::Invalid {
                field: None,
                message,
            }
            | CallError::NotFound(message)
            | CallError::Conflict(message)
            | CallError::Internal(message) => f.write_str(message),
        }
    }
}

impl From<crate::requests::SaveError> for CallError {
    fn from(error: crate::requests::SaveError) -> Self {
        match error {
            crate::requests::SaveError::Field(error) => CallError::Invalid {
                field: Some(error.field),
                message: error.message,
            },
            crate::requests::SaveError::Store(error) => error.into(),
        }
    }
}

impl From<crate::store::StoreError> for CallError {
    fn from(error: crate::store::StoreError) -> Self {
        match error {
            crate::store::StoreError::Refused(message) => CallError::Conflict(message),
            other => CallError::Internal(other.to_string()),
        }
    }
}

/// A write as data, carried out in two steps: decided where plugins may
/// run (beside the writer, reading only), then committed by the writer.
// Carried in a box (`CommandTask`), one per write: not worth boxing again.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Command {
    /// Check and save a request, running `request-saved`: the request, the
    /// run and the effects are written in one transaction. A failing
    /// plugin does not undo the save (the support system already saved
    /// it): the run is traced as failed, with the event, so it can be run
    /// again.
    SaveRequest {
        /// The request as the support system saved it.
        request: RequestSpec,
        /// Which states count as resolved and closed.
        states: RequestStates,
        /// Write nothing, say what would be done.
        dry_run: bool,
    },
    /// Run `contract-event` for a contract.
    ContractEvent {
        /// The event's kind (`expiring`...).
        kind: String,
        /// The contract's code.
        contract: String,
        /// Write nothing, say what would be done.
        dry_run: bool,
    },
    /// A failed run's event replayed through the rule set running now
    /// (see [`retry::prepare`]).
    Retry {
        /// The failed run.
        of: i64,
        /// Its event, rebuilt.
        event: Event,
        /// For a mail, who its sender was found to be when it arrived.
        authentication: Option<relais_sdk::SenderAuthentication>,
    },
    /// A schedule rule fired: its run, and when it last fired recorded with
    /// it.
    Fire {
        /// The event (the rule and the time it fired for).
        event: Event,
        /// When it fired, as `schedule_state` keeps it.
        recorded: chrono::DateTime<chrono::Utc>,
        /// The schedule it fired on.
        schedule: String,
    },
}

impl Command {
    /// Its ordering keys: what it shares with other events, which must not
    /// be decided before it is committed (see `daemon::order`).
    pub fn keys(&self) -> Vec<String> {
        match self {
            Command::SaveRequest { request, .. } => vec![request_key(request.number)],
            Command::ContractEvent { contract, .. } => vec![contract_key(contract)],
            Command::Fire { event, .. } | Command::Retry { event, .. } => event_keys(event),
        }
    }

    /// Decides: checks it against the directory, then runs its rules. It
    /// only reads.
    pub fn decide(&self, decider: &Decider<'_>) -> Result<DecidedEvent, CallError> {
        match self {
            Command::SaveRequest {
                request, states, ..
            } => {
                crate::requests::check(decider.store, request)?;
                Ok(decider.decide_save(request, states)?)
            }
            Command::ContractEvent { kind, contract, .. } => {
                let invalid = |field: &str, message: String| CallError::Invalid {
                    field: Some(field.to_string()),
                    message,
                };
                if kind.trim().is_empty() {
                    return Err(invalid("kind", "must not be empty".into()));
                }
                let Some(customer) = decider.store.contract_customer(contract)? else {
                    return Err(invalid(
                        "contract",
                        format!("unknown contract `{contract}`"),
                    ));
                };
                let event = Event::ContractEvent(ContractEvent {
                    kind: kind.trim().to_string(),
                    contract: Contract {
                        code: contract.clone(),
                        customer,
                    },
                });
                Ok(decider.decide_event(&event)?)
            }
            Command::Fire { event, .. } => Ok(decider.decide_event(event)?),
            Command::Retry {
                of,
                event,
                authentication,
            } => Ok(decider.decide_again(*of, event, authentication.as_ref())?),
        }
    }

    /// Writes what [`Command::decide`] decided.
    pub fn commit(
        &self,
        dispatcher: &mut Dispatcher<'_>,
        decided: DecidedEvent,
    ) -> Result<Report, CallError> {
        match self {
            Command::SaveRequest {
                request, dry_run, ..
            } => Ok(dispatcher.commit_event(decided, Some(request), *dry_run)?),
            Command::ContractEvent { dry_run, .. } => {
                Ok(dispatcher.commit_event(decided, None, *dry_run)?)
            }
            Command::Fire {
                event,
                recorded,
                schedule,
            } => {
                let report = dispatcher.commit_event(decided, None, false)?;
                let rule = match event {
                    Event::Schedule(fired) => fired.rule.as_str(),
                    _ => "",
                };
                dispatcher.store.set_last_fired(rule, *recorded, schedule)?;
                Ok(report)
            }
            Command::Retry { event, .. } => Ok(dispatcher.commit_again(decided, event)?),
        }
    }

    /// Decides and commits, on the writer.
    pub fn run(&self, dispatcher: &mut Dispatcher<'_>) -> Result<Report, CallError> {
        let decided = self.decide(&dispatcher.decider())?;
        self.commit(dispatcher, decided)
    }
}

/// The ordering key of everything about request `number`: its saves, and
/// the mails whose subject may name it.
pub fn request_key(number: u64) -> String {
    format!("request:{number}")
}

/// The ordering keys of a mail: every Message-ID of its thread it names
/// (its own, `In-Reply-To`, `References`), its sender's address, and each
/// number of six digits or more in its subject (the requests it may name,
/// whatever the desk's tag format).
pub fn mail_keys(mail: &relais_sdk::Mail) -> Vec<String> {
    let mut keys = Vec::new();
    let ids = std::iter::once(&mail.message_id)
        .chain(&mail.in_reply_to)
        .chain(&mail.references);
    keys.extend(ids.map(|id| format!("id:{}", id.to_lowercase())));
    if let Some(from) = &mail.from {
        keys.push(format!("from:{}", from.email.to_lowercase()));
    }
    let numbers = mail
        .subject
        .split(|c: char| !c.is_ascii_digit())
        .filter(|digits| digits.len() >= 6)
        .filter_map(|digits| digits.parse::<u64>().ok());
    keys.extend(numbers.map(request_key));
    keys
}

/// The ordering keys of an event: a mail's ([`mail_keys`]), a request
/// save's request, a contract event's contract, a schedule's rule.
pub fn event_keys(event: &Event) -> Vec<String> {
    match event {
        Event::MailReceived(mail) => mail_keys(mail),
        Event::RequestSaved(saved) => vec![request_key(saved.after.number)],
        Event::ContractEvent(event) => vec![contract_key(&event.contract.code)],
        Event::Schedule(fired) => vec![rule_key(&fired.rule)],
    }
}

/// The ordering key of a contract's events.
fn contract_key(code: &str) -> String {
    format!("contract:{code}")
}

/// The ordering key of a schedule rule's firings.
fn rule_key(rule: &str) -> String {
    format!("rule:{rule}")
}
