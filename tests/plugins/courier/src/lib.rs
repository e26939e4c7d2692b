//! A plugin that forwards: it declares the `mail-anyone` capability and
//! sends one mail to the address its rule config names (`to`).

use relais_sdk::{Effect, Event, Host, Metadata, Plugin, PluginError};
use serde_json::Value;

struct Courier;

impl Plugin for Courier {
    fn metadata() -> Metadata {
        Metadata::new("courier", env!("CARGO_PKG_VERSION"), &["mail-anyone"])
            .handles(&relais_sdk::TRIGGERS)
    }

    fn handle(
        _event: &Event,
        config: &Value,
        _host: &(impl Host + ?Sized),
    ) -> Result<Vec<Effect>, PluginError> {
        Ok(vec![forward(config)])
    }
}

/// The one mail, to `config.to`.
pub fn forward(config: &Value) -> Effect {
    Effect::SendMail {
        to: vec![
            config
                .get("to")
                .and_then(Value::as_str)
                .unwrap_or("nobody@outside.example")
                .to_string(),
        ],
        subject: "forwarded".to_string(),
        body: "A mail for an outside service.".to_string(),
        request: None,
        exchange: None,
    }
}

relais_sdk::export_plugin!(Courier);
