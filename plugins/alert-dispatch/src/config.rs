//! The rule's `config:` block for this plugin.

use relais_sdk::{ChangeKind, PluginError, config_error, read_config};

use crate::NAME;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Configuration of the alert dispatch plugin, from the rule's `config:`
/// block. Every key is optional; an absent or `null` block means all
/// defaults.
///
/// ```yaml
/// config:
///   language: fr                               # when the customer has none
///   fax-gateway: "{fax}@fax.acme.example"      # email-to-fax address; none by default
///   defaults:                                  # when the customer has no format for a kind
///     closed: { keyword: "[CLOTURE]", template: alert-closed }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// `language: fr`: the language of alert mails to a customer that sets
    /// none (the vendor's users write in French).
    pub language: String,
    /// `fax-gateway: "{fax}@fax.acme.example"`: the address of the
    /// email-to-fax gateway, `{fax}` standing for the fax number's digits.
    /// Without it, an alert to a recipient that receives alerts by fax is
    /// undeliverable (logged, not sent).
    pub fax_gateway: Option<String>,
    /// `defaults: { opened: { keyword: "[OUVERTURE]", template: alert-opened } }`:
    /// the subject keyword and template of each kind, for customers whose
    /// alert formats lack that kind. The kinds given replace only their own
    /// default.
    pub defaults: DefaultFormats,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            language: "fr".to_string(),
            fax_gateway: None,
            defaults: DefaultFormats::default(),
        }
    }
}

/// The alert format of each kind used when the customer has none for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct DefaultFormats {
    /// `opened: { keyword: "[OUVERTURE]", template: alert-opened }`
    pub opened: Format,
    /// `resolved: { keyword: "[RESOLUTION]", template: alert-resolved }`
    pub resolved: Format,
    /// `closed: { keyword: "[CLOTURE]", template: alert-closed }`
    pub closed: Format,
    /// `state-changed: { keyword: "[ETAT]", template: alert-state }`
    pub state_changed: Format,
}

impl Default for DefaultFormats {
    fn default() -> Self {
        DefaultFormats {
            opened: Format::new("[OUVERTURE]", "alert-opened"),
            resolved: Format::new("[RESOLUTION]", "alert-resolved"),
            closed: Format::new("[CLOTURE]", "alert-closed"),
            state_changed: Format::new("[ETAT]", "alert-state"),
        }
    }
}

impl DefaultFormats {
    /// The default format of `kind`.
    pub fn of(&self, kind: ChangeKind) -> &Format {
        match kind {
            ChangeKind::Opened => &self.opened,
            ChangeKind::Resolved => &self.resolved,
            ChangeKind::Closed => &self.closed,
            ChangeKind::StateChanged => &self.state_changed,
        }
    }
}

/// `{ keyword: "[OUVERTURE]", template: alert-opened }`: how an alert of
/// one kind reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Format {
    /// `keyword: "[OUVERTURE]"`: put before the alert's subject.
    pub keyword: String,
    /// `template: alert-opened`: the mail template's name (the host checks
    /// it exists when the rules load).
    pub template: String,
}

impl Format {
    fn new(keyword: &str, template: &str) -> Format {
        Format {
            keyword: keyword.to_string(),
            template: template.to_string(),
        }
    }
}

/// What stands for the fax number's digits in `fax-gateway`.
pub const FAX_PLACEHOLDER: &str = "{fax}";

impl Config {
    /// Reads the rule's config block. `null` (no block) gives the defaults.
    ///
    /// # Errors
    ///
    /// [`PluginError::Plugin`] with a message naming the offending key when
    /// the block is not a mapping, has an unknown key, a value of the wrong
    /// type, or a `fax-gateway` without `{fax}`.
    pub fn from_value(value: &Value) -> Result<Config, PluginError> {
        let config: Config = read_config(NAME, "language, fax-gateway, defaults", value)?;
        if let Some(gateway) = &config.fax_gateway
            && !gateway.contains(FAX_PLACEHOLDER)
        {
            return Err(config_error(
                NAME,
                format!(
                    "key `fax-gateway`: `{gateway}` must contain `{FAX_PLACEHOLDER}`, \
                     which stands for the fax number's digits"
                ),
            ));
        }
        Ok(config)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use serde_json::json;

    fn error_of(value: Value) -> String {
        match Config::from_value(&value) {
            Err(PluginError::Plugin(message)) => message,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn null_and_empty_give_the_defaults() {
        let defaults = Config {
            language: "fr".to_string(),
            fax_gateway: None,
            defaults: DefaultFormats {
                opened: Format::new("[OUVERTURE]", "alert-opened"),
                resolved: Format::new("[RESOLUTION]", "alert-resolved"),
                closed: Format::new("[CLOTURE]", "alert-closed"),
                state_changed: Format::new("[ETAT]", "alert-state"),
            },
        };
        assert_eq!(Config::from_value(&Value::Null).unwrap(), defaults);
        assert_eq!(Config::from_value(&json!({})).unwrap(), defaults);
        assert_eq!(
            Config::from_value(&json!({ "fax-gateway": null })).unwrap(),
            defaults
        );
    }

    #[test]
    fn reads_kebab_case_keys_and_replaces_only_the_kinds_given() {
        let config = Config::from_value(&json!({
            "language": "en",
            "fax-gateway": "{fax}@fax.acme.example",
            "defaults": {
                "state-changed": { "keyword": "[STATE]", "template": "state-en" },
            },
        }))
        .unwrap();
        assert_eq!(config.language, "en");
        assert_eq!(
            config.fax_gateway.as_deref(),
            Some("{fax}@fax.acme.example")
        );
        assert_eq!(
            config.defaults.of(ChangeKind::StateChanged),
            &Format::new("[STATE]", "state-en")
        );
        assert_eq!(
            config.defaults.of(ChangeKind::Opened),
            &Format::new("[OUVERTURE]", "alert-opened")
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let message = error_of(json!({ "language": "fr", "fax_gateway": "{fax}@x" }));
        assert!(
            message.starts_with("invalid alert-dispatch config: key `fax_gateway`"),
            "{message}"
        );
        assert!(message.contains("fax-gateway"), "{message}");
        let message = error_of(json!({ "defaults": { "reopened": {} } }));
        assert!(
            message.contains("key `defaults`") && message.contains("`reopened`"),
            "{message}"
        );
        let message = error_of(json!({
            "defaults": { "opened": { "keyword": "[O]", "template": "t", "subject": "s" } }
        }));
        assert!(
            message.contains("key `defaults`") && message.contains("`subject`"),
            "{message}"
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let message = error_of(json!({ "language": 2 }));
        assert!(message.contains("key `language`"), "{message}");
        let message = error_of(json!({ "defaults": { "opened": { "keyword": "[O]" } } }));
        assert!(
            message.contains("key `defaults`") && message.contains("`template`"),
            "{message}"
        );
        assert!(error_of(json!(["fr"])).contains("found a list"));
    }

    #[test]
    fn fax_gateway_must_hold_the_placeholder() {
        let message = error_of(json!({ "fax-gateway": "fax@acme.example" }));
        assert!(
            message.contains("key `fax-gateway`") && message.contains("{fax}"),
            "{message}"
        );
    }
}
