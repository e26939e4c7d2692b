//! Directory records as plugins read them through the host's queries.

use serde::{Deserialize, Serialize};

/// A support request (a ticket).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(
    feature = "host",
    derive(wasmtime::component::ComponentType, wasmtime::component::Lower),
    component(record)
)]
pub struct Request {
    /// The request number, e.g. `23010203`.
    pub number: u64,
    /// Code of the company (partition) the request belongs to.
    pub company: String,
    /// Code of the customer.
    pub customer: String,
    /// Code of the request type.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "host", component(name = "request-type"))]
    pub request_type: String,
    /// Id of the requesting contact, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    /// Current state, e.g. `open`, `resolved`, `closed`.
    pub state: String,
    /// Whether the request may be shown to the customer.
    pub publishable: bool,
    /// Whether the conversation is locked (messages visible, none accepted).
    #[cfg_attr(feature = "host", component(name = "conversation-locked"))]
    pub conversation_locked: bool,
    /// Code of the commitment contract, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    /// Subject line, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// A request type and whether CatchMail is enabled for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestType {
    /// Type code, e.g. `INCIDENT`.
    pub code: String,
    /// Whether mails may post messages on requests of this type.
    pub catchmail: bool,
}

/// A commitment contract, as carried by contract events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "host",
    derive(wasmtime::component::ComponentType, wasmtime::component::Lower),
    component(record)
)]
pub struct Contract {
    /// Contract code, e.g. `K-2026-001`.
    pub code: String,
    /// Code of the customer holding it.
    pub customer: String,
}

/// Global settings of the support desk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// The global switch for direct messages on requests.
    pub direct_messages_enabled: bool,
    /// Whether a new direct message notifies the other side by mail by default.
    pub notify_by_email_default: bool,
    /// How a ticket's number appears in mail subjects (see
    /// [`TicketTag`](crate::TicketTag)).
    #[serde(default = "default_ticket_tag")]
    pub ticket_tag: String,
}

fn default_ticket_tag() -> String {
    crate::tag::DEFAULT_TICKET_TAG.to_string()
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            direct_messages_enabled: true,
            notify_by_email_default: false,
            ticket_tag: default_ticket_tag(),
        }
    }
}

/// Whether a party is staff (collaborator) or customer side (contact).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartyKind {
    /// A collaborator of the support company (staff side).
    Collaborator,
    /// A contact of a customer (customer side).
    Contact,
}

/// Whether a user logs in on the desktop (staff) or the extranet (customer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UserKind {
    /// Staff user, linked to a collaborator.
    Internal,
    /// Customer user, linked to a contact.
    Extranet,
}

/// A user account linked to a collaborator or a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Login name.
    pub login: String,
    /// Internal or extranet.
    pub kind: UserKind,
    /// Rights codes the user holds, e.g. `141341`.
    pub rights: Vec<u32>,
    /// Whether the user may post messages by mail (CatchMail flag).
    pub catchmail: bool,
    /// Companies the user may act on (partitioning); internal users only.
    pub companies: Vec<String>,
}

/// A collaborator or contact owning a mail address (as `email` or `email2`),
/// with the users linked to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressOwner {
    /// Collaborator or contact.
    pub kind: PartyKind,
    /// Its id, e.g. `ct-jeanne`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The customer a contact belongs to; `None` for collaborators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    /// Users linked to this collaborator or contact.
    pub users: Vec<User>,
}

/// A contract with its alert settings, as the `contracts` capability reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractDetails {
    /// Contract code.
    pub code: String,
    /// Customer code.
    pub customer: String,
    /// The alert kinds the contract enables.
    pub alerts: Vec<crate::ChangeKind>,
    /// Recipient groups and their members.
    pub recipients: Vec<RecipientGroup>,
}

/// One recipient group of a contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientGroup {
    /// `contract-contacts`, `site-contacts`, `customer-contacts`,
    /// `product-contacts`, `product-collaborators` or `service-contacts`.
    pub group: String,
    /// The contacts and collaborators of the group.
    pub members: Vec<Recipient>,
}

/// How a contact receives alerts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reception {
    /// By mail.
    #[default]
    Email,
    /// By fax, through the email-to-fax gateway when one is configured.
    Fax,
    /// No alerts.
    None,
}

impl Reception {
    /// The name used in files (`email`, `fax`, `none`).
    pub fn as_str(self) -> &'static str {
        match self {
            Reception::Email => "email",
            Reception::Fax => "fax",
            Reception::None => "none",
        }
    }
}

/// A contact or collaborator of a recipient group, with what decides
/// whether it gets an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// Contact or collaborator.
    pub kind: PartyKind,
    /// Its id, e.g. `ct-jeanne`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// A contact's customer; `None` for collaborators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    /// A contact's site; `None` for collaborators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// Its mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// How it receives alerts (collaborators: by mail).
    pub reception: Reception,
    /// Its fax number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fax: Option<String>,
    /// The alert kinds it subscribed to.
    pub alerts: Vec<crate::ChangeKind>,
}

/// Per alert kind, the subject keyword and the mail template a customer
/// chose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertFormat {
    /// The alert kind.
    pub kind: crate::ChangeKind,
    /// Put in the alert's subject, e.g. `[OUVERTURE]`.
    pub keyword: String,
    /// The template's name, e.g. `alert-opened`.
    pub template: String,
}

/// A customer with its alert formats, as the `contracts` capability reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// Customer code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Code of its company.
    pub company: String,
    /// Code of its main site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_site: Option<String>,
    /// Language of its mail (`fr`, `en`...), when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Its alert formats, by kind.
    pub alert_formats: Vec<AlertFormat>,
}

/// A stored mail of a thread, as the `mail` capability reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadMail {
    /// Message-ID.
    pub message_id: String,
    /// Subject.
    pub subject: String,
    /// From address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// In-Reply-To ids.
    pub in_reply_to: Vec<String>,
    /// References ids.
    pub references: Vec<String>,
    /// The ticket it is linked to (received) or about (sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<u64>,
    /// Whether Relais sent it.
    #[serde(default)]
    pub outgoing: bool,
}
