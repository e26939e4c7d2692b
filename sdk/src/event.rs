//! The events that fire rules, one per trigger.

use serde::{Deserialize, Serialize};

use crate::directory::{Contract, Request};

/// An event as a plugin sees it; `trigger` names the variant in JSON. Each
/// trigger has a handler interface of its own in the WIT
/// (`on-mail-received`...), which takes the variant's data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "trigger", rename_all = "kebab-case")]
pub enum Event {
    /// A mail arrived on an account (IMAP, spool folder or `relais ingest`).
    MailReceived(Mail),
    /// A support request was created or updated.
    RequestSaved(RequestSaved),
    /// Something happened to a commitment contract.
    ContractEvent(ContractEvent),
    /// A scheduled rule's cron expression fired.
    Schedule(ScheduleFired),
}

/// Every trigger, as rule files and [`Metadata::triggers`](crate::Metadata)
/// write them. The WIT handler interface of each is `on-` and its name.
pub const TRIGGERS: [&str; 4] = [
    "mail-received",
    "request-saved",
    "contract-event",
    "schedule",
];

impl Event {
    /// The trigger name, as written in rule files (`mail-received`, ...).
    pub fn trigger(&self) -> &'static str {
        match self {
            Event::MailReceived(_) => "mail-received",
            Event::RequestSaved(_) => "request-saved",
            Event::ContractEvent(_) => "contract-event",
            Event::Schedule(_) => "schedule",
        }
    }
}

/// A mail address with its optional display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "host",
    derive(wasmtime::component::ComponentType, wasmtime::component::Lower),
    component(record)
)]
pub struct Address {
    /// Display name, decoded (`Jeanne Martin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The address itself (`jeanne@dupont.example`).
    pub email: String,
}

/// Metadata of one attachment; the content stays in the host's store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "host",
    derive(wasmtime::component::ComponentType, wasmtime::component::Lower),
    component(record)
)]
#[serde(rename_all = "kebab-case")]
pub struct Attachment {
    /// File name as the sender gave it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// MIME type, e.g. `application/pdf`.
    #[cfg_attr(feature = "host", component(name = "content-type"))]
    #[serde(alias = "content_type")]
    pub content_type: String,
    /// Size of the decoded content, in bytes.
    pub size: u64,
    /// SHA-256 of the decoded content (lowercase hex): its key in the store.
    pub sha256: String,
}

/// A received mail, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(
    feature = "host",
    derive(wasmtime::component::ComponentType, wasmtime::component::Lower),
    component(record)
)]
#[serde(rename_all = "kebab-case")]
pub struct Mail {
    /// The account it came from (an IMAP account name, `spool` or `cli`).
    pub account: String,
    /// Message-ID without angle brackets; generated from the content when
    /// the mail has none.
    #[cfg_attr(feature = "host", component(name = "message-id"))]
    #[serde(alias = "message_id")]
    pub message_id: String,
    /// Subject, decoded (RFC 2047); empty when absent.
    pub subject: String,
    /// The `From` header address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Address>,
    /// The envelope sender from `Return-Path`: `None` when the header is
    /// absent, `Some("")` for the null sender `<>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "host", component(name = "return-path"))]
    #[serde(alias = "return_path")]
    pub return_path: Option<String>,
    /// `To` addresses.
    #[serde(default)]
    pub to: Vec<Address>,
    /// `Cc` addresses.
    #[serde(default)]
    pub cc: Vec<Address>,
    /// `Reply-To` addresses.
    #[serde(default)]
    #[cfg_attr(feature = "host", component(name = "reply-to"))]
    #[serde(alias = "reply_to")]
    pub reply_to: Vec<Address>,
    /// `Date` header as RFC 3339, if present and valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// `In-Reply-To` ids, without angle brackets.
    #[serde(default)]
    #[cfg_attr(feature = "host", component(name = "in-reply-to"))]
    #[serde(alias = "in_reply_to")]
    pub in_reply_to: Vec<String>,
    /// `References` ids, oldest first, without angle brackets.
    #[serde(default)]
    pub references: Vec<String>,
    /// `Auto-Submitted` header value (RFC 3834), if present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "host", component(name = "auto-submitted"))]
    #[serde(alias = "auto_submitted")]
    pub auto_submitted: Option<String>,
    /// `Precedence` header value, if present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precedence: Option<String>,
    /// Names of the `List-*` headers present (`List-Id`, ...).
    #[serde(default)]
    #[cfg_attr(feature = "host", component(name = "list-headers"))]
    #[serde(alias = "list_headers")]
    pub list_headers: Vec<String>,
    /// Values of every `X-Loop` header.
    #[serde(default)]
    #[cfg_attr(feature = "host", component(name = "x-loop"))]
    #[serde(alias = "x_loop")]
    pub x_loop: Vec<String>,
    /// The text body: the first text part, or the HTML part turned into text
    /// when there is no text part; empty when the mail has neither.
    #[serde(default)]
    pub text: String,
    /// Whether `text` was cut at the host's limit (`limits.max-text-kib`):
    /// the whole mail stays in the store, a plugin sees its beginning.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[cfg_attr(feature = "host", component(name = "text-truncated"))]
    #[serde(alias = "text_truncated")]
    pub text_truncated: bool,
    /// Attachments, metadata only.
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// Size of the raw message in bytes (0 in an event file that says
    /// none).
    #[serde(default)]
    pub size: u64,
    /// Whether the sender is who `From` says, as the receiving server
    /// established it (`Authentication-Results` of a trusted authserv-id).
    #[serde(default)]
    pub authentication: SenderAuthentication,
}

