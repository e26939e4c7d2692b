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
pub const CONFIG_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "ticket-link config",
  "type": ["object", "null"],
  "additionalProperties": false,
  "properties": {
    "bare-tag": {
      "description": "Also recognise the ticket tag without its enclosing brackets (#23010203 for [#{number}]).",
      "type": "boolean",
      "default": false
    },
    "policy": {
      "description": "What becomes of a mail that no tag and no thread places: a new ticket with the sender as requester, or left unlinked for manual handling.",
      "enum": ["create-ticket", "leave-unlinked"],
      "default": "create-ticket"
    },
    "request-type": {
      "description": "The type of the tickets created; it must exist.",
      "type": "string",
      "minLength": 1,
      "default": "INCIDENT"
    },
    "closed-ticket": {
      "description": "What a mail found to belong to a closed ticket does: reopen it, link to it and leave it closed, or open a follow-up ticket.",
      "enum": ["reopen", "link", "new-ticket"],
      "default": "reopen"
    },
    "reopen-state": {
      "description": "The state a reopened ticket takes; not one of closed-states.",
      "type": "string",
      "minLength": 1,
      "default": "open"
    },
    "closed-states": {
      "description": "The ticket states that count as closed (letter case ignored); keep them in line with requests.closed-states of relais.yaml.",
      "type": "array",
      "items": { "type": "string" },
      "default": ["closed", "cancelled"]
    },
    "max-references": {
      "description": "How many thread ids (In-Reply-To, then References newest first) are looked up at most, besides the thread's root (the first References id).",
      "type": "integer",
      "minimum": 1,
      "default": 50
    },
    "prefixes": {
      "description": "Reply and forward prefixes, without their colon, stripped from new tickets' subjects besides the built-in ones.",
      "type": "array",
      "items": { "type": "string" },
      "default": []
    },
    "markers": {
      "description": "Markers that mail gateways put before subjects, such as [SECURE], stripped besides the built-in ones.",
      "type": "array",
      "items": { "type": "string" },
      "default": []
    }
  }
}"#;

/// The ticket linking plugin, as the WebAssembly component exports it.
#[derive(Debug, Clone, Copy)]
pub struct TicketLink;

impl Plugin for TicketLink {
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
