//! Ticket linking as a Relais plugin: its metadata, and [`decide`] as
//! `handle`.

use relais_sdk::{Effect, Event, Host, Metadata, Plugin, PluginError};
use serde_json::Value;

use crate::{NAME, decide};

/// The query capabilities [`decide`] uses: requests and request types
/// (`requests`), who owns the sender's address (`directory`), the ticket
/// tag format (`settings`), the customer of a new ticket's requester, for
/// its company (`contracts`), and the ticket a thread's mail is on (`mail`).
pub const CAPABILITIES: [&str; 5] = ["requests", "directory", "settings", "contracts", "mail"];

/// JSON Schema of [`Config`](crate::Config), the rule's `config:` block.
pub const CONFIG_SCHEMA: &str = include_str!("../config.schema.json");

/// The ticket linking plugin, as the WebAssembly component exports it.
#[derive(Debug, Clone, Copy)]
pub struct TicketLink;

impl Plugin for TicketLink {
    fn metadata() -> Metadata {
        Metadata::new(NAME, env!("CARGO_PKG_VERSION"), &CAPABILITIES)
            .handles(&["mail-received"])
            .with_config_schema(CONFIG_SCHEMA)
    }

    fn handle(
        event: &Event,
        config: &Value,
        host: &(impl Host + ?Sized),
    ) -> Result<Vec<Effect>, PluginError> {
        decide(event, config, host)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::Config;

    #[test]
    fn metadata_names_the_plugin_and_known_capabilities() {
        let metadata = TicketLink::metadata();
        assert_eq!(metadata.name, "ticket-link");
        assert_eq!(metadata.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(metadata.wit_version, relais_sdk::WIT_VERSION);
        assert_eq!(
            metadata.capabilities,
            ["requests", "directory", "settings", "contracts", "mail"]
        );
        assert!(
            metadata
                .capabilities
                .iter()
                .all(|c| relais_sdk::CAPABILITIES.contains(&c.as_str()))
        );
        assert_eq!(metadata.config_schema.as_deref(), Some(CONFIG_SCHEMA));
    }

    #[test]
    fn config_schema_is_json_and_lists_every_config_key() {
        let problems = relais_sdk::config_schema_mismatches::<Config>(CONFIG_SCHEMA);
        assert!(problems.is_empty(), "{problems:?}");
    }
}
