//! The rule file format, as serde and JSON Schema types. `relais schema`
//! prints the schema generated from these same types.

use std::borrow::Cow;
use std::fmt;

use relais_sdk::ChangeKind;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// A rule file: `rules: [ { id, on, when, run, mode } ]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Relais rule file")]
pub struct RuleFile {
    /// The rules of this file; ids are unique across all files.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

/// One rule: when `on` fires and `when` holds, run a plugin.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RuleSpec {
    /// `id: catchmail`: stable identifier (letters, digits, `-`, `_`, `.`),
    /// unique across the rule set; traces name rules by it.
    pub id: RuleId,
    /// `description: "..."`: free text for people.
    #[serde(default)]
    pub description: Option<String>,
    /// `on: mail-received | request-saved | contract-event | schedule`
    pub on: Trigger,
    /// `cron: "0 0 8 * * Mon-Fri"`: when a `schedule` rule fires (sec min
    /// hour day-of-month month day-of-week [year]).
    #[serde(default)]
    pub cron: Option<String>,
    /// `timezone: Europe/Paris`: the time zone `cron` is read in (an IANA
    /// name); UTC by default.
    #[serde(default)]
    pub timezone: Option<String>,
    /// `missed: run-once | skip`: what a `schedule` rule does about the
    /// times it should have fired while Relais was stopped (default
    /// `run-once`: one run at start-up, however many were missed).
    #[serde(default)]
    pub missed: Option<Missed>,
    /// `when: { subject: { contains: "*message*" } }`: conditions, all of
    /// which must hold; omitted means always.
    #[serde(default)]
    pub when: When,
    /// `run: { plugin: catchmail, config: { ... } }`
    pub run: RunSpec,
    /// `mode: single | queued | parallel`: what happens when the rule fires
    /// while a run of it is in progress (default `queued`).
    #[serde(default)]
    pub mode: Mode,
    /// `max: 10`: how many runs may queue (`queued`) or run at once
    /// (`parallel`); not allowed with `single`.
    #[serde(default)]
    pub max: Option<u32>,
    /// `enabled: false` keeps a rule in the file without running it.
    #[serde(default = "enabled")]
    pub enabled: bool,
}

fn enabled() -> bool {
    true
}

/// A rule id: `[A-Za-z0-9][A-Za-z0-9_.-]*`, checked on load.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema)]
#[schemars(transparent)]
pub struct RuleId(#[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"))] String);

impl RuleId {
    /// The id as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RuleId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let id = String::deserialize(deserializer)?;
        let mut chars = id.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if valid {
            Ok(RuleId(id))
        } else {
            Err(de::Error::custom(format!(
                "invalid rule id `{id}`: use letters, digits, `-`, `_` and `.`, starting with a letter or digit"
            )))
        }
    }
}

/// What a `schedule` rule does about the times it missed while Relais was
/// stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Missed {
    /// Run once at start-up (or reload), however many were missed.
    #[default]
    RunOnce,
    /// Wait for the next time.
    Skip,
}

pub use crate::triggers::Trigger;

/// `run: { plugin: NAME, config: { ... } }`
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// `plugin: catchmail`: the plugin's name.
    pub plugin: String,
    /// `config: { max-body-chars: 4000 }`: passed to the plugin as is.
    #[serde(default)]
    pub config: serde_json::Value,
    /// `identity: support`: the identity of `relais.yaml` the mail this
    /// rule sends goes out with (the default identity otherwise).
    #[serde(default)]
    pub identity: Option<String>,
}

/// What happens when a rule fires while a run of it is in progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// `single`: the new run is dropped (and traced as such).
    Single,
    /// `queued`: the new run waits its turn (at most `max` waiting).
    #[default]
    Queued,
    /// `parallel`: runs at once (at most `max` together).
    Parallel,
}

impl Mode {
    /// The name used in rule files.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Single => "single",
            Mode::Queued => "queued",
            Mode::Parallel => "parallel",
        }
    }
}

