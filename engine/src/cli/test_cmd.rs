//! `relais test FILE...`: rule unit tests in YAML, next to the rules.
//!
//! A test file gives a directory (a file of the import format, or the same
//! inline), optionally an engine config, and a sequence of inputs (mails,
//! request saves, contract events, schedule fires), each with what must
//! come of it. The inputs run in order, against a throwaway store, through
//! the real rule set and plugins: what one input wrote, the next sees.
//!
//! ```yaml
//! directory: ../../demo/directory.yaml
//! tests:
//!   - name: Jeanne's message lands on her request
//!     mail: |
//!       From: jeanne@dupont.example
//!       Subject: #23010203 *message*
//!
//!       Bonjour
//!     account: catchmail
//!     expect:
//!       rules: [catchmail]
//!       effects:
//!         - { kind: post-message, request: 23010203, side: customer }
//! ```
//!
//! `expect` compares only the fields it gives: `outcome`, `rules`,
//! `effects` (the list, each effect by the fields given), `error` (a part
//! of it), `failure` (a failure notice with this code).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use relais::Store;
use relais::yaml::{Document, Segment};
use serde::Deserialize;
use serde_json::Value;

use super::{Paths, dispatcher, load_or_explain, output, runtime};
use relais::store::prelude::*;

/// One test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct TestFile {
    /// `directory: FILE` (relative to the test file) or the import format
    /// inline.
    #[serde(default)]
    directory: Option<Value>,
    /// `config: { ... }`: a `relais.yaml` inline (identities, trusted
    /// servers, limits); the command's own config otherwise.
    #[serde(default)]
    config: Option<Value>,
    /// The inputs, in order.
    tests: Vec<TestCase>,
}

