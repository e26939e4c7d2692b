//! A plugin that says it handles a trigger Relais does not have: the host
//! must refuse it at load time, naming the triggers it has.

use relais_sdk::{Effect, Event, Host, Metadata, Plugin, PluginError};
use serde_json::Value;

struct Stray;

impl Plugin for Stray {
    fn metadata() -> Metadata {
        Metadata::new("stray", env!("CARGO_PKG_VERSION"), &[])
            .handles(&["mail-received", "ticket-closed"])
    }

    fn handle(
        _event: &Event,
        _config: &Value,
        _host: &(impl Host + ?Sized),
    ) -> Result<Vec<Effect>, PluginError> {
        Ok(Vec::new())
    }
}

relais_sdk::export_plugin!(Stray);
