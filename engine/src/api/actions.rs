//! What the API's writes do, on the dispatcher thread (the CLI runs the
//! same functions on its own store).

use relais_sdk::{Author, Effect, Event, MessageSource, PartyKind, Side};
use serde::Deserialize;

use super::answers::{EventAnswer, ImportAnswer, PostedMessage, RecordedExchange};
use crate::config::RequestStates;
use crate::directory::{Kind, RequestSpec};
use crate::dispatch::{Dispatcher, Report};
use crate::effects::EffectContext;
use crate::metrics::Metrics;
use crate::tasks::{CallError, Command};

/// `POST /requests/{number}/messages`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MessageBody {
    /// `{ "kind": "collaborator", "id": "co-paul" }`.
    pub author: Author,
    /// `staff` or `customer`; by default, the author's side.
    #[serde(default)]
    pub side: Option<Side>,
    /// `portal`, `desktop`...; by default `desktop` for staff, `portal` for
    /// customers.
    #[serde(default)]
    pub source: Option<MessageSource>,
    /// The text.
    pub body: String,
    /// Notify the other side by mail; by default, the desk's setting.
    #[serde(default)]
    pub notify_by_email: Option<bool>,
}

/// `PUT /messages/{id}/read`.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadBody {
    /// Read (`true`) or unread (`false`).
    pub read: bool,
}

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
    if found.trigger.as_str() != "schedule" {
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

/// Records an exchange on a request by hand (a call, a visit, a mail sent
/// from elsewhere); the exchange as stored.
pub fn record_exchange(
    dispatcher: &mut Dispatcher<'_>,
    number: u64,
    body: &crate::store::NewExchange,
) -> Result<RecordedExchange, CallError> {
    if dispatcher.store.request(number)?.is_none() {
        return Err(CallError::NotFound(format!("no request {number}")));
    }
    let tx = dispatcher.store.begin()?;
    // What the store refuses here is the body's fault: a bad direction,
    // type, contact or collaborator.
    let id = tx
        .record_exchange(number, body)
        .map_err(|error| match error {
            crate::store::StoreError::Refused(message) => CallError::Invalid {
                field: None,
                message,
            },
            other => other.into(),
        })?;
    tx.commit()?;
    Ok(RecordedExchange {
        exchange: dispatcher.store.exchange(id)?,
        summary: dispatcher.store.exchange_summary(number)?,
    })
}

/// Posts a direct message on a request, from a person (not a rule): the
/// author must exist and be on the side it writes from (a contact, of the
/// request's customer, on the customer side; a collaborator on the staff
/// side). With "notify by email", a staff message is mailed to the
/// request's requester.
pub fn post_message(
    dispatcher: &mut Dispatcher<'_>,
    number: u64,
    body: &MessageBody,
) -> Result<PostedMessage, CallError> {
    let store = &*dispatcher.store;
    let Some(request) = store.request(number)? else {
        return Err(CallError::NotFound(format!("no request {number}")));
    };
    let settings = store.settings()?;
    if !settings.direct_messages_enabled {
        return Err(CallError::Conflict(
            "direct messages on requests are disabled (setting direct-messages-enabled)"
                .to_string(),
        ));
    }
    if body.body.trim().is_empty() {
        return Err(invalid("body", "must not be empty"));
    }
    let author = &body.author;
    let own_side = match author.kind {
        PartyKind::Collaborator => {
            if !store.exists_in(Kind::Collaborator, &author.id)? {
                return Err(invalid(
                    "author.id",
                    format!("unknown collaborator `{}`", author.id),
                ));
            }
            Side::Staff
        }
        PartyKind::Contact => {
            match store.contact_customer(&author.id)? {
                None => {
                    return Err(invalid(
                        "author.id",
                        format!("unknown contact `{}`", author.id),
                    ));
                }
                Some(customer) if customer != request.customer => {
                    return Err(invalid(
                        "author.id",
                        format!(
                            "contact `{}` is not a contact of customer `{}`",
                            author.id, request.customer
                        ),
                    ));
                }
                Some(_) => {}
            }
            Side::Customer
        }
    };
    let side = body.side.unwrap_or(own_side);
    if side != own_side {
        return Err(invalid(
            "side",
            "a collaborator writes on the staff side, a contact on the customer side",
        ));
    }
    let source = body.source.unwrap_or(match side {
        Side::Staff => MessageSource::Desktop,
        Side::Customer => MessageSource::Portal,
    });
    let notify = body
        .notify_by_email
        .unwrap_or(settings.notify_by_email_default);
    let effects = vec![Effect::PostMessage {
        request: number,
        author: author.clone(),
        side,
        source,
        body: body.body.clone(),
        notify_by_email: Some(notify),
    }];
    let identity = dispatcher.options.identity.clone();
    let tx = dispatcher.store.begin()?;
    // Who the notice goes to, or why no one is told: what the effect
    // applier does for every message, whoever posts it.
    let notice = crate::effects::message_notice(&tx, &request, side, notify)?;
    let context = EffectContext {
        run: None,
        settings,
        mail: None,
        identity: &identity,
    };
    crate::effects::apply(&tx, &effects, &[], &context).map_err(|error| match error.source {
        crate::store::StoreError::Refused(message) => CallError::Conflict(message),
        other => CallError::Internal(other.to_string()),
    })?;
    tx.commit()?;
    let message = dispatcher.store.messages(number)?.pop();
    Ok(PostedMessage {
        message,
        notified: notice.as_ref().ok().cloned(),
        not_notified_because: notice.err(),
    })
}

/// Imports directory data (the `relais import` format, YAML or JSON).
pub fn import(dispatcher: &mut Dispatcher<'_>, text: &str) -> Result<ImportAnswer, CallError> {
    let data = crate::directory::parse(std::path::Path::new("body"), text, &*dispatcher.store)
        .map_err(|diagnostics| {
            let lines: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
            CallError::Invalid {
                field: None,
                message: format!("invalid import, nothing written:\n{}", lines.join("\n")),
            }
        })?;
    let counts = dispatcher.store.import_directory(&data)?;
    let warnings =
        crate::templates::unknown_alert_templates(dispatcher.store, dispatcher.templates)?;
    Ok(ImportAnswer {
        imported: counts,
        warnings,
    })
}

/// `PUT /mails/{message_id}/ticket`: `{"ticket": 23010203}` or
/// `{"new": {"requester": "ct-jeanne", "type": "INCIDENT"}}`, with
/// `"move": true` to move a mail already on another ticket.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LinkBody {
    /// An existing ticket.
    #[serde(default)]
    pub ticket: Option<u64>,
    /// A new ticket made from the mail.
    #[serde(default)]
    pub new: Option<NewTicketBody>,
    /// Move a mail already on another ticket.
    #[serde(default, rename = "move")]
    pub replace: bool,
}

