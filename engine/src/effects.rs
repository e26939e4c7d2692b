//! Applies a plugin's effects to the store, inside the event's transaction.
//!
//! Effects are checked as they are applied: an effect naming a request that
//! does not exist, or posting on a locked conversation, fails the whole
//! event (the transaction is dropped) with a reason naming the effect.

use relais_sdk::{Effect, Mail, Settings};
use sha2::{Digest, Sha256};

use crate::store::{NewMessage, OutgoingMail, StoreError, Tx};

/// Settings of outbound mail that effects produce.
#[derive(Debug, Clone)]
pub struct MailIdentity {
    /// Our own address: the `X-Loop` value, and the sender of automatic replies.
    pub own_address: String,
    /// Right-hand side of the Message-IDs we generate.
    pub message_id_domain: String,
    /// Failure notices to one address within [`MailIdentity::notice_window`]
    /// beyond which they are held back.
    pub notices_per_sender: u32,
    /// The window of that rate limit.
    pub notice_window: std::time::Duration,
}

impl Default for MailIdentity {
    fn default() -> Self {
        MailIdentity {
            own_address: "relais@localhost".to_string(),
            message_id_domain: "relais.localhost".to_string(),
            notices_per_sender: 5,
            notice_window: std::time::Duration::from_secs(3600),
        }
    }
}

/// An effect that could not be applied.
#[derive(Debug, thiserror::Error)]
#[error("effect {index} ({kind}): {source}")]
pub struct EffectError {
    /// Its position in the event's effect list, from 1.
    pub index: usize,
    /// Its kind.
    pub kind: &'static str,
    /// What the store said.
    #[source]
    pub source: StoreError,
}

/// What applying effects needs to know of the event.
#[derive(Debug)]
pub struct EffectContext<'a> {
    /// The run the effects belong to; `None` for an action of the HTTP API
    /// that is not an event (a message posted by a person).
    pub run: Option<i64>,
    /// Global settings at the start of the event.
    pub settings: Settings,
    /// The mail being processed, for replies.
    pub mail: Option<&'a Mail>,
    /// Outbound mail identity.
    pub identity: &'a MailIdentity,
}

/// Applies `effects` in order within `tx`.
pub fn apply(
    tx: &Tx<'_>,
    effects: &[Effect],
    context: &EffectContext<'_>,
) -> Result<(), EffectError> {
    let tag = relais_sdk::TicketTag::parse(&context.settings.ticket_tag).unwrap_or_default();
    for (index, effect) in effects.iter().enumerate() {
        apply_one(tx, effect, index, context, &tag).map_err(|source| EffectError {
            index: index + 1,
            kind: effect.kind(),
            source,
        })?;
    }
    Ok(())
}

