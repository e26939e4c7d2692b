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
    // The common case, once per event in a fresh sandbox: one pass from
    // the value into `T`, nothing copied.
    let whole = match T::deserialize(value) {
        Ok(config) => return Ok(config),
        Err(error) => error,
    };
    // serde's own messages do not say which key held a bad value, so each
    // key is read on its own: the first failure names it.
    for (key, field) in map {
        let mut single = serde_json::Map::new();
        single.insert(key.clone(), field.clone());
        if let Err(error) = serde_json::from_value::<T>(Value::Object(single)) {
            return Err(config_error(plugin, format!("key `{key}`: {error}")));
        }
    }
    Err(config_error(plugin, whole))
}

/// A config the plugin refuses: `invalid PLUGIN config: DETAIL`.
pub fn config_error(plugin: &str, detail: impl std::fmt::Display) -> PluginError {
    PluginError::Plugin(format!("invalid {plugin} config: {detail}"))
}

/// How a plugin's published config schema differs from its config type:
/// not JSON, keys missing on either side, or a default that is not the
/// type's. Empty when they agree. A plugin's test asserts it is empty, so
/// the schema `relais check` validates rule configs against cannot drift
/// from what the plugin reads.
pub fn config_schema_mismatches<T: serde::Serialize + Default>(schema: &str) -> Vec<String> {
    let schema: Value = match serde_json::from_str(schema) {
        Ok(schema) => schema,
        Err(error) => return vec![format!("the schema is not JSON: {error}")],
    };
    let defaults = match serde_json::to_value(T::default()) {
        Ok(Value::Object(defaults)) => defaults,
        Ok(other) => return vec![format!("the default config is {}", kind_of(&other))],
        Err(error) => return vec![format!("the default config does not serialize: {error}")],
    };
    let Some(properties) = schema["properties"].as_object() else {
        return vec!["the schema has no `properties`".to_string()];
    };
    let mut problems = Vec::new();
    for key in properties.keys().filter(|key| !defaults.contains_key(*key)) {
        problems.push(format!("`{key}` is in the schema, not in the config"));
    }
    for (key, default) in &defaults {
        match properties.get(key) {
            None => problems.push(format!("`{key}` is in the config, not in the schema")),
            Some(property) if property.get("default") != Some(default) => problems.push(format!(
                "`{key}`: the schema's default is {}, the config's {default}",
                property.get("default").unwrap_or(&Value::Null)
            )),
            Some(_) => {}
        }
    }
    problems
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, Default)]
    #[serde(rename_all = "kebab-case")]
    struct Sample {
        max_body_chars: u32,
        language: String,
    }

    #[test]
    fn schema_mismatches_name_the_key() {
        let good =
            r#"{"properties": {"max-body-chars": {"default": 0}, "language": {"default": ""}}}"#;
        assert!(config_schema_mismatches::<Sample>(good).is_empty());
        let bad = r#"{"properties": {"max-body-chars": {"default": 5}, "colour": {}}}"#;
        assert_eq!(
            config_schema_mismatches::<Sample>(bad),
            [
                "`colour` is in the schema, not in the config",
                "`language` is in the config, not in the schema",
                "`max-body-chars`: the schema's default is 5, the config's 0",
            ]
        );
        assert!(config_schema_mismatches::<Sample>("{")[0].contains("not JSON"));
    }
}
