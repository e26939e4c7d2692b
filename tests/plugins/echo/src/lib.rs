//! A plugin that says what it received: one `post-message` effect whose
//! body is `{"event": ..., "config": ...}` in JSON, as the guest read them.
//! The host's tests compare it with what they sent.

use relais_sdk::{
    Author, Effect, Event, Host, MessageSource, Metadata, PartyKind, Plugin, PluginError, Side,
};
use serde_json::{Value, json};

struct Echo;

impl Plugin for Echo {
    fn metadata() -> Metadata {
        Metadata::new("echo", env!("CARGO_PKG_VERSION"), &[]).handles(&relais_sdk::TRIGGERS)
    }

    fn handle(
        event: &Event,
        config: &Value,
        _host: &(impl Host + ?Sized),
    ) -> Result<Vec<Effect>, PluginError> {
        Ok(vec![Effect::PostMessage {
            request: 0,
            author: Author {
                kind: PartyKind::Collaborator,
                id: "echo".into(),
            },
            side: Side::Staff,
            source: MessageSource::Plugin,
            body: json!({ "event": event, "config": config }).to_string(),
            notify_by_email: None,
        }])
    }
}

relais_sdk::export_plugin!(Echo);
