//! The rule's `config:` block for this plugin.

use relais_sdk::{PluginError, config_error, read_config};

use crate::NAME;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Configuration of the ticket linking plugin, from the rule's `config:`
/// block. Every key is optional; an absent or `null` block means all
/// defaults.
///
/// ```yaml
/// config:
///   bare-tag: false                  # also read `#23010203` for `[#{number}]`
///   policy: create-ticket            # mail nothing places: create-ticket | leave-unlinked
///   request-type: INCIDENT           # type of the tickets created
///   closed-ticket: reopen            # mail on a closed ticket: reopen | link | new-ticket
///   reopen-state: open               # the state a reopened ticket takes
///   closed-states: [closed, cancelled] # states that count as closed
///   max-references: 50               # thread ids looked up at most
///   prefixes: [odg]                  # extra reply/forward prefixes, without colon
///   markers: ["[SECURE]"]            # extra gateway markers before subjects
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// `bare-tag: false`: also recognise the ticket tag without its
    /// enclosing brackets (`#23010203` for `[#{number}]`). Off by default:
    /// `#12` is common in subjects that name no ticket (invoices, orders).
    pub bare_tag: bool,
    /// `policy: create-ticket`: what becomes of a mail that neither a tag
    /// nor the reply thread places on a ticket.
    pub policy: Policy,
    /// `request-type: INCIDENT`: the type of the tickets created for
    /// mails nothing places. It must exist; that is checked when a ticket
    /// is about to be created, and its absence is a config error.
    pub request_type: String,
    /// `closed-ticket: reopen`: what a mail found to belong to a closed
    /// ticket does.
    pub closed_ticket: ClosedTicket,
    /// `reopen-state: open`: the state a reopened ticket takes. It must not
    /// be one of `closed-states`.
    pub reopen_state: String,
    /// `closed-states: [closed, cancelled]`: the ticket states that count
    /// as closed, compared without regard to letter case. Keep them in line
    /// with `requests.closed-states` of `relais.yaml`.
    pub closed_states: Vec<String>,
    /// `max-references: 50`: how many thread ids (In-Reply-To, then
    /// References newest first) are looked up at most, besides the
    /// thread's root (the first References id). The sender writes
    /// those headers: the bound keeps a mail with thousands of ids from
    /// costing thousands of store queries. Must be at least 1.
    pub max_references: usize,
    /// `prefixes: [odg]`: reply and forward prefixes, written without their
    /// colon, stripped from the subject of a created ticket besides the
    /// built-in ones (`Re`, `AW`, `Fwd`, `TR`, `WG`, `SV`, `VS`, `Réf`...).
    pub prefixes: Vec<String>,
    /// `markers: ["[SECURE]"]`: literal markers that mail gateways put
    /// before a subject, stripped besides the built-in ones (`[EXTERNAL]`...).
    pub markers: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bare_tag: false,
            policy: Policy::CreateTicket,
            request_type: "INCIDENT".to_string(),
            closed_ticket: ClosedTicket::Reopen,
            reopen_state: "open".to_string(),
            closed_states: vec!["closed".to_string(), "cancelled".to_string()],
            max_references: 50,
            prefixes: Vec::new(),
            markers: Vec::new(),
        }
    }
}

/// What becomes of a mail that no tag and no thread places on a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// `create-ticket`, the default: a new ticket with the sender as
    /// requester, when the sender is exactly one known contact and the mail
    /// was written by a person; otherwise the mail is left unlinked.
    #[default]
    CreateTicket,
    /// `leave-unlinked`: the mail stays unlinked, for manual handling.
    LeaveUnlinked,
}

/// What a mail found to belong to a closed ticket does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClosedTicket {
    /// `reopen`, the default: the ticket takes `reopen-state` and the mail
    /// is linked to it.
    #[default]
    Reopen,
    /// `link`: the mail is linked, the ticket stays closed.
    Link,
    /// `new-ticket`: a follow-up ticket is created for the same customer,
    /// company and type, and the mail is linked to it.
    NewTicket,
}

