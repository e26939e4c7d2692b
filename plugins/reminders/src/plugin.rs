//! Reminders as a Relais plugin: its metadata, and [`decide`] as `handle`.

use relais_sdk::{Effect, Event, Host, Metadata, Plugin, PluginError};
use serde_json::Value;

use crate::{NAME, decide};

/// The query capabilities [`decide`] uses: requests by state and idleness
/// (`requests`), the requester's address (`directory`), the customer's
/// language (`contracts`), and rendering the reminder (`templates`).
pub const CAPABILITIES: [&str; 4] = ["requests", "directory", "contracts", "templates"];

/// JSON Schema of [`Config`](crate::Config), the rule's `config:` block.
pub const CONFIG_SCHEMA: &str = include_str!("../config.schema.json");

/// The reminders plugin, as the WebAssembly component exports it.
#[derive(Debug, Clone, Copy)]
pub struct Reminders;

impl Plugin for Reminders {
    fn metadata() -> Metadata {
        Metadata::new(NAME, env!("CARGO_PKG_VERSION"), &CAPABILITIES)
            .handles(&["schedule"])
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
