//! `request-saved`: a support request was created or updated (the API's
//! `PUT /requests/{number}`, `relais request save`).

use relais_sdk::RequestSaved as Saved;

use super::{Field, Unit};

/// The `request-saved` trigger.
#[derive(Debug)]
pub struct RequestSaved;

impl Unit for RequestSaved {
    type Event = Saved;
    const NAME: &'static str = "request-saved";
    const FIELDS: &'static [Field] = &[
        Field::State,
        Field::Type,
        Field::Company,
        Field::Customer,
        Field::Contract,
    ];
    const CHANGES: bool = true;

    fn any(saved: &Saved, field: Field, test: &mut dyn FnMut(&str) -> bool) -> bool {
        let request = &saved.after;
        match field {
            Field::State => test(&request.state),
            Field::Type => test(&request.request_type),
            Field::Company => test(&request.company),
            Field::Customer => test(&request.customer),
            Field::Contract => request.contract.as_deref().is_some_and(test),
            _ => false,
        }
    }

    fn summary(saved: &Saved) -> String {
        let changes: Vec<&str> = saved.changes.iter().map(|c| c.as_str()).collect();
        format!(
            "request {} saved [{}]",
            saved.after.number,
            changes.join(", ")
        )
    }
}