/// Conditions on the event; every one given must hold.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct When {
    /// mail-received: `account: catchmail`: the account the mail came from.
    pub account: Option<Matcher>,
    /// mail-received: `from: { contains: "@dupont.example" }`: the From address.
    pub from: Option<Matcher>,
    /// mail-received: `to: catchmail@acme.example`: any To address.
    pub to: Option<Matcher>,
    /// mail-received: `cc: ...`: any Cc address.
    pub cc: Option<Matcher>,
    /// mail-received: `recipient: ...`: any To or Cc address.
    pub recipient: Option<Matcher>,
    /// mail-received: `subject: { contains: "*message*", case: insensitive }`
    pub subject: Option<Matcher>,
    /// mail-received: `body: { matches: "(?m)^urgent" }`: the text body.
    pub body: Option<Matcher>,
    /// request-saved: `change: [opened, closed]`: any of these change kinds.
    pub change: Option<Changes>,
    /// request-saved: `state: closed`: the request's state after the save.
    pub state: Option<Matcher>,
    /// request-saved: `type: INCIDENT`: the request type.
    #[serde(rename = "type")]
    pub request_type: Option<Matcher>,
    /// request-saved: `company: ACME-FR`
    pub company: Option<Matcher>,
    /// request-saved, contract-event: `customer: C001`
    pub customer: Option<Matcher>,
    /// request-saved, contract-event: `contract: K-2026-001`
    pub contract: Option<Matcher>,
    /// contract-event: `kind: expiring`: the event kind.
    pub kind: Option<Matcher>,
    /// `all: [ {...}, {...} ]`: every one holds.
    pub all: Option<Vec<When>>,
    /// `any: [ {...}, {...} ]`: at least one holds.
    pub any: Option<Vec<When>>,
    /// `not: {...}`: does not hold.
    pub not: Option<Box<When>>,
}

/// Letter case in comparisons.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Case {
    /// `case: sensitive` (default)
    #[default]
    Sensitive,
    /// `case: insensitive`
    Insensitive,
}

/// A test on one field: `value` (equals), or a mapping with exactly one of
/// `equals`, `contains`, `matches` (regex), `any-of`, and optionally `case`.
#[derive(Debug, Clone)]
pub struct Matcher(pub MatcherSpec);

/// The long form of a field test.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MatcherSpec {
    /// `equals: "exact value"`
    pub equals: Option<String>,
    /// `contains: "part"`
    pub contains: Option<String>,
    /// `matches: "^re(gex)?$"` (Rust regex syntax)
    pub matches: Option<String>,
    /// `any-of: [a, b]`: equals one of these.
    pub any_of: Option<Vec<String>>,
    /// `case: insensitive`
    #[serde(default)]
    pub case: Case,
}

impl<'de> Deserialize<'de> for Matcher {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MatcherVisitor;
        impl<'de> Visitor<'de> for MatcherVisitor {
            type Value = Matcher;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value to equal, or a mapping with one of `equals`, `contains`, `matches`, `any-of`")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Matcher, E> {
                Ok(Matcher(MatcherSpec {
                    equals: Some(value.to_string()),
                    ..MatcherSpec::default()
                }))
            }
            fn visit_bool<E: de::Error>(self, value: bool) -> Result<Matcher, E> {
                self.visit_str(&value.to_string())
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Matcher, E> {
                self.visit_str(&value.to_string())
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Matcher, E> {
                self.visit_str(&value.to_string())
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Matcher, E> {
                self.visit_str(&value.to_string())
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Matcher, A::Error> {
                let spec = MatcherSpec::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let given = [
                    spec.equals.is_some(),
                    spec.contains.is_some(),
                    spec.matches.is_some(),
                    spec.any_of.is_some(),
                ]
                .iter()
                .filter(|given| **given)
                .count();
                if given != 1 {
                    return Err(de::Error::custom(
                        "a matcher takes exactly one of `equals`, `contains`, `matches`, `any-of`",
                    ));
                }
                Ok(Matcher(spec))
            }
        }
        deserializer.deserialize_any(MatcherVisitor)
    }
}

impl JsonSchema for Matcher {
    fn schema_name() -> Cow<'static, str> {
        "Matcher".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let long = generator.subschema_for::<MatcherSpec>();
        json_schema!({
            "description": "A value to equal, or a mapping with exactly one of `equals`, `contains`, `matches`, `any-of` (and optionally `case`).",
            "anyOf": [ { "type": ["string", "number", "boolean"] }, long ]
        })
    }
}

/// `change: opened` or `change: [opened, closed]`.
#[derive(Debug, Clone)]
pub struct Changes(pub Vec<ChangeKind>);

impl<'de> Deserialize<'de> for Changes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ChangesVisitor;
        impl<'de> Visitor<'de> for ChangesVisitor {
            type Value = Changes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a change kind or a list of them")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Changes, E> {
                let kind = ChangeKind::deserialize(value.into_deserializer())?;
                Ok(Changes(vec![kind]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Changes, A::Error> {
                let kinds =
                    Vec::<ChangeKind>::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                if kinds.is_empty() {
                    return Err(de::Error::custom("`change` needs at least one change kind"));
                }
                Ok(Changes(kinds))
            }
        }
        deserializer.deserialize_any(ChangesVisitor)
    }
}

impl JsonSchema for Changes {
    fn schema_name() -> Cow<'static, str> {
        "Changes".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let kinds = ["opened", "resolved", "closed", "state-changed"];
        json_schema!({
            "description": "A change kind or a list of them; the rule matches when the save carries any.",
            "anyOf": [
                { "enum": kinds },
                { "type": "array", "items": { "enum": kinds }, "minItems": 1 }
            ]
        })
    }
}

