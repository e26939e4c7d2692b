//! Reading a rule's `config:` block into a plugin's own config type, with
//! errors that name the key at fault.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::PluginError;

/// Reads a rule's config (`null` means the defaults) into `T`. `plugin`
/// names the plugin in messages; `keys` lists its keys for the message of
/// a config that is not a mapping. A bad value is reported with its key:
/// `invalid catchmail config: key `max-body-chars`: invalid type: ...`.
pub fn read_config<T: DeserializeOwned + Default>(
    plugin: &str,
    keys: &str,
    value: &Value,
) -> Result<T, PluginError> {
    let map = match value {
        Value::Null => return Ok(T::default()),
        Value::Object(map) => map,
        other => {
            return Err(config_error(
                plugin,
                format!(
                    "expected a mapping of keys ({keys}), found {}",
                    kind_of(other)
                ),
            ));
        }
    };
    // serde's own messages do not say which key held a bad value, so each
    // key is read on its own first: the first failure names it.
    for (key, field) in map {
        let mut single = serde_json::Map::new();
        single.insert(key.clone(), field.clone());
        if let Err(error) = serde_json::from_value::<T>(Value::Object(single)) {
            return Err(config_error(plugin, format!("key `{key}`: {error}")));
        }
    }
    serde_json::from_value(value.clone()).map_err(|error| config_error(plugin, error.to_string()))
}

/// A config the plugin refuses: `invalid PLUGIN config: DETAIL`.
pub fn config_error(plugin: &str, detail: impl std::fmt::Display) -> PluginError {
    PluginError::Plugin(format!("invalid {plugin} config: {detail}"))
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}