fn apply_one(
    tx: &Tx<'_>,
    effect: &Effect,
    index: usize,
    context: &EffectContext<'_>,
    tag: &relais_sdk::TicketTag,
) -> Result<(), StoreError> {
    let run = context.run;
    let tagged = |subject: &str, request: Option<u64>| tagged(tag, subject, request);
    match effect {
        Effect::PostMessage {
            request,
            author,
            side,
            source,
            body,
            notify_by_email,
        } => {
            let notify = notify_by_email.unwrap_or(context.settings.notify_by_email_default);
            let message = NewMessage {
                request: *request,
                author,
                side: *side,
                source: *source,
                body,
                notify_by_email: notify,
            };
            tx.post_message(&message, run)?;
        }
        Effect::SendMail {
            to,
            subject,
            body,
            request,
            exchange,
        } => {
            if to.is_empty() {
                return Err(StoreError::Refused(
                    "a mail needs at least one recipient".to_string(),
                ));
            }
            let mail = OutgoingMail {
                message_id: outbound_id(context, index),
                kind: "mail".to_string(),
                to: to.clone(),
                subject: tagged(subject, *request),
                body: body.clone(),
                // Mail a rule sends is automatic (RFC 3834): out-of-office
                // robots must not answer it, and our own X-Loop lets Relais
                // recognise it should it come back.
                headers: vec![
                    ("Auto-Submitted".to_string(), "auto-generated".to_string()),
                    ("X-Loop".to_string(), context.identity.own_address.clone()),
                ],
                request: *request,
                in_reply_to: Vec::new(),
                references: Vec::new(),
            };
            let queued = tx.queue_mail(&mail, run, None, false)?;
            if let Some(exchange_type) = exchange {
                tx.record_sent_mail(queued, &mail, exchange_type, run)?;
            }
        }
        Effect::ReplyFailure {
            to,
            reason,
            message,
            in_reply_to,
            request,
        } => {
            if to.trim().is_empty() {
                return Err(StoreError::Refused(
                    "a failure reply needs a recipient".to_string(),
                ));
            }
            let original = context.mail.filter(|m| &m.message_id == in_reply_to);
            let mut references: Vec<String> =
                original.map(|m| m.references.clone()).unwrap_or_default();
            references.push(in_reply_to.clone());
            let subject = match original.map(|m| m.subject.trim()) {
                Some(subject) if !subject.is_empty() => format!("Re: {subject}"),
                _ => "Re: your message".to_string(),
            };
            let header_ids = |ids: &[String]| {
                ids.iter()
                    .map(|id| format!("<{id}>"))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let mail = OutgoingMail {
                message_id: outbound_id(context, index),
                kind: "failure-reply".to_string(),
                to: vec![to.trim().to_string()],
                subject: tagged(&subject, *request),
                body: format!("{message}\n\n-- \nCode: {reason}\n"),
                headers: vec![
                    ("Auto-Submitted".to_string(), "auto-replied".to_string()),
                    ("In-Reply-To".to_string(), format!("<{in_reply_to}>")),
                    ("References".to_string(), header_ids(&references)),
                    ("X-Loop".to_string(), context.identity.own_address.clone()),
                    ("X-Relais-Reason".to_string(), reason.clone()),
                ],
                request: *request,
                in_reply_to: vec![in_reply_to.clone()],
                references,
            };
            // Rate limit per sender: a mail loop or a flood of bad mails
            // must not turn Relais into a source of spam. Held-back notices
            // stay in the outbox as `suppressed`, for the record.
            let rate_key = to.trim().to_lowercase();
            let window = chrono::Duration::from_std(context.identity.notice_window)
                .unwrap_or(chrono::Duration::hours(1));
            let since =
                (chrono::Utc::now() - window).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let limit = context.identity.notices_per_sender;
            let suppressed = tx.notices_since(&rate_key, &since, limit)? >= limit;
            if suppressed {
                tracing::info!(reason = %reason, "failure notice held back by the per-sender rate limit");
            }
            tx.queue_mail(&mail, run, Some(&rate_key), suppressed)?;
        }
        Effect::CreateTicket {
            customer,
            company,
            request_type,
            requester,
            subject,
            link_mail,
        } => {
            let number = tx.create_request(
                company,
                customer,
                requester.as_deref(),
                subject,
                request_type,
            )?;
            if let Some(message_id) = link_mail {
                tx.link_mail(message_id, number, run)?;
            }
        }
        Effect::LinkMail {
            message_id,
            request,
        } => {
            tx.link_mail(message_id, *request, run)?;
        }
        Effect::ReopenTicket { request, state } => {
            tx.reopen_request(*request, state)?;
        }
    }
    Ok(())
}

/// `subject` of a mail about `request`, with the desk's ticket tag: mail
/// about a ticket carries it, so the answer comes back to the ticket even
/// from a mail program that drops In-Reply-To and References. The shipped
/// templates write the default tag: a desk with a tag of its own gets its
/// own in their place.
fn tagged(tag: &relais_sdk::TicketTag, subject: &str, request: Option<u64>) -> String {
    let Some(number) = request else {
        return subject.to_string();
    };
    let default_tag = relais_sdk::TicketTag::default();
    if *tag == default_tag {
        tag.apply(subject, number)
    } else {
        tag.apply(
            &subject.replace(&default_tag.render(number), &tag.render(number)),
            number,
        )
    }
}

/// A Message-ID unique to this run and effect, so the outbox never holds
/// one id twice and a resend after a crash is recognised.
fn outbound_id(context: &EffectContext<'_>, index: usize) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let run = context
        .run
        .map(|run| run.to_string())
        .unwrap_or_else(|| "api".to_string());
    let salt = Sha256::digest(format!("{run}:{index}:{nanos}"));
    format!(
        "relais.{}.{}.{}@{}",
        run,
        index + 1,
        &hex::encode(salt)[..12],
        context.identity.message_id_domain
    )
}