/// The optional fields of a ticket made from a mail.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NewTicketBody {
    /// The requesting contact; by default the sender's contact.
    #[serde(default)]
    pub requester: Option<String>,
    /// The request type; by default the only one.
    #[serde(default, rename = "type")]
    pub request_type: Option<String>,
}

/// Links a stored mail to a ticket by hand (see [`crate::links::link`]).
pub fn link_mail(
    dispatcher: &mut Dispatcher<'_>,
    message_id: &str,
    body: &LinkBody,
) -> Result<crate::links::Linked, CallError> {
    use crate::links::{LinkError, Target};
    let target = match (body.ticket, &body.new) {
        (Some(ticket), None) => Target::Ticket(ticket),
        (None, Some(new)) => Target::New {
            requester: new.requester.clone(),
            request_type: new.request_type.clone(),
        },
        _ => return Err(invalid("ticket", "give either `ticket` or `new`")),
    };
    match crate::links::link(dispatcher.store, message_id, &target, body.replace) {
        Ok(linked) => Ok(linked),
        Err(error @ (LinkError::NoMail(_) | LinkError::NoTicket(_))) => {
            Err(CallError::NotFound(error.to_string()))
        }
        Err(LinkError::Invalid { field, message }) => Err(invalid(field, message)),
        Err(LinkError::Conflict(message)) => Err(CallError::Conflict(message)),
        Err(LinkError::Store(error)) => Err(error.into()),
    }
}
