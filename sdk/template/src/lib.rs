//! A Relais plugin, to start from.
//!
//! On every `mail-received` event it logs the mail's subject (prefixed by
//! the rule's `prefix`) and returns no effect: it asks the host to do
//! nothing. Rule:
//!
//! ```yaml
//! run:
//!   plugin: template
//!   config:
//!     prefix: "seen: "   # put before the subject in the log line (default "")
//! ```
//!
//! To do more, return [`Effect`]s (post a message, send a mail, ...) and
//! read what you need through the `host` queries; each query family is a
//! capability to list in [`CAPABILITIES`] (`requests`, `directory`,
//! `settings`, `contracts`, `mail`, `templates`), or the host refuses the
//! plugin.
//! `host.log` needs none.

use relais_sdk::{Effect, Event, Host, Level, Metadata, Plugin, PluginError};
use serde::Deserialize;
use serde_json::Value;

/// The plugin's name, as rules write it (`run: { plugin: template }`).
const NAME: &str = "template";

/// The query capabilities `handle` uses. Add `"requests"` before calling
/// `host.request(..)`, and so on.
const CAPABILITIES: &[&str] = &[];

/// JSON Schema of [`Config`], shown to rule authors.
const CONFIG_SCHEMA: &str = r#"{
  "type": ["object", "null"],
  "additionalProperties": false,
  "properties": {
    "prefix": { "type": "string", "default": "" }
  }
}"#;

/// The rule's `config:` block; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    /// `prefix: "seen: "`: put before the subject in the log line.
    prefix: String,
}

/// The plugin.
struct Template;

impl Plugin for Template {
    fn metadata() -> Metadata {
        Metadata::new(NAME, env!("CARGO_PKG_VERSION"), CAPABILITIES)
            .handles(&["mail-received"])
            .with_config_schema(CONFIG_SCHEMA)
    }

    // `host` stays generic (never `&dyn Host`) so that the component only
    // imports the queries this code calls.
    fn handle(
        event: &Event,
        config: &Value,
        host: &(impl Host + ?Sized),
    ) -> Result<Vec<Effect>, PluginError> {
        // An error here refuses the event; the host records it in the trace.
        let config: Config = if config.is_null() {
            Config::default()
        } else {
            serde_json::from_value(config.clone())
                .map_err(|error| PluginError::Plugin(format!("invalid {NAME} config: {error}")))?
        };
        if let Event::MailReceived(mail) = event {
            host.log(Level::Info, &format!("{}{}", config.prefix, mail.subject));
        }
        Ok(Vec::new())
    }
}

relais_sdk::export_plugin!(Template);
