//! A plugin that declares only the `requests` capability but calls the
//! `contracts` query: its component imports `relais:plugin/contracts`, and
//! the host must refuse it at load time.

use relais_sdk::{Effect, Event, Host, Level, Metadata, Plugin, PluginError, WIT_VERSION};
use serde_json::Value;

struct Greedy;

impl Plugin for Greedy {
    fn metadata() -> Metadata {
        Metadata {
            name: "greedy".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            wit_version: WIT_VERSION.to_string(),
            // A lie: `handle` calls `contracts`.
            capabilities: vec!["requests".to_string()],
            config_schema: None,
        }
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
