//! The rule's `config:` block for this plugin.

use relais_sdk::{PluginError, REMINDER, RequestQuery, config_error, read_config};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::NAME;

/// Configuration of the reminders plugin, from the rule's `config:` block.
/// Every key is optional; an absent or `null` block means all defaults.
///
/// ```yaml
/// config:
///   states: [waiting-customer]   # the states that mean "waiting on the customer"
///   after-days: 7                # idle this long before a reminder, and between two
///   max-reminders: 3             # then the request is left to staff
///   template: relance            # templates/relance.LANG.jinja
///   language: fr                 # when the customer has none
///   limit: 200                   # requests reminded per run at most
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// `states: [waiting-customer]`: the request states in which the next
    /// move is the customer's.
    pub states: Vec<String>,
    /// `after-days: 7`: whole days without activity (a save, an exchange,
    /// a direct message) before a reminder; a reminder is an exchange, so
    /// the next one waits as long again.
    pub after_days: u32,
    /// `max-reminders: 3`: reminders sent since the customer last spoke
    /// beyond which the request is left to staff (logged).
    pub max_reminders: u32,
    /// `template: relance`: the mail template's name.
    pub template: String,
    /// `language: fr`: the language of reminders to customers that set none.
    pub language: String,
    /// `limit: 200`: at most this many requests are reminded per run; the
    /// rest, the least idle, wait for the next run (a warning says so).
    pub limit: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            states: vec!["waiting-customer".to_string()],
            after_days: 7,
            max_reminders: 3,
            template: REMINDER.to_string(),
            language: "fr".to_string(),
            limit: 200,
        }
    }
}

impl Config {
    /// Reads the rule's config block. `null` (no block) gives the defaults.
    ///
    /// # Errors
    ///
    /// [`PluginError::Plugin`] naming the offending key when the block is
    /// not a mapping, has an unknown key or a value of the wrong type, or
    /// `states` is empty, `after-days`, `max-reminders` or `limit` is 0, or
    /// `limit` is over 1000.
    pub fn from_value(value: &Value) -> Result<Config, PluginError> {
        let config: Config = read_config(
            NAME,
            "states, after-days, max-reminders, template, language, limit",
            value,
        )?;
        let problem = if config.states.iter().all(|s| s.trim().is_empty()) {
            Some("key `states`: name at least one state")
        } else if config.after_days == 0 {
            Some("key `after-days`: at least 1")
        } else if config.max_reminders == 0 {
            Some("key `max-reminders`: at least 1")
        } else if config.limit == 0 || config.limit > RequestQuery::MAX_LIMIT {
            Some("key `limit`: from 1 to 1000")
        } else if config.template.trim().is_empty() {
            Some("key `template`: name a template")
        } else {
            None
        };
        match problem {
            Some(problem) => Err(config_error(NAME, problem)),
            None => Ok(config),
        }
    }
}
