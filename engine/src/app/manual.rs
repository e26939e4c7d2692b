//! The writes a person asks for, through the HTTP API or the CLI, that run
//! no plugin: a direct message posted, an exchange recorded, a message
//! marked read, a mail linked by hand, a directory import. Each is data
//! ([`Write`]): checked against the directory (reading only), then applied
//! through the effects path ([`effects::apply_manual`]) in one transaction
//! with a run of its own, whose trigger is `manual` and whose trace says
//! through what it was asked and what it wrote.

use std::time::Instant;

use relais_sdk::{Author, Effect, MessageSource, PartyKind, Side};
use serde::Deserialize;
use serde_json::json;

use super::CallError;
use super::answers::{ImportAnswer, PostedMessage, RecordedExchange};
use super::links::{self, LinkError, Linked, Planned, Target};
use crate::directory::Kind;
use crate::effects::{self, Applied, EffectContext, MailIdentity, ManualEffect};
use crate::store::prelude::*;
use crate::store::{MessageRecord, NewExchange, RunRecord, Store, StoreError, Tx};
use crate::templates::Templates;

/// The trigger name of a manual write's run.
pub const TRIGGER: &str = "manual";

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

impl LinkBody {
    /// Where the mail goes.
    pub fn target(&self) -> Result<Target, CallError> {
        match (self.ticket, &self.new) {
            (Some(ticket), None) => Ok(Target::Ticket(ticket)),
            (None, Some(new)) => Ok(Target::New {
                requester: new.requester.clone(),
                request_type: new.request_type.clone(),
            }),
            _ => Err(invalid("ticket", "give either `ticket` or `new`")),
        }
    }
}

/// A write a person asks for.
#[derive(Debug, Clone)]
pub enum Write {
    /// Post a direct message on a request, from a person (not a rule): the
    /// author must exist and be on the side it writes from (a contact, of
    /// the request's customer, on the customer side; a collaborator on the
    /// staff side). With "notify by email", a staff message is mailed to
    /// the request's requester.
    PostMessage {
        /// The request.
        request: u64,
        /// The message.
        message: MessageBody,
    },
    /// Record an exchange on a request by hand (a call, a visit, a mail
    /// sent from elsewhere).
    RecordExchange {
        /// The request.
        request: u64,
        /// The exchange.
        exchange: NewExchange,
    },
    /// Mark a direct message read or unread.
    MarkRead {
        /// The message's id.
        message: i64,
        /// Read or unread.
        read: bool,
    },
    /// Put a stored mail on a ticket (see [`links::plan`]).
    LinkMail {
        /// The mail's Message-ID, without `<>`.
        message_id: String,
        /// Where it goes.
        target: Target,
        /// Move it from another ticket.
        replace: bool,
    },
    /// Import directory data (the `relais import` format, YAML or JSON);
    /// `name` is what its diagnostics call it.
    Import {
        /// What diagnostics call the text (`body`, a file name).
        name: String,
        /// The data.
        text: String,
    },
}

/// Through what a write was asked for, as its run says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    /// The HTTP API.
    Api,
    /// The command line.
    Cli,
}

/// What a write answers.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(untagged)]
pub enum Written {
    /// A message posted, and who was told.
    Message(PostedMessage),
    /// An exchange recorded, and the request's summary.
    Exchange(RecordedExchange),
    /// The message marked read or unread.
    Read(MessageRecord),
    /// Where the mail is now.
    Linked(Linked),
    /// What an import wrote.
    Imported(ImportAnswer),
}

/// What a write needs besides the store.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The identities mail goes out with (a message's notice).
    pub identity: &'a MailIdentity,
    /// The templates in use, to warn of alert formats an import names
    /// that have none.
    pub templates: Option<&'a Templates>,
    /// Through what the write was asked for.
    pub via: Via,
}

fn invalid(field: &str, message: impl Into<String>) -> CallError {
    CallError::Invalid {
        field: Some(field.to_string()),
        message: message.into(),
    }
}

