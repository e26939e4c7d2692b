//! Rule files: loading, validation and matching.
//!
//! `rules/*.yaml` are loaded as one rule set. The whole set is validated
//! before use, by [`load_dir`]: the same function runs at start-up, on
//! reload and in `relais check`, and returns every problem found, each with
//! its `file:line:col`.

mod condition;
mod schema;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use relais_sdk::Event;
use sha2::{Digest, Sha256};

pub use condition::Condition;
pub use schema::{Missed, Mode, RuleFile, RuleId, RuleSpec, Trigger, json_schema};

use crate::yaml::{Diagnostic, Document, Segment, did_you_mean};

/// What a rule needs to know of the plugins when it is checked.
pub trait PluginCatalog {
    /// Names of the plugins that can be run.
    fn names(&self) -> Vec<String>;
    /// Checks a rule's config against the plugin; `Err` says what is wrong.
    fn check_config(&self, plugin: &str, config: &serde_json::Value) -> Result<(), String>;
    /// The triggers the plugin handles.
    fn triggers(&self, plugin: &str) -> Vec<String>;
}

/// A rule's `config:` block, read once when its rule set loads: the value
/// the host checks and walks, and the JSON text a plugin receives, written
/// once here rather than for every event.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleConfig {
    value: serde_json::Value,
    json: Arc<str>,
}

impl RuleConfig {
    /// The config `value`, with its JSON text.
    pub fn new(value: serde_json::Value) -> RuleConfig {
        let json = value.to_string().into();
        RuleConfig { value, json }
    }

    /// The config as a value.
    pub fn value(&self) -> &serde_json::Value {
        &self.value
    }

    /// The config as JSON text, the form the plugin contract passes.
    pub fn json(&self) -> &str {
        &self.json
    }
}

impl Default for RuleConfig {
    fn default() -> RuleConfig {
        RuleConfig::new(serde_json::Value::Null)
    }
}

impl From<serde_json::Value> for RuleConfig {
    fn from(value: serde_json::Value) -> RuleConfig {
        RuleConfig::new(value)
    }
}

/// A validated rule, ready to match events.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Its id.
    pub id: String,
    /// What fires it.
    pub trigger: Trigger,
    /// What must hold; `None` means always.
    pub condition: Option<Condition>,
    /// For `schedule` rules, when.
    pub cron: Option<cron::Schedule>,
    /// The time zone `cron` is read in.
    pub timezone: chrono_tz::Tz,
    /// What a `schedule` rule does about the times it missed.
    pub missed: Missed,
    /// The plugin it runs.
    pub plugin: String,
    /// The plugin's config.
    pub config: RuleConfig,
    /// The identity its mail goes out with (`run.identity`), with where
    /// it is written.
    pub identity: Option<(String, Diagnostic)>,
    /// Concurrency mode.
    pub mode: Mode,
    /// Queue or concurrency bound.
    pub max: u32,
    /// Where it is defined: `file:line:col`.
    pub source: String,
    /// Hash of its definition: unchanged rules keep their state on reload.
    pub hash: String,
}

impl Rule {
    /// For a `schedule` rule, its schedule: the cron expression and the
    /// time zone. When it changes, the rule is armed again from then.
    pub fn schedule_key(&self) -> Option<String> {
        self.cron
            .as_ref()
            .map(|cron| format!("{cron} {}", self.timezone))
    }

    /// How many runs of the rule may be in flight (running or waiting)
    /// at once: one for `single`, `max` otherwise.
    pub fn run_limit(&self) -> u32 {
        match self.mode {
            Mode::Single => 1,
            Mode::Queued | Mode::Parallel => self.max,
        }
    }
}

/// A whole, valid rule set.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    /// The rules, in file then definition order (disabled rules left out).
    pub rules: Vec<Rule>,
    /// The files they came from.
    pub files: Vec<PathBuf>,
    /// Hash of the whole set, to tell versions apart.
    pub hash: String,
    /// The rules by trigger and by the exact values they require.
    index: Index,
}

/// Rules by trigger, and within a trigger by the exact value one field
/// must have for them to match (`recipient: catchmail@...`): an event
/// looks only at the rules it can match, whatever the size of the set.
#[derive(Debug, Clone, Default)]
struct Index {
    /// Per trigger: every rule's position, in order.
    by_trigger: std::collections::HashMap<Trigger, TriggerIndex>,
}

