//! Reminders as a Relais plugin: its metadata, and [`decide`] as `handle`.

use relais_sdk::{Effect, Event, Host, Metadata, Plugin, PluginError};
use serde_json::Value;

use crate::{NAME, decide};

/// The query capabilities [`decide`] uses: requests by state and idleness
/// (`requests`), the requester's address (`directory`), the customer's
/// language (`contracts`), and rendering the reminder (`templates`).
pub const CAPABILITIES: [&str; 4] = ["requests", "directory", "contracts", "templates"];

/// JSON Schema of [`Config`](crate::Config), the rule's `config:` block.
pub const CONFIG_SCHEMA: &str = r##"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "reminders config",
  "type": ["object", "null"],
  "additionalProperties": false,
  "properties": {
    "states": {
      "description": "The request states in which the next move is the customer's.",
      "type": "array",
      "items": { "type": "string" },
      "minItems": 1,
      "default": ["waiting-customer"]
    },
    "after-days": {
      "description": "Whole days without activity (a save, an exchange, a direct message) before a reminder, and between two.",
      "type": "integer",
      "minimum": 1,
      "default": 7
    },
    "max-reminders": {
      "description": "Reminders since the customer last spoke beyond which the request is left to staff.",
      "type": "integer",
      "minimum": 1,
      "default": 3
    },
    "template": {
      "description": "The mail template's name.",
      "type": "string",
      "default": "relance"
    },
    "language": {
      "description": "The language of reminders to customers that set none.",
      "type": "string",
      "default": "fr"
    },
    "limit": {
      "description": "At most this many requests reminded per run.",
      "type": "integer",
      "minimum": 1,
      "maximum": 1000,
      "default": 200
    }
  }
}"##;

/// The reminders plugin, as the WebAssembly component exports it.
#[derive(Debug, Clone, Copy)]
pub struct Reminders;

impl Plugin for Reminders {
    fn metadata() -> Metadata {
        Metadata::new(NAME, env!("CARGO_PKG_VERSION"), &CAPABILITIES)
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
