//! A plugin that decides nothing, whatever the event: what a plugin call
//! costs the host with no work in the guest (the benches' floor).

use relais_sdk::{Effect, Event, Host, Metadata, Plugin, PluginError};
use serde_json::Value;

struct Noop;

impl Plugin for Noop {
    fn metadata() -> Metadata {
        Metadata::new("noop", env!("CARGO_PKG_VERSION"), &[]).handles(&relais_sdk::TRIGGERS)
    }

    fn handle(
        _event: &Event,
        _config: &Value,
        _host: &(impl Host + ?Sized),
    ) -> Result<Vec<Effect>, PluginError> {
        Ok(Vec::new())
    }
}

relais_sdk::export_plugin!(Noop);
