//! A plugin that says it was built against WIT version 9.0.0, which the
//! host does not speak: the host must refuse it at load time.

use relais_sdk::{Effect, Event, Host, Metadata, Plugin, PluginError};
use serde_json::Value;

struct Future;

impl Plugin for Future {
    fn metadata() -> Metadata {
        Metadata {
            name: "future".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            wit_version: "9.0.0".to_string(),
            capabilities: Vec::new(),
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

relais_sdk::export_plugin!(Future);
