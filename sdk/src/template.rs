//! Mail templates: what rendering one gives, and the variables the shipped
//! plugins' templates see: alerts ([`AlertContext`]) and reminders
//! ([`ReminderContext`]).

use serde::{Deserialize, Serialize};

use crate::{
    AlertFormat, ChangeKind, Contract, Customer, PartyKind, Reception, Recipient, Request,
};

/// A rendered mail template.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Rendered {
    /// The template's first line when it reads `Subject: ...`, without the
    /// `Subject:` label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The rest: the mail's body.
    pub body: String,
}

/// The change an alert is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertChange {
    /// `opened`, `resolved`, `closed` or `state-changed`.
    pub kind: ChangeKind,
    /// The customer's subject keyword for that kind, e.g. `[OUVERTURE]`.
    pub keyword: String,
    /// The request's state before the save (`None` when it was just opened).
    pub previous_state: Option<String>,
    /// Its state after the save.
    pub state: String,
}

/// The variables of an alert template: `request`, `customer`, `contract`,
/// `change` and `recipient`. The bundled alert dispatch plugin renders its
/// templates with this, and `relais check` renders every template with
/// [`AlertContext::sample`], refusing one that names a variable or field
/// that does not exist here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertContext {
    /// The request as saved.
    pub request: Request,
    /// Its customer.
    pub customer: Customer,
    /// Its contract.
    pub contract: Contract,
    /// What changed.
    pub change: AlertChange,
    /// Who the alert goes to.
    pub recipient: Recipient,
}

impl AlertContext {
    /// A context with every field set, for checking templates.
    pub fn sample() -> AlertContext {
        AlertContext {
            request: Request {
                number: 23010203,
                company: "ACME-FR".into(),
                customer: "C001".into(),
                request_type: "INCIDENT".into(),
                requester: Some("ct-jeanne".into()),
                state: "resolved".into(),
                publishable: true,
                conversation_locked: false,
                contract: Some("K-2026-001".into()),
                subject: Some("Printer down".into()),
            },
            customer: Customer {
                code: "C001".into(),
                name: "Dupont SA".into(),
                company: "ACME-FR".into(),
                main_site: Some("MAIN".into()),
                language: Some("fr".into()),
                alert_formats: vec![AlertFormat {
                    kind: ChangeKind::Resolved,
                    keyword: "[RESOLUTION]".into(),
                    template: "alert-resolved".into(),
                }],
            },
            contract: Contract {
                code: "K-2026-001".into(),
                customer: "C001".into(),
            },
            change: AlertChange {
                kind: ChangeKind::Resolved,
                keyword: "[RESOLUTION]".into(),
                previous_state: Some("open".into()),
                state: "resolved".into(),
            },
            recipient: Recipient {
                kind: PartyKind::Contact,
                id: "ct-jeanne".into(),
                name: "Jeanne Martin".into(),
                customer: Some("C001".into()),
                site: Some("MAIN".into()),
                email: Some("jeanne@dupont.example".into()),
                reception: Reception::Email,
                fax: Some("+33 1 23 45 67 89".into()),
                alerts: ChangeKind::ALL.to_vec(),
            },
        }
    }
}

/// What a reminder is about: which one it is, and how long the request
/// has waited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reminder {
    /// Which reminder this is since the customer last spoke, from 1.
    pub number: u32,
    /// How many reminders go at most before the request is left to staff.
    pub max: u32,
    /// Whole days since the request's last activity.
    pub idle_days: u32,
    /// The day of its last activity, `YYYY-MM-DD`.
    pub since: String,
    /// How many exchanges the request had so far.
    pub exchanges: u32,
}

/// The variables of a reminder template: `request`, `customer`, `contact`
/// (the requester the reminder goes to) and `reminder`. The bundled
/// reminders plugin renders its template with this; `relais check` accepts
/// a template that renders [`AlertContext::sample`] or
/// [`ReminderContext::sample`] with no undefined value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReminderContext {
    /// The request waiting on the customer.
    pub request: Request,
    /// Its customer.
    pub customer: Customer,
    /// Its requester.
    pub contact: Recipient,
    /// Which reminder, and how long it waited.
    pub reminder: Reminder,
}

impl ReminderContext {
    /// A context with every field set, for checking templates.
    pub fn sample() -> ReminderContext {
        let alert = AlertContext::sample();
        ReminderContext {
            request: Request {
                state: "waiting-customer".into(),
                ..alert.request
            },
            customer: alert.customer,
            contact: alert.recipient,
            reminder: Reminder {
                number: 1,
                max: 3,
                idle_days: 7,
                since: "2026-11-16".into(),
                exchanges: 4,
            },
        }
    }
}
