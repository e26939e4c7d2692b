//! A plugin that says it was built against WIT version 9.0.0, which the
//! host does not speak: the host must refuse it at load time.

use relais_sdk::{Effect, Event, Host, Metadata, Plugin, PluginError};
use serde_json::Value;

struct Future;

impl Plugin for Future {
    fn metadata() -> Metadata {
        // Built against a WIT version this host does not speak.
        Metadata {
            wit_version: "9.0.0".to_string(),
            ..Metadata::new("future", env!("CARGO_PKG_VERSION"), &[]).handles(&relais_sdk::TRIGGERS)
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
