//! A plugin that names no trigger it handles: no rule could run it, and
//! the host must refuse it at load time.

use relais_sdk::{Effect, Event, Host, Metadata, Plugin, PluginError};
use serde_json::Value;

struct Idle;

impl Plugin for Idle {
    fn metadata() -> Metadata {
        Metadata::new("idle", env!("CARGO_PKG_VERSION"), &[])
    }

    fn handle(
        _event: &Event,
        _config: &Value,
        _host: &(impl Host + ?Sized),
    ) -> Result<Vec<Effect>, PluginError> {
        Ok(Vec::new())
    }
}

relais_sdk::export_plugin!(Idle);
