//! Triggers: what fires a rule. Each trigger is one unit, a file of this
//! module: the SDK type of its event, the fields a rule's `when` can test
//! on it and how to read them, and how its event reads in a trace. The
//! registry below (`triggers!`) is the one list of them: the rule files'
//! `on:` values, the matching of events to rules, the traces and the
//! plugin host's choice of a plugin's handler all come from it.
//!
//! Adding a trigger is a unit here, its line in the registry, its event in
//! the plugin contract (an `Event` variant and its type in the SDK, a
//! handler interface in the WIT and its guest glue), and the code that
//! fires it (ARCHITECTURE.md, "Adding a trigger").

mod contract_event;
mod mail_received;
mod request_saved;
mod schedule;

pub use contract_event::ContractEvent;
pub use mail_received::MailReceived;
pub use request_saved::RequestSaved;
pub use schedule::Schedule;

use relais_sdk::Event;

/// A field of an event that a rule's `when` can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// The mail's account.
    Account,
    /// The From address.
    From,
    /// Any To address.
    To,
    /// Any Cc address.
    Cc,
    /// Any To or Cc address.
    Recipient,
    /// The subject.
    Subject,
    /// The text body.
    Body,
    /// The request's state after the save.
    State,
    /// The request type.
    Type,
    /// The request's company.
    Company,
    /// The request's or contract's customer.
    Customer,
    /// The request's or contract's contract code.
    Contract,
    /// The contract event's kind.
    Kind,
}

impl Field {
    /// The field's key in a rule's `when`.
    pub fn name(self) -> &'static str {
        match self {
            Field::Account => "account",
            Field::From => "from",
            Field::To => "to",
            Field::Cc => "cc",
            Field::Recipient => "recipient",
            Field::Subject => "subject",
            Field::Body => "body",
            Field::State => "state",
            Field::Type => "type",
            Field::Company => "company",
            Field::Customer => "customer",
            Field::Contract => "contract",
            Field::Kind => "kind",
        }
    }
}

/// One trigger: its event's type and what rules and traces read of it.
pub trait Unit {
    /// The SDK type its event carries.
    type Event;
    /// Its name in rule files and in a plugin's metadata; the plugin's
    /// handler interface is `on-` and this name.
    const NAME: &'static str;
    /// The fields a rule's `when` can test on its events.
    const FIELDS: &'static [Field];
    /// Whether its rules fire on a clock rather than on events that
    /// arrive: they take `cron`, `timezone` and `missed`, and `mode` and
    /// `max` bound their runs in flight.
    const SCHEDULED: bool = false;
    /// Whether its rules may test the change kinds of a save (`change:`).
    const CHANGES: bool = false;

    /// Whether `test` holds for one of `field`'s values in `event`,
    /// without copying any of them. A field not in [`Unit::FIELDS`] has
    /// none.
    fn any(event: &Self::Event, field: Field, test: &mut dyn FnMut(&str) -> bool) -> bool;

    /// The event in one line, for traces and logs.
    fn summary(event: &Self::Event) -> String;
}

/// What is done with one trigger's event type, whichever it is: the plugin
/// host calls a handler typed by it, or checks one against it.
pub trait WithEvent {
    /// What it gives.
    type Output;
    /// Does it for the trigger `unit` stands for.
    fn with<U: Unit>(self) -> Self::Output
    where
        U::Event: HostEvent;
}

/// What the plugin host needs of an event type: to lower it into a
/// plugin's memory as its handler's argument.
pub trait HostEvent:
    wasmtime::component::ComponentType + wasmtime::component::Lower + Sync + 'static
{
}

impl<T: wasmtime::component::ComponentType + wasmtime::component::Lower + Sync + 'static> HostEvent
    for T
{
}