/// The verdict on a mail's sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(
    feature = "host",
    derive(wasmtime::component::ComponentType, wasmtime::component::Lower),
    component(enum)
)]
#[repr(u8)]
pub enum AuthResult {
    /// The `From` domain was authenticated (DMARC, or DKIM or SPF aligned
    /// with it).
    #[cfg_attr(feature = "host", component(name = "pass"))]
    Pass,
    /// A check of the `From` domain failed: the sender is not who `From`
    /// says.
    #[cfg_attr(feature = "host", component(name = "fail"))]
    Fail,
    /// No trusted verdict: no `Authentication-Results` of a trusted
    /// server, or it said nothing about the `From` domain.
    #[default]
    #[cfg_attr(feature = "host", component(name = "none"))]
    None,
}

impl AuthResult {
    /// `pass`, `fail` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthResult::Pass => "pass",
            AuthResult::Fail => "fail",
            AuthResult::None => "none",
        }
    }
}

/// What is known of a mail's sender: the verdict, and what it rests on.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(
    feature = "host",
    derive(wasmtime::component::ComponentType, wasmtime::component::Lower),
    component(record)
)]
pub struct SenderAuthentication {
    /// The verdict.
    #[cfg_attr(feature = "host", component(name = "result"))]
    pub result: AuthResult,
    /// The domain the verdict is about (the `From` domain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// The method that gave it: `dmarc`, `dkim` or `spf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Who gave it: the authserv-id of the receiving server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// In words, for traces and logs.
    #[serde(default)]
    pub reason: String,
}

impl Mail {
    /// Where an answer to this mail goes: the envelope sender
    /// (Return-Path), else the From address; `None` when both are empty.
    pub fn reply_address(&self) -> Option<&str> {
        [
            self.return_path.as_deref(),
            self.from.as_ref().map(|from| from.email.as_str()),
        ]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|address| !address.is_empty())
    }

    /// Why this mail is automatic and must never be answered, or `None`
    /// when a person sent it. Follows RFC 3834 and common practice:
    /// `Auto-Submitted` other than `no`, `Precedence: bulk/junk/list`,
    /// `List-*` headers, the null envelope sender, mailer-daemon/postmaster
    /// senders, and a `X-Loop` naming one of `own_addresses`.
    pub fn automatic_reason(&self, own_addresses: &[&str]) -> Option<String> {
        if let Some(value) = &self.auto_submitted {
            let keyword = value.split(';').next().unwrap_or("").trim();
            if !keyword.eq_ignore_ascii_case("no") {
                return Some(format!("Auto-Submitted: {value}"));
            }
        }
        if let Some(value) = &self.precedence {
            let value = value.trim();
            if ["bulk", "junk", "list"]
                .iter()
                .any(|p| value.eq_ignore_ascii_case(p))
            {
                return Some(format!("Precedence: {value}"));
            }
        }
        if let Some(name) = self.list_headers.first() {
            return Some(format!("{name} header (mailing list)"));
        }
        if self
            .return_path
            .as_ref()
            .is_some_and(|path| path.trim().is_empty())
        {
            return Some("empty Return-Path (null envelope sender)".to_string());
        }
        if let Some(from) = &self.from {
            let local = from.email.split('@').next().unwrap_or("");
            if local.eq_ignore_ascii_case("mailer-daemon")
                || local.eq_ignore_ascii_case("postmaster")
            {
                return Some(format!("sender {} is a mail system", from.email));
            }
        }
        for value in &self.x_loop {
            let value = value.trim();
            if own_addresses
                .iter()
                .any(|own| value.eq_ignore_ascii_case(own))
            {
                return Some(format!("X-Loop: {value} (our own mail)"));
            }
        }
        None
    }
}

