//! Applies a plugin's effects to the store, inside the event's transaction.
//!
//! Effects are checked as they are applied: an effect naming a request that
//! does not exist, or posting on a locked conversation, fails the whole
//! event (the transaction is dropped) with a reason naming the effect.
//!
//! The writes a person asks for ([`ManualEffect`]: a message posted, a
//! mail linked by hand, an exchange recorded, a message marked read, an
//! import) are applied here too ([`apply_manual`]), with the same checks,
//! in a run of their own marked manual.

use relais_sdk::{Author, Effect, Mail, PartyKind, Settings, Side};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::directory::DirectoryFile;
use crate::store::prelude::*;
use crate::store::{DirectoryCounts, NewExchange, NewMessage, OutgoingMail, StoreError};

/// The name of the top-level `identity:`.
pub const DEFAULT_IDENTITY: &str = "default";

/// Why `address` is not a plain mail address (`local@domain`, no spaces,
/// no line breaks, no display name), or `None` when it is one.
pub fn address_problem(address: &str) -> Option<&'static str> {
    if address.trim().is_empty() {
        return Some("is empty");
    }
    if address.contains(['\r', '\n']) {
        return Some("holds a line break");
    }
    if address.trim().contains(char::is_whitespace) {
        return Some("holds a space");
    }
    let Some((local, domain)) = address.trim().rsplit_once('@') else {
        return Some("has no `@`");
    };
    if local.is_empty() || domain.is_empty() || domain.contains('@') && !local.starts_with('"') {
        return Some("is not `local-part@domain`");
    }
    if address.contains(['<', '>', ',', ';']) {
        return Some("holds `<`, `>`, `,` or `;` (give the address alone)");
    }
    None
}

/// One identity outbound mail goes out with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    /// Its name in `relais.yaml` (`default` for the top-level `identity:`).
    pub identity: String,
    /// The From address, also the `X-Loop` value.
    pub address: String,
    /// The From's display name.
    pub name: Option<String>,
    /// Where answers go, when not to `address`.
    pub reply_to: Option<String>,
    /// Right-hand side of the Message-IDs generated.
    pub message_id_domain: String,
}

impl Default for Sender {
    fn default() -> Self {
        Sender {
            identity: DEFAULT_IDENTITY.to_string(),
            address: "relais@localhost".to_string(),
            name: None,
            reply_to: None,
            message_id_domain: "relais.localhost".to_string(),
        }
    }
}

impl Sender {
    /// The `From` header value: `Name <address>`, or the address alone.
    pub fn from_header(&self) -> String {
        match &self.name {
            Some(name) if !name.trim().is_empty() => {
                let quoted = name.trim().replace(['\\', '"'], "");
                format!("\"{quoted}\" <{}>", self.address)
            }
            _ => self.address.clone(),
        }
    }

    /// The identity headers of a mail it sends: `From`, `Reply-To` and
    /// our `X-Loop`.
    fn headers(&self) -> Vec<(String, String)> {
        let mut headers = vec![("From".to_string(), self.from_header())];
        if let Some(reply_to) = &self.reply_to {
            headers.push(("Reply-To".to_string(), reply_to.clone()));
        }
        headers.push(("X-Loop".to_string(), self.address.clone()));
        headers
    }
}

/// Who outbound mail is from, and the limits of failure notices.
#[derive(Debug, Clone)]
pub struct MailIdentity {
    /// The top-level `identity:`: alerts, reminders, message
    /// notifications, unless a rule names another.
    pub default: Sender,
    /// The named `identities:`.
    pub named: Vec<Sender>,
    /// Account name to the identity its notices come from.
    pub accounts: std::collections::BTreeMap<String, String>,
    /// Failure notices to one address within [`MailIdentity::notice_window`]
    /// beyond which they are held back.
    pub notices_per_sender: u32,
    /// The window of that rate limit.
    pub notice_window: std::time::Duration,
}

impl Default for MailIdentity {
    fn default() -> Self {
        MailIdentity {
            default: Sender::default(),
            named: Vec::new(),
            accounts: std::collections::BTreeMap::new(),
            notices_per_sender: 5,
            notice_window: std::time::Duration::from_secs(3600),
        }
    }
}

impl MailIdentity {
    /// The identity called `name` (`default` included).
    pub fn named(&self, name: &str) -> Option<&Sender> {
        std::iter::once(&self.default)
            .chain(&self.named)
            .find(|sender| sender.identity == name)
    }

