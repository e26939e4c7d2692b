//! The rule's `config:` block for this plugin.

use relais_sdk::{PluginError, config_error, read_config};

use crate::NAME;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Configuration of the CatchMail plugin, from the rule's `config:` block.
/// Every key is optional; an absent or `null` block means all defaults.
///
/// ```yaml
/// config:
///   max-body-chars: 4000                    # longest body accepted, in characters
///   own-addresses: [catchmail@acme.example] # our addresses, for X-Loop detection
///   language: fr                            # language of failure mails: fr | en
///   sender-authentication: required         # required | off
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// `max-body-chars: 4000`: the longest body accepted, counted in
    /// characters (not bytes) after the signature and quoted history are
    /// removed. Bounds what a sender can put on a request's thread; the
    /// vendor's limit is 4,000. Must be at least 1.
    pub max_body_chars: usize,
    /// `own-addresses: [catchmail@acme.example]`: the addresses this desk
    /// sends from. A mail whose `X-Loop` names one of them is our own mail
    /// come back and is never answered, which breaks mail loops.
    pub own_addresses: Vec<String>,
    /// `language: fr`: the language of failure mails (`fr` or `en`).
    pub language: Language,
    /// `sender-authentication: required`: post only mail whose sender the
    /// receiving server authenticated (the host's verdict, from a trusted
    /// `Authentication-Results`); `off` takes the `From` header's word.
    pub sender_authentication: SenderAuthentication,
}

/// Whether a mail's sender must be authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SenderAuthentication {
    /// `required`, the default: anyone can write any `From`, so a message
    /// is posted in a customer's name only when the customer's domain
    /// vouched for the mail.
    #[default]
    Required,
    /// `off`: the `From` address is taken as the sender (a closed network
    /// whose server checks senders itself).
    Off,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_body_chars: 4000,
            own_addresses: Vec::new(),
            language: Language::Fr,
            sender_authentication: SenderAuthentication::Required,
        }
    }
}

/// Language of the failure mails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Language {
    /// French (`fr`), the default: the vendor's users write in French.
    #[default]
    Fr,
    /// English (`en`).
    En,
}

impl Config {
    /// Reads the rule's config block. `null` (no block) gives the defaults.
    ///
    /// # Errors
    ///
    /// [`PluginError::Plugin`] with a message naming the offending key when
    /// the block is not a mapping, has an unknown key, a value of the wrong
    /// type, or `max-body-chars: 0`.
    pub fn from_value(value: &Value) -> Result<Config, PluginError> {
        let config: Config = read_config(
            NAME,
            "max-body-chars, own-addresses, language, sender-authentication",
            value,
        )?;
        if config.max_body_chars == 0 {
            return Err(config_error(
                NAME,
                "key `max-body-chars`: must be at least 1, or no mail could ever be accepted",
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
            max_body_chars: 4000,
            own_addresses: vec![],
            language: Language::Fr,
            sender_authentication: SenderAuthentication::Required,
        };
        assert_eq!(Config::from_value(&Value::Null).unwrap(), defaults);
        assert_eq!(Config::from_value(&json!({})).unwrap(), defaults);
    }

    #[test]
    fn reads_kebab_case_keys() {
        let config = Config::from_value(&json!({
            "max-body-chars": 100,
            "own-addresses": ["catchmail@acme.example"],
            "language": "en",
        }))
        .unwrap();
        assert_eq!(config.max_body_chars, 100);
        assert_eq!(config.own_addresses, ["catchmail@acme.example"]);
        assert_eq!(config.language, Language::En);
    }

    #[test]
    fn unknown_key_is_named() {
        let message = error_of(json!({ "max-body-chars": 10, "max_body_chars": 10 }));
        assert!(
            message.starts_with("invalid catchmail config: key `max_body_chars`"),
            "{message}"
        );
        assert!(message.contains("max-body-chars"), "{message}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let message = error_of(json!({ "language": "en", "max-body-chars": "lots" }));
        assert!(message.contains("key `max-body-chars`"), "{message}");
        let message = error_of(json!({ "language": "de" }));
        assert!(
            message.contains("key `language`") && message.contains("`fr`"),
            "{message}"
        );
        let message = error_of(json!({ "own-addresses": "a@b.example" }));
        assert!(message.contains("key `own-addresses`"), "{message}");
        let message = error_of(json!({ "max-body-chars": -1 }));
        assert!(message.contains("key `max-body-chars`"), "{message}");
    }

    #[test]
    fn zero_limit_and_non_mapping_are_refused() {
        assert!(error_of(json!({ "max-body-chars": 0 })).contains("key `max-body-chars`"));
        assert!(error_of(json!([1, 2])).contains("found a list"));
    }
}