#[derive(Debug, Clone, Default)]
struct TriggerIndex {
    /// The positions of the trigger's rules, in order.
    all: Vec<usize>,
    /// Rules that need no particular value of a field.
    unindexed: Vec<usize>,
    /// For each field some rules require a value of: the rules by that
    /// value, lowercased.
    by_value: Vec<(
        crate::triggers::Field,
        std::collections::HashMap<String, Vec<usize>>,
    )>,
}

impl Index {
    fn new(rules: &[Rule]) -> Index {
        let mut by_trigger: std::collections::HashMap<Trigger, TriggerIndex> =
            std::collections::HashMap::new();
        for (position, rule) in rules.iter().enumerate() {
            let entry = by_trigger.entry(rule.trigger).or_default();
            entry.all.push(position);
            match rule.condition.as_ref().and_then(Condition::required) {
                Some((field, values)) => {
                    let slot = match entry.by_value.iter().position(|(f, _)| *f == field) {
                        Some(slot) => slot,
                        None => {
                            entry.by_value.push((field, Default::default()));
                            entry.by_value.len() - 1
                        }
                    };
                    for value in values {
                        entry.by_value[slot]
                            .1
                            .entry(value)
                            .or_default()
                            .push(position);
                    }
                }
                None => entry.unindexed.push(position),
            }
        }
        Index { by_trigger }
    }
}

impl RuleSet {
    /// A set of these rules.
    pub fn new(rules: Vec<Rule>, files: Vec<PathBuf>, hash: String) -> RuleSet {
        RuleSet {
            index: Index::new(&rules),
            rules,
            files,
            hash,
        }
    }

    /// The enabled rules fired by `trigger`, in order.
    pub fn for_trigger(&self, trigger: Trigger) -> impl Iterator<Item = &Rule> {
        self.index
            .by_trigger
            .get(&trigger)
            .map(|index| index.all.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|&position| &self.rules[position])
    }

    /// The rules fired by `event`'s trigger that can match it, in order:
    /// those that require a field's value the event does not have are left
    /// out unseen. How many rules the trigger has in all is the second.
    pub fn candidates(&self, event: &Event) -> (Vec<&Rule>, usize) {
        let Some(index) = self.index.by_trigger.get(&Trigger::of(event)) else {
            return (Vec::new(), 0);
        };
        let mut positions = index.unindexed.clone();
        for (field, by_value) in &index.by_value {
            crate::triggers::any(event, *field, |value| {
                if let Some(found) = by_value.get(&value.to_lowercase()) {
                    positions.extend_from_slice(found);
                }
                false
            });
        }
        positions.sort_unstable();
        positions.dedup();
        let rules = positions.into_iter().map(|p| &self.rules[p]).collect();
        (rules, index.all.len())
    }
}

/// Default `max` for queued and parallel rules.
pub const DEFAULT_MAX: u32 = 10;

/// Rule configs name templates under keys called `template`, at any depth:
/// each must exist.
pub fn missing_templates(
    rules: &RuleSet,
    templates: &crate::Templates,
    dir: &Path,
) -> Vec<Diagnostic> {
    fn walk(value: &serde_json::Value, found: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match value {
                        serde_json::Value::String(name) if key == "template" => {
                            found.push(name.clone())
                        }
                        other => walk(other, found),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|item| walk(item, found)),
            _ => {}
        }
    }
    let mut diagnostics = Vec::new();
    for rule in &rules.rules {
        let mut names = Vec::new();
        walk(rule.config.value(), &mut names);
        for name in names.into_iter().filter(|name| !templates.exists(name)) {
            let mut parts = rule.source.rsplitn(3, ':');
            let column = parts.next().and_then(|c| c.parse().ok()).unwrap_or(1);
            let line = parts.next().and_then(|l| l.parse().ok()).unwrap_or(1);
            let file = PathBuf::from(parts.next().unwrap_or(&rule.source));
            diagnostics.push(Diagnostic {
                file,
                line,
                column,
                message: format!(
                    "rule `{}`: template `{name}` does not exist (no {name}.jinja nor {name}.LANG.jinja in {})",
                    rule.id,
                    dir.display()
                ),
            });
        }
    }
    diagnostics
}

/// Rules whose `run.identity` names no identity of `relais.yaml`.
pub fn unknown_identities(rules: &RuleSet, identities: &[String]) -> Vec<Diagnostic> {
    rules
        .rules
        .iter()
        .filter_map(|rule| rule.identity.as_ref())
        .filter(|(name, _)| !identities.contains(name))
        .map(|(name, at)| Diagnostic {
            message: crate::config::unknown_identity(name, identities),
            ..at.clone()
        })
        .collect()
}

