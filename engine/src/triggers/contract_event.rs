//! `contract-event`: something happened to a commitment contract (the
//! API's `POST /contract-events`).

use relais_sdk::ContractEvent as Happened;

use super::{Field, Unit};

/// The `contract-event` trigger.
#[derive(Debug)]
pub struct ContractEvent;

impl Unit for ContractEvent {
    type Event = Happened;
    const NAME: &'static str = "contract-event";
    const FIELDS: &'static [Field] = &[Field::Customer, Field::Contract, Field::Kind];

    fn any(event: &Happened, field: Field, test: &mut dyn FnMut(&str) -> bool) -> bool {
        match field {
            Field::Kind => test(&event.kind),
            Field::Customer => test(&event.contract.customer),
            Field::Contract => test(&event.contract.code),
            _ => false,
        }
    }

    fn summary(event: &Happened) -> String {
        format!("contract {} {}", event.contract.code, event.kind)
    }
}