/// The JSON Schema of rule files; `plugin_configs` gives, for each plugin
/// it knows by name (the bundled ones), the JSON Schema of its `config:`.
pub fn json_schema<'a>(
    plugin_configs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> serde_json::Value {
    let schema = schemars::schema_for!(RuleFile);
    let mut schema = serde_json::to_value(schema).unwrap_or_default();
    tighten(&mut schema, plugin_configs);
    schema
}

/// Points the `#/$defs/NAME` references of a plugin's config schema at
/// `#/$defs/PLUGIN-NAME`, where the rule schema keeps them.
fn rename_refs(schema: &mut serde_json::Value, plugin: &str) {
    match schema {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::String(reference)) = map.get_mut("$ref")
                && let Some(name) = reference.strip_prefix("#/$defs/")
            {
                *reference = format!("#/$defs/{plugin}-{name}");
            }
            map.values_mut()
                .for_each(|value| rename_refs(value, plugin));
        }
        serde_json::Value::Array(items) => {
            items
                .iter_mut()
                .for_each(|value| rename_refs(value, plugin));
        }
        _ => {}
    }
}

/// The fields a `when` takes for each trigger (besides `all`, `any`,
/// `not`), as `relais check` applies them: the trigger's unit says.
fn when_fields(trigger: Trigger) -> Vec<&'static str> {
    let change = trigger.takes_changes().then_some("change");
    change
        .into_iter()
        .chain(trigger.fields().iter().map(|field| field.name()))
        .collect()
}

/// Makes the derived schema as strict as `relais check` where a schema can
/// say it: the fields each trigger's `when` takes, `cron` for schedules
/// and only for them, `mode` other than `queued` and `max` only for them, no `max` with `mode: single`, `max` at least 1, and
/// exactly one test in a matcher, and each bundled plugin's `config:` as
/// its own schema says. (Plugins from the plugins folder, regexes, cron
/// expressions, time zones and duplicate ids stay `relais check`'s.)
fn tighten<'a>(
    schema: &mut serde_json::Value,
    plugin_configs: impl IntoIterator<Item = (&'a str, &'a str)>,
) {
    use serde_json::json;
    let defs = &mut schema["$defs"];
    let scheduled: Vec<&str> = Trigger::ALL
        .iter()
        .filter(|trigger| trigger.scheduled())
        .map(|trigger| trigger.as_str())
        .collect();
    let scheduled = match scheduled.as_slice() {
        [one] => json!({ "const": one }),
        many => json!({ "enum": many }),
    };
    let mut conditions = vec![
        json!({
            "if": { "properties": { "on": scheduled }, "required": ["on"] },
            "then": { "required": ["cron"] },
            "else": {
                "not": { "anyOf": [
                    { "required": ["cron"] }, { "required": ["timezone"] }, { "required": ["missed"] },
                    { "required": ["max"] }
                ] },
                "properties": { "mode": { "const": "queued" } }
            }
        }),
        json!({
            "if": { "properties": { "mode": { "const": "single" } }, "required": ["mode"] },
            "then": { "not": { "required": ["max"] } }
        }),
    ];
    for trigger in Trigger::ALL {
        let mut names = when_fields(*trigger);
        names.extend(["all", "any", "not"]);
        conditions.push(json!({
            "if": { "properties": { "on": { "const": trigger.as_str() } }, "required": ["on"] },
            "then": { "properties": { "when": { "propertyNames": { "enum": names } } } }
        }));
    }
    defs["RuleSpec"]["allOf"] = serde_json::Value::Array(conditions);
    // Each bundled plugin's config, when the rule runs it; the config
    // schema's own definitions join the rule schema's, named after it.
    let mut configs = Vec::new();
    for (plugin, config_schema) in plugin_configs {
        let Ok(serde_json::Value::Object(mut config)) = serde_json::from_str(config_schema) else {
            continue;
        };
        config.remove("$schema");
        let own = config.remove("$defs");
        let mut config = serde_json::Value::Object(config);
        if let Some(serde_json::Value::Object(own)) = own {
            for (name, mut definition) in own {
                rename_refs(&mut definition, plugin);
                defs[format!("{}-{name}", plugin)] = definition;
            }
        }
        rename_refs(&mut config, plugin);
        configs.push(json!({
            "if": { "properties": { "plugin": { "const": plugin } }, "required": ["plugin"] },
            "then": { "properties": { "config": config } }
        }));
    }
    defs["RunSpec"]["allOf"] = serde_json::Value::Array(configs);
    defs["RuleSpec"]["properties"]["max"]["minimum"] = json!(1);
    defs["MatcherSpec"]["oneOf"] = json!([
        { "required": ["equals"] },
        { "required": ["contains"] },
        { "required": ["matches"] },
        { "required": ["any-of"] }
    ]);
}
