//! Request saves from the support system: checking what it sends, and the
//! change kinds a save carries.

use relais_sdk::{ChangeKind, Request};

use crate::config::RequestStates;
use crate::directory::{Kind, RequestSpec};
use crate::store::StoreError;
use crate::store::prelude::*;

/// A field of a payload that names something that does not exist, or does
/// not fit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field, as the payload spells it (`customer`, `requester`...).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl FieldError {
    /// An error on `field`.
    pub fn new(field: &str, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// Why a save was not taken.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The payload is wrong; nothing was written.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks every reference of a request against the stored directory: the
/// company, customer, type, requester and contract must exist, the
/// requester must be a contact of the request's customer and the contract
/// one of its contracts (alerts must never reach another customer).
pub fn check(store: &impl DirectoryRead, request: &RequestSpec) -> Result<(), SaveError> {
    let require = |kind: Kind, field: &str, id: &str| -> Result<(), SaveError> {
        if store.exists_in(kind, id)? {
            Ok(())
        } else {
            Err(FieldError::new(field, format!("unknown {} `{id}`", kind.noun())).into())
        }
    };
    if request.number == 0 {
        return Err(FieldError::new("number", "a request number is at least 1").into());
    }
    if request.state.trim().is_empty() {
        return Err(FieldError::new("state", "must not be empty").into());
    }
    // A subject goes into mail headers (alerts, notices): a line break in
    // it would let the caller write headers of its own.
    for (field, value) in [
        ("subject", request.subject.as_deref()),
        ("state", Some(request.state.as_str())),
    ] {
        if value.is_some_and(|v| v.contains(['\r', '\n'])) {
            return Err(FieldError::new(field, "must not hold a line break (CR or LF)").into());
        }
    }
    require(Kind::Company, "company", &request.company)?;
    require(Kind::Customer, "customer", &request.customer)?;
    require(Kind::RequestType, "type", &request.request_type)?;
    if let Some(requester) = &request.requester {
        require(Kind::Contact, "requester", requester)?;
        let customer = store.contact_customer(requester)?;
        if customer.as_deref() != Some(request.customer.as_str()) {
            return Err(FieldError::new(
                "requester",
                format!(
                    "contact `{requester}` is not a contact of customer `{}`",
                    request.customer
                ),
            )
            .into());
        }
    }
    if let Some(contract) = &request.contract {
        require(Kind::Contract, "contract", contract)?;
        let details = store.contract_customer(contract)?;
        if details.as_deref() != Some(request.customer.as_str()) {
            return Err(FieldError::new(
                "contract",
                format!(
                    "contract `{contract}` is not a contract of customer `{}`",
                    request.customer
                ),
            )
            .into());
        }
    }
    Ok(())
}

/// The request a spec describes.
pub fn to_request(spec: &RequestSpec) -> Request {
    Request {
        number: spec.number,
        company: spec.company.clone(),
        customer: spec.customer.clone(),
        request_type: spec.request_type.clone(),
        requester: spec.requester.clone(),
        state: spec.state.clone(),
        publishable: spec.publishable,
        conversation_locked: spec.conversation_locked,
        contract: spec.contract.clone(),
        subject: spec.subject.clone(),
    }
}

/// The change kinds of a save: `opened` when the request is new;
/// `resolved` or `closed` when its state enters one of those states;
/// `state-changed` whenever an existing request's state changes (so a
/// resolution is both `resolved` and `state-changed`: a subscriber to state
/// changes only still hears of it). Nothing when the state did not change.
pub fn changes(
    before: Option<&Request>,
    after: &Request,
    states: &RequestStates,
) -> Vec<ChangeKind> {
    let is = |list: &[String], state: &str| list.iter().any(|s| s.eq_ignore_ascii_case(state));
    let Some(before) = before else {
        return vec![ChangeKind::Opened];
    };
    if before.state == after.state {
        return Vec::new();
    }
    let mut kinds = Vec::new();
    if is(&states.resolved_states, &after.state) && !is(&states.resolved_states, &before.state) {
        kinds.push(ChangeKind::Resolved);
    }
    if is(&states.closed_states, &after.state) && !is(&states.closed_states, &before.state) {
        kinds.push(ChangeKind::Closed);
    }
    kinds.push(ChangeKind::StateChanged);
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(state: &str) -> Request {
        Request {
            number: 1,
            state: state.to_string(),
            ..Request::default()
        }
    }

    #[test]
    fn change_kinds_follow_the_state() {
        let states = RequestStates::default();
        let open = request("open");
        assert_eq!(changes(None, &open, &states), [ChangeKind::Opened]);
        assert_eq!(changes(Some(&open), &open, &states), []);
        assert_eq!(
            changes(Some(&open), &request("waiting"), &states),
            [ChangeKind::StateChanged]
        );
        assert_eq!(
            changes(Some(&open), &request("resolved"), &states),
            [ChangeKind::Resolved, ChangeKind::StateChanged]
        );
        assert_eq!(
            changes(Some(&request("resolved")), &request("closed"), &states),
            [ChangeKind::Closed, ChangeKind::StateChanged]
        );
        assert_eq!(
            changes(Some(&request("closed")), &request("cancelled"), &states),
            [ChangeKind::StateChanged],
            "from one closed state to another: not closed again"
        );
    }

    #[test]
    fn states_are_configurable() {
        let states = RequestStates {
            resolved_states: vec!["done".into()],
            closed_states: vec!["archived".into()],
        };
        assert_eq!(
            changes(Some(&request("open")), &request("DONE"), &states),
            [ChangeKind::Resolved, ChangeKind::StateChanged]
        );
        assert_eq!(
            changes(Some(&request("open")), &request("resolved"), &states),
            [ChangeKind::StateChanged]
        );
    }
}
