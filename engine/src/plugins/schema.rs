//! Checks a rule's plugin config against the JSON Schema the plugin
//! publishes in its metadata, so that a misspelt or mistyped key is caught
//! by `relais check`, not when the first event arrives.

use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

/// `Ok` when `config` satisfies `schema`, else every problem, one per line.
/// An unknown key is reported in serde's words (`unknown field `x`,
/// expected one of ...`) so that the rule loader can suggest a name and
/// point at the key.
pub fn check(schema: &Value, config: &Value) -> Result<(), String> {
    let validator = jsonschema::validator_for(schema)
        .map_err(|e| format!("the plugin's config schema is invalid: {e}"))?;
    // An absent config is an empty one.
    let empty = Value::Object(Default::default());
    let config = if config.is_null() { &empty } else { config };
    let known: Vec<String> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| props.keys().map(|k| format!("`{k}`")).collect())
        .unwrap_or_default();
    let mut problems = Vec::new();
    for error in validator.iter_errors(config) {
        let at = error.instance_path().to_string();
        match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } if at.is_empty() => {
                for key in unexpected {
                    problems.push(format!(
                        "unknown field `{key}`, expected one of {}",
                        known.join(", ")
                    ));
                }
            }
            _ if at.is_empty() => problems.push(error.to_string()),
            _ => problems.push(format!(
                "at `{}`: {error}",
                at.trim_start_matches('/').replace('/', ".")
            )),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": { "max-body-chars": { "type": "integer", "minimum": 1 }, "language": { "enum": ["fr", "en"] } },
            "additionalProperties": false
        })
    }

    #[test]
    fn unknown_keys_are_named_like_serde_does() {
        let error = check(&schema(), &json!({ "max-body-char": 3 })).expect_err("unknown key");
        assert_eq!(
            error,
            "unknown field `max-body-char`, expected one of `language`, `max-body-chars`"
        );
    }

    #[test]
    fn types_and_values_are_checked() {
        assert!(
            check(
                &schema(),
                &json!({ "max-body-chars": 10, "language": "en" })
            )
            .is_ok()
        );
        assert!(check(&schema(), &Value::Null).is_ok());
        let error = check(&schema(), &json!({ "language": "de" })).expect_err("bad value");
        assert!(error.starts_with("at `language`:"), "{error}");
    }
}
