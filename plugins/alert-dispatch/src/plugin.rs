//! Alert dispatch as a Relais plugin: its metadata, and [`decide`] as
//! `handle`.

use relais_sdk::{Effect, Event, Host, Metadata, Plugin, PluginError};
use serde_json::Value;

use crate::{NAME, decide};

/// The query capabilities [`decide`] uses: the contract and the customer
/// (`contracts`), and rendering the alert templates (`templates`).
pub const CAPABILITIES: [&str; 2] = ["contracts", "templates"];

/// JSON Schema of [`Config`](crate::Config), the rule's `config:` block.
pub const CONFIG_SCHEMA: &str = include_str!("../config.schema.json");

/// The alert dispatch plugin, as the WebAssembly component exports it.
#[derive(Debug, Clone, Copy)]
pub struct AlertDispatch;

impl Plugin for AlertDispatch {
    fn metadata() -> Metadata {
        Metadata::new(NAME, env!("CARGO_PKG_VERSION"), &CAPABILITIES)
            .handles(&["request-saved"])
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
        let metadata = AlertDispatch::metadata();
        assert_eq!(metadata.name, "alert-dispatch");
        assert_eq!(metadata.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(metadata.wit_version, relais_sdk::WIT_VERSION);
        assert_eq!(metadata.capabilities, ["contracts", "templates"]);
        assert!(
            metadata
                .capabilities
                .iter()
                .all(|c| relais_sdk::CAPABILITIES.contains(&c.as_str()))
        );
    }

    #[test]
    fn config_schema_is_json_and_lists_every_config_key() {
        let problems = relais_sdk::config_schema_mismatches::<Config>(CONFIG_SCHEMA);
        assert!(problems.is_empty(), "{problems:?}");
        let schema: Value = serde_json::from_str(CONFIG_SCHEMA).unwrap();
        let properties = schema["properties"].as_object().unwrap();
        let defaults = serde_json::to_value(Config::default()).unwrap();
        let keys = defaults.as_object().unwrap();
        // Every kind of `defaults` is in the schema too.
        let kinds = properties["defaults"]["properties"].as_object().unwrap();
        let default_kinds = keys["defaults"].as_object().unwrap();
        assert_eq!(
            kinds.keys().collect::<std::collections::BTreeSet<_>>(),
            default_kinds.keys().collect()
        );
    }
}