    /// Every address of ours: mail carrying one in `X-Loop` came from us.
    pub fn own_addresses(&self) -> Vec<&str> {
        std::iter::once(&self.default)
            .chain(&self.named)
            .map(|sender| sender.address.as_str())
            .collect()
    }

    /// The identity a failure notice about `mail` comes from: the one of
    /// the account it arrived on, else the identity whose address it was
    /// sent to, else the default. The sender answered an address; the
    /// notice comes back from that address.
    pub fn for_notice(&self, mail: Option<&Mail>) -> &Sender {
        let Some(mail) = mail else {
            return &self.default;
        };
        if let Some(sender) = self
            .accounts
            .get(&mail.account)
            .and_then(|name| self.named(name))
        {
            return sender;
        }
        let recipients: Vec<&str> = mail
            .to
            .iter()
            .chain(&mail.cc)
            .map(|a| a.email.trim())
            .collect();
        std::iter::once(&self.default)
            .chain(&self.named)
            .find(|sender| {
                recipients
                    .iter()
                    .any(|to| to.eq_ignore_ascii_case(&sender.address))
            })
            .unwrap_or(&self.default)
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

/// What the rule whose plugin returned an effect lets it do: the identity
/// its mail goes out with, and whether it may mail anyone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    /// The rule's `identity:`; the default identity when `None`.
    pub identity: Option<String>,
    /// The plugin declared the `mail-anyone` capability: its `send-mail`
    /// may go to addresses that are in no directory record.
    pub mail_anyone: bool,
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

/// Applies `effects` in order within `tx`; `grants[i]`, when there, is
/// what the rule behind `effects[i]` allows (else the defaults).
///
/// Every effect is checked against the directory here, whichever plugin
/// returned it: a plugin decides, but only within the customer boundary.
pub fn apply(
    tx: &impl EventTx,
    effects: &[Effect],
    grants: &[Grant],
    context: &EffectContext<'_>,
) -> Result<(), EffectError> {
    let tag = relais_sdk::TicketTag::parse(&context.settings.ticket_tag).unwrap_or_default();
    let default_grant = Grant::default();
    for (index, effect) in effects.iter().enumerate() {
        let grant = grants.get(index).unwrap_or(&default_grant);
        apply_one(tx, effect, index, grant, context, &tag).map_err(|source| EffectError {
            index: index + 1,
            kind: effect.kind(),
            source,
        })?;
    }
    Ok(())
}

/// Who a direct message is mailed to, or why no one is: a staff message
/// with "notify by email" goes to the request's requester (Mail 1).
/// Customers' messages are read in the desk.
pub fn message_notice(
    tx: &impl EventTx,
    request: &relais_sdk::Request,
    side: Side,
    notify: bool,
) -> Result<Result<String, &'static str>, StoreError> {
    Ok(match (notify, side) {
        (false, _) => Err("not asked"),
        (true, Side::Customer) => Err("staff read customer messages in the desk"),
        (true, Side::Staff) => match &request.requester {
            None => Err("the request has no requester"),
            Some(requester) => match tx.contact_email(requester)? {
                Some(email) => Ok(email),
                None => Err("the requester has no email address"),
            },
        },
    })
}

fn refused(message: String) -> StoreError {
    StoreError::Refused(message)
}

/// A message's author must be on its side and, for a contact, of the
/// request's customer.
fn check_author(
    tx: &impl EventTx,
    request: &relais_sdk::Request,
    author: &Author,
    side: Side,
) -> Result<(), StoreError> {
    match (author.kind, side) {
        (PartyKind::Collaborator, Side::Staff) => {
            if tx.party(PartyKind::Collaborator, &author.id)?.is_none() {
                return Err(refused(format!("unknown collaborator `{}`", author.id)));
            }
        }
        (PartyKind::Contact, Side::Customer) => match tx.party(PartyKind::Contact, &author.id)? {
            None => return Err(refused(format!("unknown contact `{}`", author.id))),
            Some(customer) if customer.as_deref() != Some(request.customer.as_str()) => {
                return Err(refused(format!(
                    "contact `{}` of customer `{}` may not write on request {} of customer `{}`",
                    author.id,
                    customer.unwrap_or_default(),
                    request.number,
                    request.customer
                )));
            }
            Some(_) => {}
        },
        (PartyKind::Collaborator, Side::Customer) => {
            return Err(refused(format!(
                "collaborator `{}` cannot write on the customer side",
                author.id
            )));
        }
        (PartyKind::Contact, Side::Staff) => {
            return Err(refused(format!(
                "contact `{}` cannot write on the staff side",
                author.id
            )));
        }
    }
    Ok(())
}

/// Each recipient of a mail must be in the directory: staff, or a contact
/// of the request's customer when the mail is about a request (an alert,
/// a reminder); an email-to-fax address built from such a contact's fax
/// number counts as that contact's. A plugin granted `mail-anyone` may
/// write to others.
fn check_recipients(
    tx: &impl EventTx,
    to: &[String],
    request: Option<&relais_sdk::Request>,
    grant: &Grant,
) -> Result<(), StoreError> {
    for address in to {
        if let Some(problem) = address_problem(address) {
            return Err(refused(format!(
                "`{address}` is not a mail address: it {problem}"
            )));
        }
        if grant.mail_anyone {
            continue;
        }
        let owners = tx.address_parties(address.trim())?;
        let allowed = |customer: &Option<String>| match (request, customer) {
            // Staff may be told about any request.
            (_, None) => true,
            (Some(request), Some(customer)) => *customer == request.customer,
            (None, Some(_)) => true,
        };
        if owners.iter().any(allowed) {
            continue;
        }
        if owners.is_empty() {
            return Err(refused(format!(
                "{address} is in no directory record: a plugin mails only collaborators and contacts unless it declares the `mail-anyone` capability"
            )));
        }
        let customer = request.map(|r| r.customer.as_str()).unwrap_or_default();
        return Err(refused(format!(
            "{address} belongs to no contact of customer `{customer}` nor to staff: mail about request {} stays within its customer",
            request.map(|r| r.number).unwrap_or_default()
        )));
    }
    Ok(())
}

fn apply_one(
    tx: &impl EventTx,
    effect: &Effect,
    index: usize,
    grant: &Grant,
    context: &EffectContext<'_>,
    tag: &relais_sdk::TicketTag,
) -> Result<(), StoreError> {
    let run = context.run;
    let tagged = |subject: &str, request: Option<u64>| tagged(tag, subject, request);
    let rule_sender = match &grant.identity {
        None => &context.identity.default,
        Some(name) => context
            .identity
            .named(name)
            .ok_or_else(|| refused(format!("unknown identity `{name}`")))?,
    };
    match effect {
        Effect::PostMessage {
            request,
            author,
            side,
            source,
            body,
            notify_by_email,
        } => {
            let found = tx.require_request(*request)?;
            check_author(tx, &found, author, *side)?;
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
            // The other side is told here, whoever posted (a person through
            // the API, CatchMail, a plugin): one path for every message.
            if let Ok(to) = message_notice(tx, &found, *side, notify)? {
                let subject = found.subject.as_deref().unwrap_or_default();
                let notice = OutgoingMail {
                    message_id: outbound_id(context, index, &context.identity.default),
                    kind: "mail".to_string(),
                    to: vec![to],
                    subject: tagged(
                        format!("[#{request}] {}", subject.trim()).trim_end(),
                        Some(*request),
                    ),
                    body: format!(
                        "Nouveau message sur votre demande {request} / New message on your request {request}:\n\n{}\n",
                        body.trim()
                    ),
                    headers: automatic_headers("auto-generated", &context.identity.default),
                    request: Some(*request),
                    in_reply_to: Vec::new(),
                    references: Vec::new(),
                };
                tx.queue_mail(&notice, run, None, false)?;
            }
        }
        Effect::SendMail {
            to,
            subject,
            body,
            request,
            exchange,
        } => {
            if to.is_empty() {
                return Err(refused("a mail needs at least one recipient".to_string()));
            }
            if subject.contains(['\r', '\n']) {
                return Err(refused("a subject must not hold a line break".to_string()));
            }
            let found = request.map(|n| tx.require_request(n)).transpose()?;
            check_recipients(tx, to, found.as_ref(), grant)?;
            let mail = OutgoingMail {
                message_id: outbound_id(context, index, rule_sender),
                kind: "mail".to_string(),
                to: to.iter().map(|t| t.trim().to_string()).collect(),
                subject: tagged(subject, *request),
                body: body.clone(),
                // Mail a rule sends is automatic (RFC 3834): out-of-office
                // robots must not answer it, and our own X-Loop lets Relais
                // recognise it should it come back.
                headers: automatic_headers("auto-generated", rule_sender),
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
                return Err(refused("a failure reply needs a recipient".to_string()));
            }
            if let Some(problem) = address_problem(to) {
                return Err(refused(format!(
                    "`{to}` is not a mail address: it {problem}"
                )));
            }
            if reason.contains(['\r', '\n']) {
                return Err(refused(
                    "a reason code must not hold a line break".to_string(),
                ));
            }
            // A notice comes back from the address the sender wrote to.
            let sender = context.identity.for_notice(context.mail);
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
            let mut headers = automatic_headers("auto-replied", sender);
            headers.push(("In-Reply-To".to_string(), format!("<{in_reply_to}>")));
            headers.push(("References".to_string(), header_ids(&references)));
            headers.push(("X-Relais-Reason".to_string(), reason.clone()));
            let mail = OutgoingMail {
                message_id: outbound_id(context, index, sender),
                kind: "failure-reply".to_string(),
                to: vec![to.trim().to_string()],
                subject: tagged(&subject, *request),
                body: format!("{message}\n\n-- \nCode: {reason}\n"),
                headers,
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
            let since = chrono::Utc::now() - window;
            let limit = context.identity.notices_per_sender;
            let suppressed = tx.notices_since(&rate_key, since, limit)? >= limit;
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
            let number = create_ticket(
                tx,
                &NewTicket {
                    company: company.clone(),
                    customer: customer.clone(),
                    request_type: request_type.clone(),
                    requester: requester.clone(),
                    subject: subject.clone(),
                },
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

/// Creates a ticket, once its requester is checked to be a contact of its
/// customer; its number.
fn create_ticket(tx: &impl EventTx, ticket: &NewTicket) -> Result<u64, StoreError> {
    let NewTicket {
        company,
        customer,
        request_type,
        requester,
        subject,
    } = ticket;
    if subject.contains(['\r', '\n']) {
        return Err(refused("a subject must not hold a line break".to_string()));
    }
    if let Some(requester) = requester {
        match tx.party(PartyKind::Contact, requester)? {
            None => return Err(refused(format!("unknown contact `{requester}`"))),
            Some(of) if of.as_deref() != Some(customer.as_str()) => {
                return Err(refused(format!(
                    "contact `{requester}` of customer `{}` cannot request a ticket of customer `{customer}`",
                    of.unwrap_or_default()
                )));
            }
            Some(_) => {}
        }
    }
    tx.create_request(
        company,
        customer,
        requester.as_deref(),
        subject,
        request_type,
    )
}

/// The fields of a ticket to create.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct NewTicket {
    /// Company code.
    pub company: String,
    /// Customer code.
    pub customer: String,
    /// Request type code.
    #[serde(rename = "type")]
    pub request_type: String,
    /// Requesting contact, a contact of `customer`.
    pub requester: Option<String>,
    /// Its subject.
    pub subject: String,
}

/// The ticket a mail linked by hand goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketFor {
    /// An existing ticket.
    Existing(u64),
    /// A ticket created for it.
    New(NewTicket),
}

/// A write a person asks for (through the HTTP API or the CLI), applied by
/// [`apply_manual`] and traced in a run marked manual.
#[derive(Debug, Clone)]
pub enum ManualEffect {
    /// What a plugin could have asked for (a direct message), with the
    /// same checks.
    Plugin(Effect),
    /// Put a stored mail on a ticket; with `replace`, a mail on another
    /// ticket moves.
    LinkMail {
        /// The mail's Message-ID.
        message_id: String,
        /// Where it goes.
        ticket: TicketFor,
        /// Move it from the ticket it is on.
        replace: bool,
    },
    /// Record an exchange with the customer on a request.
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
    /// Import directory data (upserts, all or nothing).
    Import(Box<DirectoryFile>),
}

impl ManualEffect {
    /// Its kind, as the trace names it.
    pub fn kind(&self) -> &'static str {
        match self {
            ManualEffect::Plugin(effect) => effect.kind(),
            ManualEffect::LinkMail { .. } => "link-mail-by-hand",
            ManualEffect::RecordExchange { .. } => "record-exchange",
            ManualEffect::MarkRead { .. } => "mark-read",
            ManualEffect::Import(_) => "import",
        }
    }

    /// What the run trace keeps of it (of an import, how many records of
    /// each kind it holds).
    pub fn trace(&self) -> Value {
        let kind = self.kind();
        match self {
            ManualEffect::Plugin(effect) => serde_json::to_value(effect).unwrap_or(Value::Null),
            ManualEffect::LinkMail {
                message_id,
                ticket,
                replace,
            } => {
                let mut trace = json!({ "kind": kind, "message-id": message_id, "move": replace });
                match ticket {
                    TicketFor::Existing(number) => trace["ticket"] = json!(number),
                    TicketFor::New(new) => trace["new"] = json!(new),
                }
                trace
            }
            ManualEffect::RecordExchange { request, exchange } => {
                let mut trace = json!({ "kind": kind, "request": request });
                if let (Value::Object(trace), Ok(Value::Object(fields))) =
                    (&mut trace, serde_json::to_value(exchange))
                {
                    trace.extend(fields);
                }
                trace
            }
            ManualEffect::MarkRead { message, read } => {
                json!({ "kind": kind, "message": message, "read": read })
            }
            ManualEffect::Import(data) => json!({
                "kind": kind,
                "companies": data.companies.len(),
                "customers": data.customers.len(),
                "contacts": data.contacts.len(),
                "collaborators": data.collaborators.len(),
                "users": data.users.len(),
                "request-types": data.request_types.len(),
                "contracts": data.contracts.len(),
                "requests": data.requests.len(),
            }),
        }
    }
}

/// What a manual effect did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Done; nothing to say.
    Done,
    /// A mail is on `ticket` now.
    Linked {
        /// The ticket.
        ticket: u64,
        /// Whether it was created for the mail.
        created: bool,
        /// The ticket the mail moved from.
        previous: Option<u64>,
    },
    /// The exchange recorded, by id.
    Exchange(i64),
    /// Whether there was such a message.
    Read(bool),
    /// How many records the import wrote.
    Imported(DirectoryCounts),
}

/// Applies a person's write within `tx`, checked against the directory as
/// a plugin's effect would be.
pub fn apply_manual(
    tx: &impl EventTx,
    effect: &ManualEffect,
    context: &EffectContext<'_>,
) -> Result<Applied, EffectError> {
    let failed = |source| EffectError {
        index: 1,
        kind: effect.kind(),
        source,
    };
    match effect {
        ManualEffect::Plugin(plugin) => {
            apply(tx, std::slice::from_ref(plugin), &[], context)?;
            Ok(Applied::Done)
        }
        ManualEffect::LinkMail {
            message_id,
            ticket,
            replace,
        } => {
            let (number, created) = match ticket {
                TicketFor::Existing(number) => (*number, false),
                TicketFor::New(new) => (create_ticket(tx, new).map_err(failed)?, true),
            };
            let change = tx
                .link_mail_manually(message_id, number, *replace, context.run)
                .map_err(failed)?;
            Ok(Applied::Linked {
                ticket: number,
                created,
                previous: change.previous,
            })
        }
        ManualEffect::RecordExchange { request, exchange } => tx
            .record_exchange(*request, exchange)
            .map(Applied::Exchange)
            .map_err(failed),
        ManualEffect::MarkRead { message, read } => tx
            .set_message_read(*message, *read)
            .map(Applied::Read)
            .map_err(failed),
        ManualEffect::Import(data) => tx
            .import_directory(data)
            .map(Applied::Imported)
            .map_err(failed),
    }
}

/// The headers of an automatic mail (RFC 3834 `Auto-Submitted`) sent as
/// `sender`.
fn automatic_headers(auto_submitted: &str, sender: &Sender) -> Vec<(String, String)> {
    let mut headers = vec![("Auto-Submitted".to_string(), auto_submitted.to_string())];
    headers.extend(sender.headers());
    headers
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
fn outbound_id(context: &EffectContext<'_>, index: usize, sender: &Sender) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let run = context
        .run
        .map(|run| run.to_string())
        .unwrap_or_else(|| "api".to_string());
    let salt = Sha256::digest(format!("{run}:{index}:{nanos}:{}", sender.address));
    format!(
        "relais.{}.{}.{}@{}",
        run,
        index + 1,
        &hex::encode(salt)[..12],
        sender.message_id_domain
    )
}