impl Write {
    /// Checks the write, then applies it with its run, in one transaction.
    pub fn run(&self, store: &mut Store, context: &Context<'_>) -> Result<Written, CallError> {
        let started = Instant::now();
        match self {
            Write::PostMessage { request, message } => {
                post_message(store, context, started, *request, message)
            }
            Write::RecordExchange { request, exchange } => {
                if store.request(*request)?.is_none() {
                    return Err(CallError::NotFound(format!("no request {request}")));
                }
                let effect = ManualEffect::RecordExchange {
                    request: *request,
                    exchange: exchange.clone(),
                };
                let summary = format!(
                    "exchange {} recorded on request {request}",
                    exchange.direction
                );
                // What the store refuses here is the body's fault: a bad
                // direction, type, contact or collaborator.
                let applied = commit(store, context, started, summary, None, &effect, |message| {
                    CallError::Invalid {
                        field: None,
                        message,
                    }
                })?;
                let Applied::Exchange(id) = applied else {
                    return Err(CallError::Internal("no exchange recorded".into()));
                };
                Ok(Written::Exchange(RecordedExchange {
                    exchange: store.exchange(id)?,
                    summary: store.exchange_summary(*request)?,
                }))
            }
            Write::MarkRead { message, read } => {
                if store.message(*message)?.is_none() {
                    return Err(CallError::NotFound(format!("no message {message}")));
                }
                let effect = ManualEffect::MarkRead {
                    message: *message,
                    read: *read,
                };
                let summary = format!(
                    "message {message} marked {}",
                    if *read { "read" } else { "unread" }
                );
                commit(
                    store,
                    context,
                    started,
                    summary,
                    None,
                    &effect,
                    CallError::Conflict,
                )?;
                match store.message(*message)? {
                    Some(record) => Ok(Written::Read(record)),
                    None => Err(CallError::NotFound(format!("no message {message}"))),
                }
            }
            Write::LinkMail {
                message_id,
                target,
                replace,
            } => {
                let effect =
                    links::plan(store, message_id, target, *replace).map_err(
                        |error| match error {
                            LinkError::NoMail(_) | LinkError::NoTicket(_) => {
                                CallError::NotFound(error.to_string())
                            }
                            LinkError::Invalid { field, message } => invalid(field, message),
                            LinkError::Conflict(message) => CallError::Conflict(message),
                            LinkError::Store(error) => error.into(),
                        },
                    )?;
                let effect = match effect {
                    Planned::Write(effect) => effect,
                    Planned::There(ticket) => {
                        return Ok(Written::Linked(Linked {
                            message_id: message_id.clone(),
                            ticket,
                            created: false,
                            previous: None,
                        }));
                    }
                };
                let summary = match target {
                    Target::Ticket(number) => format!("mail <{message_id}> linked to {number}"),
                    Target::New { .. } => format!("mail <{message_id}> linked to a new ticket"),
                };
                let applied = commit(
                    store,
                    context,
                    started,
                    summary,
                    Some(message_id),
                    &effect,
                    CallError::Conflict,
                )?;
                let Applied::Linked {
                    ticket,
                    created,
                    previous,
                } = applied
                else {
                    return Err(CallError::Internal("the mail was not linked".into()));
                };
                Ok(Written::Linked(Linked {
                    message_id: message_id.clone(),
                    ticket,
                    created,
                    previous,
                }))
            }
            Write::Import { name, text } => {
                let data = crate::directory::parse(std::path::Path::new(name), text, &*store)
                    .map_err(|diagnostics| {
                        let lines: Vec<String> =
                            diagnostics.iter().map(ToString::to_string).collect();
                        CallError::Invalid {
                            field: None,
                            message: format!(
                                "invalid import, nothing written:\n{}",
                                lines.join("\n")
                            ),
                        }
                    })?;
                let effect = ManualEffect::Import(Box::new(data));
                let summary = format!("directory imported from {name}");
                let applied = commit(
                    store,
                    context,
                    started,
                    summary,
                    None,
                    &effect,
                    CallError::Conflict,
                )?;
                let Applied::Imported(counts) = applied else {
                    return Err(CallError::Internal("nothing was imported".into()));
                };
                let warnings = match context.templates {
                    Some(templates) => crate::templates::unknown_alert_templates(store, templates)?,
                    None => Vec::new(),
                };
                Ok(Written::Imported(ImportAnswer {
                    imported: counts,
                    warnings,
                }))
            }
        }
    }
}

fn post_message(
    store: &mut Store,
    context: &Context<'_>,
    started: Instant,
    number: u64,
    body: &MessageBody,
) -> Result<Written, CallError> {
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
    let effect = ManualEffect::Plugin(Effect::PostMessage {
        request: number,
        author: author.clone(),
        side,
        source,
        body: body.body.clone(),
        notify_by_email: Some(notify),
    });
    let summary = format!("message posted on request {number} by {}", author.id);
    let tx = store.begin()?;
    // Who the notice goes to, or why no one is told: what the effect
    // applier does for every message, whoever posts it.
    let notice = effects::message_notice(&tx, &request, side, notify)?;
    let traced = Traced {
        context,
        started,
        summary,
        message_id: None,
        settings,
    };
    traced.apply(&tx, &effect, CallError::Conflict)?;
    tx.commit()?;
    Ok(Written::Message(PostedMessage {
        message: store.messages(number)?.pop(),
        notified: notice.as_ref().ok().cloned(),
        not_notified_because: notice.err(),
    }))
}

/// Applies `effect` with its run in a transaction of its own.
fn commit(
    store: &mut Store,
    context: &Context<'_>,
    started: Instant,
    summary: String,
    message_id: Option<&str>,
    effect: &ManualEffect,
    refused: fn(String) -> CallError,
) -> Result<Applied, CallError> {
    let traced = Traced {
        context,
        started,
        summary,
        message_id,
        settings: store.settings()?,
    };
    let tx = store.begin()?;
    let applied = traced.apply(&tx, effect, refused)?;
    tx.commit()?;
    Ok(applied)
}

/// A manual write's run, to record with its effect.
struct Traced<'a> {
    context: &'a Context<'a>,
    started: Instant,
    summary: String,
    message_id: Option<&'a str>,
    settings: relais_sdk::Settings,
}

impl Traced<'_> {
    /// Records the run of `effect`, then applies it, within `tx`; what the
    /// store refuses is `refused`.
    fn apply(
        self,
        tx: &Tx<'_>,
        effect: &ManualEffect,
        refused: fn(String) -> CallError,
    ) -> Result<Applied, CallError> {
        let run = tx.record_run(&RunRecord {
            id: 0,
            trigger: TRIGGER.to_string(),
            summary: self.summary,
            message_id: self.message_id.map(str::to_string),
            outcome: "applied".to_string(),
            error: None,
            started_at: crate::store::now(),
            duration_us: self.started.elapsed().as_micros() as u64,
            trace: json!({
                "manual": { "via": self.context.via, "write": effect.kind() },
                "rules": [],
                "effects": [effect.trace()],
            }),
        })?;
        let effect_context = EffectContext {
            run: Some(run),
            settings: self.settings,
            mail: None,
            identity: self.context.identity,
        };
        effects::apply_manual(tx, effect, &effect_context).map_err(|error| match error.source {
            StoreError::Refused(message) => refused(message),
            other => CallError::Internal(other.to_string()),
        })
    }
}