/// One input and what must come of it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct TestCase {
    /// What it checks, for the report.
    name: String,
    /// A mail, inline.
    #[serde(default)]
    mail: Option<String>,
    /// A mail, from an `.eml` file (relative to the test file).
    #[serde(default)]
    eml: Option<PathBuf>,
    /// The account the mail arrives on (`test` by default).
    #[serde(default)]
    account: Option<String>,
    /// A request save, as `relais request save` takes it.
    #[serde(default)]
    request_save: Option<Value>,
    /// `{ contract: K-2026-001, kind: expiring }`.
    #[serde(default)]
    contract_event: Option<ContractEventInput>,
    /// `{ rule: ID, at: RFC3339 }`: a scheduled rule fires.
    #[serde(default)]
    schedule: Option<ScheduleInput>,
    /// What must come of it.
    expect: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContractEventInput {
    contract: String,
    kind: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleInput {
    rule: String,
    #[serde(default)]
    at: Option<String>,
}

/// The verdict on one test.
#[derive(Debug, serde::Serialize)]
struct Verdict {
    file: String,
    line: usize,
    name: String,
    ok: bool,
    differences: Vec<String>,
    /// What the input did, as `relais ingest --json` shows it.
    actual: Value,
}

/// Runs every test of `files`; exit 1 when one fails or cannot run.
pub fn run(paths: &Paths, files: &[PathBuf], json: bool) -> Result<ExitCode> {
    let runtime = runtime()?;
    let Some(loaded) = load_or_explain(&runtime, paths, "no test run") else {
        return Ok(ExitCode::FAILURE);
    };
    let mut files_to_run = Vec::new();
    for file in files {
        if file.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(file)
                .with_context(|| format!("cannot read {}", file.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
                .collect();
            found.sort();
            files_to_run.extend(found);
        } else {
            files_to_run.push(file.clone());
        }
    }
    let mut verdicts = Vec::new();
    for file in &files_to_run {
        verdicts.extend(run_file(paths, &loaded, file)?);
    }
    let failed = verdicts.iter().filter(|v| !v.ok).count();
    for verdict in &verdicts {
        if json {
            println!("{}", serde_json::to_string(verdict)?);
        } else if verdict.ok {
            println!("ok    {}:{}: {}", verdict.file, verdict.line, verdict.name);
        } else {
            println!("FAIL  {}:{}: {}", verdict.file, verdict.line, verdict.name);
            for difference in &verdict.differences {
                println!("      {difference}");
            }
        }
    }
    if !json {
        println!(
            "{} test{}: {} passed, {failed} failed",
            verdicts.len(),
            if verdicts.len() == 1 { "" } else { "s" },
            verdicts.len() - failed
        );
    }
    Ok(if failed == 0 && !verdicts.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn run_file(
    paths: &Paths,
    loaded: &relais::reload::Generation,
    file: &Path,
) -> Result<Vec<Verdict>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let doc = Document::parse(file, &text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let spec: TestFile = doc
        .deserialize_at(&[])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let base = file.parent().unwrap_or(Path::new(""));
    let mut store = Store::open_in_memory()?;
    if let Some(directory) = &spec.directory {
        let (source, text) = match directory {
            Value::String(relative) => {
                let path = base.join(relative);
                let text = std::fs::read_to_string(&path).with_context(|| {
                    format!("{}: cannot read {}", file.display(), path.display())
                })?;
                (path, text)
            }
            inline => (file.to_path_buf(), serde_yaml::to_string(inline)?),
        };
        let data = relais::directory::parse(&source, &text, &store).map_err(|errors| {
            let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            anyhow::anyhow!(
                "{}: the directory is invalid:\n{}",
                file.display(),
                lines.join("\n")
            )
        })?;
        store.import_directory(&data)?;
    }
    let config = match &spec.config {
        Some(inline) => relais::config::Config::parse(file, &serde_yaml::to_string(inline)?)
            .map_err(|errors| anyhow::anyhow!("{}", errors[0]))?,
        None => paths.config.clone(),
    };
    let options = relais::Options::of(&config);
    let metrics = relais::metrics::Metrics::new();
    let mut dispatcher = dispatcher(&mut store, loaded, &options);
    let mut verdicts = Vec::new();
    for (index, case) in spec.tests.iter().enumerate() {
        let line = doc
            .diagnostic(&[Segment::Key("tests".into()), Segment::Index(index)], "")
            .line;
        let actual = match run_case(&mut dispatcher, case, base, &config, &metrics) {
            Ok(actual) => actual,
            Err(error) => serde_json::json!({ "outcome": "not-run", "error": error.to_string() }),
        };
        let differences = compare(&case.expect, &actual);
        verdicts.push(Verdict {
            file: file.display().to_string(),
            line,
            name: case.name.clone(),
            ok: differences.is_empty(),
            differences,
            actual,
        });
    }
    Ok(verdicts)
}

/// Runs one input; its outcome, rules, effects and error as JSON.
fn run_case(
    dispatcher: &mut relais::Dispatcher<'_>,
    case: &TestCase,
    base: &Path,
    config: &relais::config::Config,
    metrics: &relais::metrics::Metrics,
) -> Result<Value> {
    let inputs = [
        case.mail.is_some(),
        case.eml.is_some(),
        case.request_save.is_some(),
        case.contract_event.is_some(),
        case.schedule.is_some(),
    ];
    if inputs.iter().filter(|given| **given).count() != 1 {
        anyhow::bail!(
            "give exactly one input: mail, eml, request-save, contract-event or schedule"
        );
    }
    fn call<T: serde::Serialize>(
        answer: Result<T, relais::daemon::dispatcher::CallError>,
    ) -> Result<Value> {
        Ok(serde_json::to_value(
            answer.map_err(|e| anyhow::anyhow!("{e}"))?,
        )?)
    }
    if let Some(text) = &case.mail {
        // Written in YAML with bare line breaks; mail wants CRLF.
        let raw = text.replace("\r\n", "\n").replace('\n', "\r\n");
        return mail(dispatcher, raw.as_bytes(), case);
    }
    if let Some(eml) = &case.eml {
        let path = base.join(eml);
        let raw =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        return mail(dispatcher, &raw, case);
    }
    if let Some(save) = &case.request_save {
        let spec: relais::directory::RequestSpec =
            serde_json::from_value(save.clone()).context("request-save")?;
        return call(relais::app::actions::save_request(
            dispatcher,
            &spec,
            &config.requests,
            metrics,
            false,
        ));
    }
    if let Some(event) = &case.contract_event {
        let body = relais::api::ContractEventBody {
            contract: event.contract.clone(),
            kind: event.kind.clone(),
        };
        return call(relais::app::actions::contract_event(
            dispatcher, &body, metrics, false,
        ));
    }
    let schedule = case.schedule.as_ref().context("an input")?;
    call(relais::app::actions::fire_schedule(
        dispatcher,
        &schedule.rule,
        schedule.at.as_deref(),
        metrics,
        false,
    ))
}

fn mail(dispatcher: &mut relais::Dispatcher<'_>, raw: &[u8], case: &TestCase) -> Result<Value> {
    let account = case.account.as_deref().unwrap_or("test");
    let report = dispatcher.handle_mail(raw, account, Some(&case.name), false)?;
    Ok(output::ingest_json(&report))
}

/// What of `expected` `actual` does not hold, one line each.
fn compare(expected: &Value, actual: &Value) -> Vec<String> {
    let mut differences = Vec::new();
    let Some(expected) = expected.as_object() else {
        return vec!["`expect` must be a mapping".to_string()];
    };
    for (key, want) in expected {
        match key.as_str() {
            "failure" => {
                let found = actual["effects"].as_array().is_some_and(|effects| {
                    effects
                        .iter()
                        .any(|e| e["kind"] == "reply-failure" && e["reason"] == *want)
                });
                if !found {
                    differences.push(format!(
                        "expected a failure notice `{}`, got effects {}",
                        want.as_str().unwrap_or_default(),
                        actual["effects"]
                    ));
                }
            }
            "error" => {
                let got = actual["error"].as_str().unwrap_or_default();
                if !got.contains(want.as_str().unwrap_or_default()) {
                    differences.push(format!("error: expected to contain {want}, got {:?}", got));
                }
            }
            _ => subset(
                want,
                actual
                    .as_object()
                    .map_or(&Value::Null, |got| field(got, key)),
                key,
                &mut differences,
            ),
        }
    }
    differences
}

/// The field `key` of `got`: Relais writes kebab-case, and a test may
/// write `_` in its place.
fn field<'a>(got: &'a serde_json::Map<String, Value>, key: &str) -> &'a Value {
    got.get(key)
        .or_else(|| got.get(&key.replace('_', "-")))
        .unwrap_or(&Value::Null)
}

/// `want` holds in `got`: the same scalars, lists of the same length each
/// holding, mappings holding for the keys `want` gives (written with `-`
/// or `_`).
fn subset(want: &Value, got: &Value, path: &str, differences: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(want), Value::Object(got)) => {
            for (key, value) in want {
                subset(
                    value,
                    field(got, key),
                    &format!("{path}.{key}"),
                    differences,
                );
            }
        }
        (Value::Array(want), Value::Array(got)) => {
            if want.len() != got.len() {
                differences.push(format!(
                    "{path}: expected {} item(s), got {}: {}",
                    want.len(),
                    got.len(),
                    Value::Array(got.clone())
                ));
                return;
            }
            for (index, (w, g)) in want.iter().zip(got).enumerate() {
                subset(w, g, &format!("{path}[{index}]"), differences);
            }
        }
        (want, got) if want == got => {}
        (Value::Number(w), Value::Number(g)) if w.as_f64() == g.as_f64() => {}
        (want, got) => differences.push(format!("{path}: expected {want}, got {got}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_fields_given_are_compared() {
        let actual = json!({
            "outcome": "applied",
            "rules": ["catchmail"],
            "effects": [{ "kind": "post-message", "request": 7, "side": "customer", "body": "x" }],
            "error": null,
        });
        assert!(compare(&json!({ "effects": [{ "kind": "post-message" }] }), &actual).is_empty());
        let differences = compare(
            &json!({ "rules": ["alerts"], "effects": [{ "request": 8 }], "outcome": "no-match" }),
            &actual,
        );
        assert_eq!(
            differences,
            [
                "effects[0].request: expected 8, got 7",
                "outcome: expected \"no-match\", got \"applied\"",
                "rules[0]: expected \"alerts\", got \"catchmail\"",
            ]
        );
        let two = compare(&json!({ "effects": [{}, {}] }), &actual);
        assert!(
            two[0].starts_with("effects: expected 2 item(s), got 1"),
            "{two:?}"
        );
    }
}
