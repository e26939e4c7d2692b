//! Mail templates: what rendering one gives, and the variables an alert
//! template sees.

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