impl Config {
    /// Reads the rule's config block. `null` (no block) gives the defaults.
    ///
    /// # Errors
    ///
    /// [`PluginError::Plugin`] with a message naming the offending key when
    /// the block is not a mapping, has an unknown key, a value of the wrong
    /// type, `max-references: 0`, an empty `request-type` or
    /// `reopen-state`, or a `reopen-state` that is one of `closed-states`.
    pub fn from_value(value: &Value) -> Result<Config, PluginError> {
        let config: Config = read_config(
            NAME,
            "bare-tag, policy, request-type, closed-ticket, reopen-state, closed-states, \
             max-references, prefixes, markers",
            value,
        )?;
        if config.max_references == 0 {
            return Err(config_error(
                NAME,
                "key `max-references`: must be at least 1, or no reply thread could ever be followed",
            ));
        }
        if config.request_type.trim().is_empty() {
            return Err(config_error(NAME, "key `request-type`: must not be empty"));
        }
        if config.reopen_state.trim().is_empty() {
            return Err(config_error(NAME, "key `reopen-state`: must not be empty"));
        }
        if config.is_closed(&config.reopen_state) {
            return Err(config_error(
                NAME,
                format!(
                    "key `reopen-state`: `{}` is one of `closed-states`; a reopened ticket would still be closed",
                    config.reopen_state
                ),
            ));
        }
        Ok(config)
    }

    /// Whether a ticket in `state` counts as closed (`closed-states`,
    /// without regard to letter case or surrounding spaces).
    pub fn is_closed(&self, state: &str) -> bool {
        self.closed_states
            .iter()
            .any(|closed| closed.trim().eq_ignore_ascii_case(state.trim()))
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
            bare_tag: false,
            policy: Policy::CreateTicket,
            request_type: "INCIDENT".to_string(),
            closed_ticket: ClosedTicket::Reopen,
            reopen_state: "open".to_string(),
            closed_states: vec!["closed".to_string(), "cancelled".to_string()],
            max_references: 50,
            prefixes: vec![],
            markers: vec![],
        };
        assert_eq!(Config::from_value(&Value::Null).unwrap(), defaults);
        assert_eq!(Config::from_value(&json!({})).unwrap(), defaults);
    }

    #[test]
    fn reads_kebab_case_keys() {
        let config = Config::from_value(&json!({
            "bare-tag": true,
            "policy": "leave-unlinked",
            "request-type": "QUESTION",
            "closed-ticket": "new-ticket",
            "reopen-state": "in-progress",
            "closed-states": ["done"],
            "max-references": 5,
            "prefixes": ["odg"],
            "markers": ["[SECURE]"],
        }))
        .unwrap();
        assert!(config.bare_tag);
        assert_eq!(config.policy, Policy::LeaveUnlinked);
        assert_eq!(config.request_type, "QUESTION");
        assert_eq!(config.closed_ticket, ClosedTicket::NewTicket);
        assert_eq!(config.reopen_state, "in-progress");
        assert_eq!(config.closed_states, ["done"]);
        assert_eq!(config.max_references, 5);
        assert_eq!(config.prefixes, ["odg"]);
        assert_eq!(config.markers, ["[SECURE]"]);
        let link = Config::from_value(&json!({ "closed-ticket": "link" })).unwrap();
        assert_eq!(link.closed_ticket, ClosedTicket::Link);
    }

    #[test]
    fn unknown_key_is_named() {
        let message = error_of(json!({ "policy": "create-ticket", "request_type": "INCIDENT" }));
        assert!(
            message.starts_with("invalid ticket-link config: key `request_type`"),
            "{message}"
        );
        assert!(message.contains("request-type"), "{message}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let message = error_of(json!({ "policy": "create" }));
        assert!(
            message.contains("key `policy`") && message.contains("`leave-unlinked`"),
            "{message}"
        );
        let message = error_of(json!({ "closed-ticket": "reopen-it" }));
        assert!(
            message.contains("key `closed-ticket`") && message.contains("`new-ticket`"),
            "{message}"
        );
        let message = error_of(json!({ "bare-tag": "yes" }));
        assert!(message.contains("key `bare-tag`"), "{message}");
        let message = error_of(json!({ "closed-states": "closed" }));
        assert!(message.contains("key `closed-states`"), "{message}");
        let message = error_of(json!({ "max-references": -1 }));
        assert!(message.contains("key `max-references`"), "{message}");
    }

    #[test]
    fn limits_and_states_are_checked() {
        assert!(error_of(json!({ "max-references": 0 })).contains("key `max-references`"));
        assert!(error_of(json!({ "request-type": " " })).contains("key `request-type`"));
        assert!(error_of(json!({ "reopen-state": "" })).contains("key `reopen-state`"));
        let message = error_of(json!({ "reopen-state": "Closed" }));
        assert!(
            message.contains("key `reopen-state`") && message.contains("closed-states"),
            "{message}"
        );
        assert!(error_of(json!("create-ticket")).contains("found a string"));
    }

    #[test]
    fn closed_states_ignore_letter_case() {
        let config = Config::default();
        assert!(config.is_closed("closed"));
        assert!(config.is_closed(" Cancelled "));
        assert!(!config.is_closed("resolved"));
        assert!(!config.is_closed("open"));
    }
}