/// Loads and validates every `*.yaml`/`*.yml` file of `dir` as one rule set.
pub fn load_dir(dir: &Path, plugins: &dyn PluginCatalog) -> Result<RuleSet, Vec<Diagnostic>> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                    && !p
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with('.'))
            })
            .collect(),
        Err(error) => {
            return Err(vec![Diagnostic::file(
                dir,
                format!("cannot read the rules directory: {error}"),
            )]);
        }
    };
    files.sort();
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    for file in &files {
        match std::fs::read_to_string(file) {
            Ok(text) => sources.push((file.clone(), text)),
            Err(error) => errors.push(Diagnostic::file(file, format!("cannot read: {error}"))),
        }
    }
    match load_sources(&sources, plugins) {
        Ok(set) if errors.is_empty() => Ok(set),
        Ok(_) => Err(errors),
        Err(more) => {
            errors.extend(more);
            Err(errors)
        }
    }
}

/// Validates rule files given as `(path, text)`, as one rule set.
pub fn load_sources(
    sources: &[(PathBuf, String)],
    plugins: &dyn PluginCatalog,
) -> Result<RuleSet, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut rules = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    let known_plugins = plugins.names();
    let mut set_hash = Sha256::new();
    for (file, text) in sources {
        set_hash.update(file.to_string_lossy().as_bytes());
        set_hash.update([0]);
        set_hash.update(text.as_bytes());
        set_hash.update([0]);
        let doc = match Document::parse(file, text) {
            Ok(doc) => doc,
            Err(error) => {
                errors.push(error);
                continue;
            }
        };
        let value = doc.value();
        if value.is_null() {
            continue;
        }
        let Some(mapping) = value.as_mapping() else {
            errors.push(doc.diagnostic(&[], "a rule file is a mapping with a `rules` list"));
            continue;
        };
        for key in mapping.keys() {
            let name = key.as_str().unwrap_or("?");
            if name != "rules" {
                let mut message = format!("unknown key `{name}`, expected `rules`");
                if did_you_mean(name, ["rules"]).is_some() {
                    message.push_str("; did you mean `rules`?");
                }
                errors.push(doc.key_diagnostic(&[Segment::Key(name.to_string())], message));
            }
        }
        let count = match doc.get(&[Segment::Key("rules".into())]) {
            None => 0,
            Some(v) if v.is_null() => 0,
            Some(v) => match v.as_sequence() {
                Some(list) => list.len(),
                None => {
                    errors.push(
                        doc.diagnostic(&[Segment::Key("rules".into())], "`rules` must be a list"),
                    );
                    continue;
                }
            },
        };
        for index in 0..count {
            let path = vec![Segment::Key("rules".into()), Segment::Index(index)];
            let at = |key: &str| {
                let mut p = path.clone();
                p.push(Segment::Key(key.to_string()));
                p
            };
            let here = doc.diagnostic(&at("id"), "");
            let source = format!("{}:{}:{}", here.file.display(), here.line, here.column);
            // Duplicates are looked for on the raw id, so that a rule with
            // another error still takes its id.
            if let Some(id) = doc.get(&at("id")).and_then(|v| v.as_str()) {
                match seen.get(id) {
                    Some(first) => errors.push(doc.diagnostic(
                        &at("id"),
                        format!("duplicate rule id `{id}` (first defined at {first})"),
                    )),
                    None => {
                        seen.insert(id.to_string(), source.clone());
                    }
                }
            }
            let spec: RuleSpec = match doc.deserialize_at(&path) {
                Ok(spec) => spec,
                Err(error) => {
                    errors.push(error);
                    continue;
                }
            };
            let mut run_path = at("run");
            run_path.push(Segment::Key("plugin".into()));
            if known_plugins.iter().any(|p| p == &spec.run.plugin) {
                let handled = plugins.triggers(&spec.run.plugin);
                if !handled.iter().any(|t| t == spec.on.as_str()) {
                    errors.push(doc.diagnostic(
                        &run_path,
                        format!(
                            "plugin `{}` does not handle `{}`: it handles {}",
                            spec.run.plugin,
                            spec.on.as_str(),
                            handled
                                .iter()
                                .map(|t| format!("`{t}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
                if let Err(problem) = plugins.check_config(&spec.run.plugin, &spec.run.config) {
                    let mut config_path = at("run");
                    config_path.push(Segment::Key("config".into()));
                    let message = format!(
                        "invalid config for plugin `{}`: {}",
                        spec.run.plugin,
                        crate::yaml::with_suggestion(&problem)
                    );
                    // Point at the unknown key when that is the problem.
                    let unknown = crate::yaml::unknown_name(&problem).map(|name| {
                        let mut key_path = config_path.clone();
                        key_path.push(Segment::Key(name));
                        key_path
                    });
                    errors.push(match unknown {
                        Some(key_path) if doc.get(&key_path).is_some() => {
                            doc.key_diagnostic(&key_path, message)
                        }
                        _ => doc.diagnostic(&config_path, message),
                    });
                }
            } else {
                let mut message = format!("unknown plugin `{}`", spec.run.plugin);
                match did_you_mean(&spec.run.plugin, known_plugins.iter().map(String::as_str)) {
                    Some(best) => message.push_str(&format!("; did you mean `{best}`?")),
                    None if known_plugins.is_empty() => {
                        message.push_str(" (no plugin is available)")
                    }
                    None => {
                        message.push_str(&format!(" (available: {})", known_plugins.join(", ")))
                    }
                }
                errors.push(doc.diagnostic(&run_path, message));
            }
            let cron =
                match (spec.on.scheduled(), &spec.cron) {
                    (true, None) => {
                        errors.push(doc.key_diagnostic(
                            &at("on"),
                            "a `schedule` rule needs a `cron` expression",
                        ));
                        None
                    }
                    (true, Some(expression)) => match expression.parse::<cron::Schedule>() {
                        Ok(schedule) => Some(schedule),
                        Err(error) => {
                            errors.push(doc.diagnostic(
                                &at("cron"),
                                format!("invalid cron expression: {error}"),
                            ));
                            None
                        }
                    },
                    (_, Some(_)) => {
                        errors.push(doc.key_diagnostic(
                            &at("cron"),
                            "`cron` applies only to `on: schedule` rules",
                        ));
                        None
                    }
                    (_, None) => None,
                };
            let timezone = match &spec.timezone {
                None => chrono_tz::UTC,
                Some(name) => match name.parse::<chrono_tz::Tz>() {
                    Ok(zone) => zone,
                    Err(_) => {
                        errors.push(doc.diagnostic(
                            &at("timezone"),
                            format!("unknown time zone `{name}` (an IANA name, e.g. Europe/Paris)"),
                        ));
                        chrono_tz::UTC
                    }
                },
            };
            for (key, given) in [
                ("timezone", spec.timezone.is_some()),
                ("missed", spec.missed.is_some()),
            ] {
                if given && !spec.on.scheduled() {
                    errors.push(doc.key_diagnostic(
                        &at(key),
                        format!("`{key}` applies only to `on: schedule` rules"),
                    ));
                }
            }
            // Events of the other triggers run one at a time, in arrival
            // order: as `queued` says, with no bound. What `single`,
            // `parallel` or `max` would ask of them cannot be done.
            if !spec.on.scheduled() {
                if spec.mode != Mode::Queued {
                    errors.push(doc.diagnostic(
                        &at("mode"),
                        format!(
                            "`mode: {}` applies only to `on: schedule` rules: the events of other rules run one at a time, in arrival order (`queued`)",
                            spec.mode.as_str()
                        ),
                    ));
                }
                if spec.max.is_some() && spec.mode != Mode::Single {
                    errors.push(doc.key_diagnostic(
                        &at("max"),
                        "`max` applies only to `on: schedule` rules: the events of other rules all wait their turn",
                    ));
                }
            }
            let max = match (spec.mode, spec.max) {
                (Mode::Single, Some(_)) => {
                    errors.push(
                        doc.key_diagnostic(&at("max"), "`max` does not apply to `mode: single`"),
                    );
                    1
                }
                (_, Some(0)) => {
                    errors.push(doc.diagnostic(&at("max"), "`max` must be at least 1"));
                    1
                }
                (Mode::Single, None) => 1,
                (_, Some(max)) => max,
                (_, None) => DEFAULT_MAX,
            };
            let condition = condition::compile(&spec.when, spec.on, &doc, &at("when"), &mut errors);
            let condition = match condition {
                Condition::All(list) if list.is_empty() => None,
                other => Some(other),
            };
            let mut rule_hash = Sha256::new();
            rule_hash.update(format!("{:?}", doc.get(&path)).as_bytes());
            if spec.enabled {
                rules.push(Rule {
                    id: spec.id.to_string(),
                    trigger: spec.on,
                    condition,
                    cron,
                    timezone,
                    missed: spec.missed.unwrap_or_default(),
                    plugin: spec.run.plugin.clone(),
                    config: RuleConfig::new(spec.run.config.clone()),
                    identity: spec.run.identity.clone().map(|name| {
                        let mut identity_path = at("run");
                        identity_path.push(Segment::Key("identity".into()));
                        (name, doc.diagnostic(&identity_path, ""))
                    }),
                    mode: spec.mode,
                    max,
                    source,
                    hash: hex::encode(rule_hash.finalize()),
                });
            }
        }
    }
    if errors.is_empty() {
        return Ok(RuleSet::new(
            rules,
            sources.iter().map(|(p, _)| p.clone()).collect(),
            hex::encode(set_hash.finalize())[..16].to_string(),
        ));
    }
    // Files in order, each in reading order.
    errors.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    Err(errors)
}

#[cfg(test)]
mod tests {
    use relais_sdk::{ChangeKind, Event, Mail, Request, RequestSaved};

    use super::*;

    struct Catalog;
    impl PluginCatalog for Catalog {
        fn names(&self) -> Vec<String> {
            vec!["catchmail".into(), "alert-dispatch".into()]
        }
        fn check_config(&self, _: &str, _: &serde_json::Value) -> Result<(), String> {
            Ok(())
        }
        fn triggers(&self, plugin: &str) -> Vec<String> {
            match plugin {
                "catchmail" => vec!["mail-received".into()],
                _ => relais_sdk::TRIGGERS.iter().map(|t| t.to_string()).collect(),
            }
        }
    }

    #[test]
    fn a_rule_whose_plugin_does_not_handle_its_trigger_is_refused() {
        let errors =
            load("rules:\n  - id: wrong\n    on: request-saved\n    run: { plugin: catchmail }\n")
                .expect_err("catchmail handles mail only");
        assert_eq!(
            errors,
            [
                "r.yaml:4:20: plugin `catchmail` does not handle `request-saved`: it handles `mail-received`"
            ]
        );
        assert!(
            load("rules:\n  - id: right\n    on: mail-received\n    run: { plugin: catchmail }\n")
                .is_ok()
        );
    }

    fn load(text: &str) -> Result<RuleSet, Vec<String>> {
        load_sources(&[(PathBuf::from("r.yaml"), text.to_string())], &Catalog)
            .map_err(|errors| errors.iter().map(ToString::to_string).collect())
    }

    /// A mail from `from` to `to`, with `subject`.
    fn addressed(to: &str, subject: &str) -> Event {
        Event::MailReceived(Mail {
            account: "catchmail".into(),
            subject: subject.into(),
            to: vec![relais_sdk::Address {
                name: None,
                email: to.into(),
            }],
            ..Mail::default()
        })
    }

    #[test]
    fn the_index_leaves_out_only_rules_that_cannot_match() {
        // 300 rules each for one desk's address (some in any case, some in
        // a list, some inside `all`), and rules on the subject only.
        let mut text = String::from("rules:\n");
        for n in 0..300 {
            let when = match n % 4 {
                0 => format!("{{ recipient: desk{n}@acme.example }}"),
                1 => format!("{{ to: {{ equals: Desk{n}@Acme.Example, case: insensitive }} }}"),
                2 => format!(
                    "{{ recipient: {{ any-of: [desk{n}@acme.example, other{n}@acme.example] }} }}"
                ),
                _ => format!(
                    "{{ all: [ {{ recipient: desk{n}@acme.example }}, {{ subject: {{ contains: urgent }} }} ] }}"
                ),
            };
            text.push_str(&format!(
                "  - {{ id: r{n}, on: mail-received, when: {when}, run: {{ plugin: catchmail }} }}\n"
            ));
            if n % 50 == 0 {
                text.push_str(&format!(
                    "  - {{ id: s{n}, on: mail-received, when: {{ subject: {{ contains: urgent }} }}, run: {{ plugin: catchmail }} }}\n"
                ));
            }
        }
        let set = load(&text).expect("valid");
        for event in [
            addressed("desk0@acme.example", "urgent"),
            addressed("DESK1@acme.example", "hello"),
            addressed("other2@acme.example", "hello"),
            addressed("desk3@acme.example", "urgent: printer"),
            addressed("desk3@acme.example", "hello"),
            addressed("nobody@acme.example", "urgent"),
        ] {
            let (candidates, all) = set.candidates(&event);
            assert_eq!(all, set.rules.len());
            assert!(candidates.len() < 12, "{} candidates", candidates.len());
            // What matches among the candidates is what matches among all.
            let among = |rules: Vec<&Rule>| -> Vec<String> {
                rules
                    .into_iter()
                    .filter(|r| r.condition.as_ref().is_none_or(|c| c.holds(&event)))
                    .map(|r| r.id.clone())
                    .collect()
            };
            let every: Vec<&Rule> = set.for_trigger(Trigger::MailReceived).collect();
            assert_eq!(among(candidates), among(every));
            // And the fast evaluation agrees with the one that says why.
            for rule in &set.rules {
                let condition = rule.condition.as_ref().expect("a condition");
                assert_eq!(
                    condition.holds(&event),
                    condition.check(&event).is_ok(),
                    "{}",
                    rule.id
                );
            }
        }
    }

    fn mail(subject: &str) -> Event {
        Event::MailReceived(Mail {
            account: "catchmail".into(),
            subject: subject.into(),
            ..Mail::default()
        })
    }

    #[test]
    fn conditions_match_and_say_why_not() {
        let set = load(
            "rules:\n  - id: cm\n    on: mail-received\n    when:\n      account: catchmail\n      subject: { contains: \"*message*\", case: insensitive }\n    run: { plugin: catchmail }\n",
        )
        .expect("valid");
        let rule = &set.rules[0];
        let condition = rule.condition.as_ref().expect("has a condition");
        assert!(condition.check(&mail("#1 *MESSAGE*")).is_ok());
        let why = condition.check(&mail("hello")).expect_err("no keyword");
        assert_eq!(
            why,
            "subject: \"hello\" does not satisfy: contains \"*message*\" (any case)"
        );
        assert_eq!(rule.mode, Mode::Queued);
        assert_eq!(rule.max, DEFAULT_MAX);
    }

    #[test]
    fn change_kinds_and_composition() {
        let set = load(
            "rules:\n  - id: a\n    on: request-saved\n    when:\n      change: [opened, closed]\n      not: { state: draft }\n      any: [ { type: INCIDENT }, { customer: { any-of: [C1, C2] } } ]\n    run: { plugin: alert-dispatch }\n",
        )
        .expect("valid");
        let condition = set.rules[0].condition.as_ref().expect("condition");
        let request = Request {
            state: "open".into(),
            request_type: "INCIDENT".into(),
            ..Request::default()
        };
        let saved = |changes: Vec<ChangeKind>| {
            Event::RequestSaved(RequestSaved {
                before: None,
                after: request.clone(),
                changes,
            })
        };
        assert!(condition.check(&saved(vec![ChangeKind::Opened])).is_ok());
        assert!(
            condition
                .check(&saved(vec![ChangeKind::StateChanged]))
                .is_err()
        );
    }

    #[test]
    fn every_problem_is_listed_with_its_position() {
        let errors = load(
            "rules:\n  - id: a\n    on: mail-recieved\n    run: { plugin: catchmail }\n  - id: b\n    on: mail-received\n    when: { subjct: x }\n    run: { plugin: catchmale }\n  - id: b\n    on: request-saved\n    when: { state: { matches: \"(\" } }\n    run: { plugin: alert-dispatch }\n",
        )
        .expect_err("invalid");
        assert_eq!(errors.len(), 4, "{errors:#?}");
        assert!(
            errors[0].starts_with("r.yaml:3:9: unknown variant `mail-recieved`"),
            "{errors:#?}"
        );
        assert!(
            errors[0].ends_with("did you mean `mail-received`?"),
            "{errors:#?}"
        );
        assert!(
            errors[1].starts_with("r.yaml:7:13: unknown field `subjct`"),
            "{errors:#?}"
        );
        assert!(
            errors[2]
                .starts_with("r.yaml:9:9: duplicate rule id `b` (first defined at r.yaml:5:9)"),
            "{errors:#?}"
        );
        assert!(
            errors[3].starts_with("r.yaml:11:31: invalid regex"),
            "{errors:#?}"
        );
    }

    #[test]
    fn schedule_rules_need_a_valid_cron() {
        let errors = load("rules:\n  - id: s\n    on: schedule\n    cron: \"not cron\"\n    run: { plugin: alert-dispatch }\n")
            .expect_err("bad cron");
        assert!(
            errors[0].starts_with("r.yaml:4:11: invalid cron expression"),
            "{errors:#?}"
        );
        let set = load("rules:\n  - id: s\n    on: schedule\n    cron: \"0 0 8 * * *\"\n    run: { plugin: alert-dispatch }\n")
            .expect("valid");
        assert!(set.rules[0].cron.is_some());
    }
}
