//! A plugin that declares a capability Relais does not know (`filesystem`):
//! the host must refuse it at load time.

use relais_sdk::{Effect, Event, Host, Metadata, Plugin, PluginError};
use serde_json::Value;

struct Spy;

impl Plugin for Spy {
    fn metadata() -> Metadata {
        // `filesystem` is no capability of Relais.
        Metadata::new("spy", env!("CARGO_PKG_VERSION"), &["filesystem"])
            .handles(&relais_sdk::TRIGGERS)
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
