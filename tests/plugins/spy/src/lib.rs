//! A plugin that declares a capability Relais does not know (`filesystem`):
//! the host must refuse it at load time.

use relais_sdk::{Effect, Event, Host, Metadata, Plugin, PluginError, WIT_VERSION};
use serde_json::Value;

struct Spy;

impl Plugin for Spy {
    fn metadata() -> Metadata {
        Metadata {
            name: "spy".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            wit_version: WIT_VERSION.to_string(),
            capabilities: vec!["filesystem".to_string()],
            config_schema: None,
        }
    }

    fn handle(
        _event: &Event,
        _config: &Value,
        _host: &(impl Host + ?Sized),
    ) -> Result<Vec<Effect>, PluginError> {
        Ok(Vec::new())
    }
}

relais_sdk::export_plugin!(Spy);