/// The kinds of change a request save can carry; one save may carry several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(
    feature = "host",
    derive(wasmtime::component::ComponentType, wasmtime::component::Lower),
    component(enum)
)]
#[repr(u8)]
pub enum ChangeKind {
    /// The request was created.
    #[cfg_attr(feature = "host", component(name = "opened"))]
    Opened,
    /// The request entered a resolved state.
    #[cfg_attr(feature = "host", component(name = "resolved"))]
    Resolved,
    /// The request entered a closed state.
    #[cfg_attr(feature = "host", component(name = "closed"))]
    Closed,
    /// The request's state changed.
    #[cfg_attr(feature = "host", component(name = "state-changed"))]
    StateChanged,
}

impl ChangeKind {
    /// Every kind, in a stable order.
    pub const ALL: [ChangeKind; 4] = [
        ChangeKind::Opened,
        ChangeKind::Resolved,
        ChangeKind::Closed,
        ChangeKind::StateChanged,
    ];

    /// The name used in rule files and import files.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Opened => "opened",
            ChangeKind::Resolved => "resolved",
            ChangeKind::Closed => "closed",
            ChangeKind::StateChanged => "state-changed",
        }
    }
}

/// A request save: the request before (absent on creation) and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "host",
    derive(wasmtime::component::ComponentType, wasmtime::component::Lower),
    component(record)
)]
pub struct RequestSaved {
    /// The request as it was, `None` when it was just created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Request>,
    /// The request as saved.
    pub after: Request,
    /// The change kinds the host derived from `before` and `after`.
    pub changes: Vec<ChangeKind>,
}

/// An event on a commitment contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "host",
    derive(wasmtime::component::ComponentType, wasmtime::component::Lower),
    component(record)
)]
pub struct ContractEvent {
    /// The event kind, e.g. `expiring` or `alert-settings-changed`.
    pub kind: String,
    /// The contract it concerns.
    pub contract: Contract,
}

/// A scheduled rule fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "host",
    derive(wasmtime::component::ComponentType, wasmtime::component::Lower),
    component(record)
)]
#[serde(rename_all = "kebab-case")]
pub struct ScheduleFired {
    /// The id of the rule whose schedule fired.
    pub rule: String,
    /// When it fired, RFC 3339.
    #[cfg_attr(feature = "host", component(name = "fired-at"))]
    #[serde(alias = "fired_at")]
    pub fired_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_written_in_kebab_case_and_read_in_either_case() {
        let kebab = serde_json::json!({
            "trigger": "mail-received", "account": "support", "message-id": "m1@x",
            "subject": "Bonjour", "in-reply-to": ["m0@x"], "text-truncated": true,
        });
        let snake = serde_json::json!({
            "trigger": "mail-received", "account": "support", "message_id": "m1@x",
            "subject": "Bonjour", "in_reply_to": ["m0@x"], "text_truncated": true,
        });
        let event: Event = serde_json::from_value(kebab.clone()).expect("kebab-case");
        assert_eq!(
            serde_json::from_value::<Event>(snake).expect("snake_case"),
            event
        );
        let written = serde_json::to_value(&event).expect("json");
        assert_eq!(written["message-id"], "m1@x");
        assert_eq!(written["in-reply-to"], serde_json::json!(["m0@x"]));
        assert!(written.get("message_id").is_none(), "{written}");
        let fired: Event = serde_json::from_value(serde_json::json!({
            "trigger": "schedule", "rule": "r", "fired-at": "2026-12-01T08:00:00Z"
        }))
        .expect("schedule");
        assert_eq!(
            serde_json::to_value(&fired).expect("json")["fired-at"],
            "2026-12-01T08:00:00Z"
        );
    }
}