/// The registry: each trigger's variant (of [`Trigger`] and of the SDK's
/// `Event`, which share names) and its unit.
macro_rules! triggers {
    ($($(#[$doc:meta])* $variant:ident => $unit:ty,)*) => {
        /// What fires a rule.
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, schemars::JsonSchema,
        )]
        #[serde(rename_all = "kebab-case")]
        pub enum Trigger {
            $($(#[$doc])* $variant,)*
        }

        impl Trigger {
            /// Every trigger, in the registry's order.
            pub const ALL: &'static [Trigger] = &[$(Trigger::$variant,)*];

            /// The trigger `event` fires.
            pub fn of(event: &Event) -> Trigger {
                match event {
                    $(Event::$variant(_) => Trigger::$variant,)*
                }
            }

            /// Its name in rule files (`mail-received`, ...).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Trigger::$variant => <$unit as Unit>::NAME,)*
                }
            }

            /// The fields a rule on this trigger can test.
            pub fn fields(self) -> &'static [Field] {
                match self {
                    $(Trigger::$variant => <$unit as Unit>::FIELDS,)*
                }
            }

            /// Whether its rules fire on a clock ([`Unit::SCHEDULED`]).
            pub fn scheduled(self) -> bool {
                match self {
                    $(Trigger::$variant => <$unit as Unit>::SCHEDULED,)*
                }
            }

            /// Whether its rules may test change kinds ([`Unit::CHANGES`]).
            pub fn takes_changes(self) -> bool {
                match self {
                    $(Trigger::$variant => <$unit as Unit>::CHANGES,)*
                }
            }

            /// `work`, for this trigger's event type.
            pub fn with_event<W: WithEvent>(self, work: W) -> W::Output {
                match self {
                    $(Trigger::$variant => work.with::<$unit>(),)*
                }
            }
        }

        /// Whether `test` holds for one of `field`'s values in `event`.
        pub fn any(event: &Event, field: Field, mut test: impl FnMut(&str) -> bool) -> bool {
            match event {
                $(Event::$variant(inner) => <$unit as Unit>::any(inner, field, &mut test),)*
            }
        }

        /// `event` in one line, for traces and logs.
        pub fn summary(event: &Event) -> String {
            match event {
                $(Event::$variant(inner) => <$unit as Unit>::summary(inner),)*
            }
        }

        /// The payload of `event`, given to `call` typed by its trigger.
        pub fn with_payload<C: CallWith>(event: &Event, call: C) -> C::Output {
            match event {
                $(Event::$variant(inner) => call.call::<$unit>(inner),)*
            }
        }
    };
}

/// What is done with one event's payload, typed by its trigger: the
/// plugin host lowers it into a plugin's handler call.
pub trait CallWith {
    /// What it gives.
    type Output;
    /// Does it with `event`, of the trigger `U`.
    fn call<U: Unit>(self, event: &U::Event) -> Self::Output
    where
        U::Event: HostEvent;
}

triggers! {
    /// A mail arrived (IMAP, spool folder, `relais ingest`).
    MailReceived => mail_received::MailReceived,
    /// A support request was created or updated.
    RequestSaved => request_saved::RequestSaved,
    /// A contract event.
    ContractEvent => contract_event::ContractEvent,
    /// The rule's `cron` expression fired.
    Schedule => schedule::Schedule,
}

/// The values of `field` in `event`, for explanations.
pub fn values(event: &Event, field: Field) -> Vec<String> {
    let mut values = Vec::new();
    any(event, field, |value| {
        values.push(value.to_string());
        false
    });
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_trigger_is_named_alike_in_rule_files_and_in_the_plugin_contract() {
        let names: Vec<&str> = Trigger::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(names, relais_sdk::TRIGGERS);
        for trigger in Trigger::ALL {
            let parsed: Trigger =
                serde_json::from_value(serde_json::json!(trigger.as_str())).expect("a rule name");
            assert_eq!(parsed, *trigger);
        }
    }

    #[test]
    fn a_field_has_values_only_on_the_triggers_that_list_it() {
        let mail = Event::MailReceived(relais_sdk::Mail {
            subject: "Printer down".into(),
            account: "support".into(),
            ..Default::default()
        });
        assert_eq!(values(&mail, Field::Subject), ["Printer down"]);
        assert_eq!(values(&mail, Field::Account), ["support"]);
        assert!(values(&mail, Field::State).is_empty());
        assert!(!Trigger::MailReceived.fields().contains(&Field::State));
        assert_eq!(
            summary(&mail),
            "mail <> from (no sender) on support: \"Printer down\""
        );
    }
}
