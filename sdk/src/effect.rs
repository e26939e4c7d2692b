//! Effects: what a plugin asks the host to do.

use serde::{Deserialize, Serialize};

use crate::directory::PartyKind;

/// One thing a plugin asks the host to do. The host applies all effects of
/// one event in one store transaction; `kind` names the variant in JSON,
/// and fields are written in kebab-case, as everywhere else (the
/// snake_case of earlier versions is still read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Effect {
    /// Post a direct message on a request's activity thread.
    PostMessage {
        /// The request number.
        request: u64,
        /// Who wrote it.
        author: Author,
        /// Which side it comes from.
        side: Side,
        /// Where it was written.
        source: MessageSource,
        /// The message text.
        body: String,
        /// Whether to notify the other side by mail; `None` means the
        /// global default setting.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            rename = "notify-by-email",
            alias = "notify_by_email"
        )]
        notify_by_email: Option<bool>,
    },
    /// Send a mail (queued in the outbox in the same transaction).
    SendMail {
        /// Recipient addresses.
        to: Vec<String>,
        /// Subject line.
        subject: String,
        /// Plain-text body.
        body: String,
        /// The request the mail is about, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<u64>,
        /// Also record the mail as an exchange sent to the customer on
        /// `request`, of this type: [`REMINDER`](crate::REMINDER) (`relance`)
        /// for a reminder, `message` for a plain one. `None`: not an
        /// exchange (a notification, an alert).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exchange: Option<String>,
    },
    /// Answer the mail being processed with a failure notice. The host sends
    /// it to the sender as an automatic reply (RFC 3834), rate-limited.
    ReplyFailure {
        /// Recipient: the sender of the mail being answered.
        to: String,
        /// Stable reason code, e.g. `request-not-found`.
        reason: String,
        /// A sentence a person can read, saying why.
        message: String,
        /// Message-ID of the mail being answered.
        #[serde(rename = "in-reply-to", alias = "in_reply_to")]
        in_reply_to: String,
        /// The ticket the failure is about, when the mail named one that
        /// exists: the reply carries its tag, and answers to it come back
        /// to that ticket.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<u64>,
    },
    /// Create a new ticket (support request).
    CreateTicket {
        /// Customer code.
        customer: String,
        /// Company code.
        company: String,
        /// Request type code.
        #[serde(rename = "type")]
        request_type: String,
        /// Requesting contact id, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        requester: Option<String>,
        /// Subject of the new ticket.
        subject: String,
        /// Message-ID of a mail to link to the new ticket.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            rename = "link-mail",
            alias = "link_mail"
        )]
        link_mail: Option<String>,
    },
    /// Link a stored mail to an existing ticket.
    LinkMail {
        /// Message-ID of the mail.
        #[serde(rename = "message-id", alias = "message_id")]
        message_id: String,
        /// The ticket's request number.
        request: u64,
    },
    /// Put a closed ticket back into an open state (a follow-up arrived).
    ReopenTicket {
        /// The ticket's request number.
        request: u64,
        /// The state it takes, e.g. `open`.
        state: String,
    },
}

impl Effect {
    /// The effect's kind as written in JSON (`post-message`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Effect::PostMessage { .. } => "post-message",
            Effect::SendMail { .. } => "send-mail",
            Effect::ReplyFailure { .. } => "reply-failure",
            Effect::CreateTicket { .. } => "create-ticket",
            Effect::LinkMail { .. } => "link-mail",
            Effect::ReopenTicket { .. } => "reopen-ticket",
        }
    }
}

/// The author of a direct message.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    /// Collaborator or contact.
    pub kind: PartyKind,
    /// Its id.
    pub id: String,
}

/// Which side of the support relationship a message comes from.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Side {
    /// The customer's side (a contact wrote it).
    Customer,
    /// The support staff's side (a collaborator wrote it).
    Staff,
}

/// Where a direct message was written.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MessageSource {
    /// The customer portal (extranet).
    Portal,
    /// The staff desktop application.
    Desktop,
    /// A mail caught by CatchMail.
    Catchmail,
    /// Another plugin.
    Plugin,
}
