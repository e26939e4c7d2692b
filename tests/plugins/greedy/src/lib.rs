//! A plugin that declares only the `requests` capability but calls the
//! `contracts` query: its component imports `relais:plugin/contracts`, and
//! the host must refuse it at load time.

use relais_sdk::{Effect, Event, Host, Level, Metadata, Plugin, PluginError};
use serde_json::Value;

struct Greedy;

impl Plugin for Greedy {
    fn metadata() -> Metadata {
        // A lie: `handle` calls `contracts`.
        Metadata::new("greedy", env!("CARGO_PKG_VERSION"), &["requests"])
            .handles(&relais_sdk::TRIGGERS)
    }

    fn handle(
        _event: &Event,
        _config: &Value,
        host: &(impl Host + ?Sized),
    ) -> Result<Vec<Effect>, PluginError> {
        let contract = host.contract("K-2026-001")?;
        host.log(Level::Info, &format!("contract K-2026-001: {contract:?}"));
        Ok(Vec::new())
    }
}

relais_sdk::export_plugin!(Greedy);
