//! A slow plugin: on a mail or a request saved whose subject is `sleep MS
//! ...`, it sleeps MS milliseconds (in a host clock wait, as a plugin
//! waiting on anything would), then decides nothing.

use relais_sdk::{Effect, Event, Host, Level, Metadata, Plugin, PluginError};
use serde_json::Value;

struct Sleepy;

impl Plugin for Sleepy {
    fn metadata() -> Metadata {
        Metadata::new("sleepy", env!("CARGO_PKG_VERSION"), &[]).handles(&relais_sdk::TRIGGERS)
    }

    fn handle(
        event: &Event,
        _config: &Value,
        host: &(impl Host + ?Sized),
    ) -> Result<Vec<Effect>, PluginError> {
        let subject = match event {
            Event::MailReceived(mail) => mail.subject.as_str(),
            Event::RequestSaved(saved) => saved.after.subject.as_deref().unwrap_or_default(),
            _ => "",
        };
        let ms = subject
            .strip_prefix("sleep ")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|ms| ms.parse::<u64>().ok())
            .unwrap_or(0);
        std::thread::sleep(std::time::Duration::from_millis(ms));
        host.log(Level::Info, &format!("slept {ms} ms"));
        Ok(Vec::new())
    }
}

relais_sdk::export_plugin!(Sleepy);
