//! `relais check`: exit codes and golden error output.
//!
//! Each folder of `tests/golden/check/` is a rules directory; its expected
//! `relais check` error output is the `.err` file of the same name. Run with
//! `UPDATE_GOLDEN=1` to rewrite the `.err` files after a deliberate change.

use std::process::Command;

use crate::support::{Setup, root};

#[test]
fn shipped_rules_are_valid() {
    let run = Setup::new().relais(&["check"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with("ok: "), "{run:?}");
}

#[test]
fn golden_errors() {
    let golden = root().join("tests/golden/check");
    let mut cases: Vec<_> = std::fs::read_dir(&golden)
        .expect("golden dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(!cases.is_empty());
    let mut mismatches = Vec::new();
    for case in cases {
        let name = case
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_string();
        // Run from the golden folder so that paths print relative and stable.
        let output = Command::new(env!("CARGO_BIN_EXE_relais"))
            .current_dir(&golden)
            .args(["check", "--rules", &name, "--plugins", "no-plugins-here"])
            .output()
            .expect("relais runs");
        assert_eq!(output.status.code(), Some(1), "{name}: check must fail");
        let actual = String::from_utf8_lossy(&output.stderr).into_owned();
        let expected_file = golden.join(format!("{name}.err"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&expected_file, &actual).expect("write golden");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_file).unwrap_or_default();
        if actual != expected {
            mismatches.push(format!(
                "--- {name}.err expected:\n{expected}--- actual:\n{actual}"
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn usage_error_exits_2() {
    let run = Setup::new().relais(&["check", "--no-such-flag"]);
    assert_eq!(run.code, 2, "{run:?}");
}

#[test]
fn missing_rules_directory_is_an_error() {
    let mut setup = Setup::new();
    setup.rules = setup.dir.path().join("nowhere");
    let run = setup.relais(&["check"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("cannot read the rules directory"),
        "{run:?}"
    );
}

#[test]
fn published_schema_is_up_to_date() {
    let run = Setup::new().relais(&["schema"]);
    assert_eq!(run.code, 0);
    let committed =
        std::fs::read_to_string(root().join("rules/rules.schema.json")).expect("schema file");
    assert_eq!(
        run.stdout, committed,
        "rules/rules.schema.json is stale: run `relais schema > rules/rules.schema.json`"
    );
}

#[test]
fn shipped_rule_files_point_editors_at_the_schema() {
    for entry in std::fs::read_dir(root().join("rules")).expect("rules dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).expect("read");
            assert!(
                text.starts_with("# yaml-language-server: $schema=rules.schema.json\n"),
                "{} lacks the schema line",
                path.display()
            );
        }
    }
}

/// Copies the shipped templates into a scratch folder, with `changes`
/// written over them.
fn templates_with(setup: &Setup, changes: &[(&str, &str)]) -> std::path::PathBuf {
    let dir = setup.dir.path().join("templates");
    std::fs::create_dir_all(&dir).expect("templates dir");
    for entry in std::fs::read_dir(root().join("templates")).expect("shipped templates") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, dir.join(path.file_name().expect("name"))).expect("copy");
    }
    for (name, text) in changes {
        std::fs::write(dir.join(name), text).expect("write template");
    }
    dir
}

#[test]
fn a_template_naming_an_unknown_field_is_caught_by_check() {
    let setup = Setup::new();
    let dir = templates_with(
        &setup,
        &[(
            "alert-closed.en.jinja",
            "Subject: closed\n\nHello {{ recipient.name }},\n{{ request.numero }} is closed.\n",
        )],
    );
    let run = setup.relais(&["check", "--templates", dir.to_str().expect("utf-8")]);
    assert_eq!(run.code, 1, "{run:?}");
    let expected = format!(
        "{}:4:1: undefined value `request.numero`: alert templates know request, customer, contract, change and recipient; reminder templates know request, customer, contact and reminder; notice templates know limit\n1 error\n",
        dir.join("alert-closed.en.jinja").display()
    );
    assert_eq!(run.stderr, expected);
}

#[test]
fn a_template_syntax_error_is_caught_with_its_line() {
    let setup = Setup::new();
    let dir = templates_with(
        &setup,
        &[(
            "alert-state.fr.jinja",
            "Subject: x\n\n{% if change.state %}\nno end\n",
        )],
    );
    let run = setup.relais(&["check", "--templates", dir.to_str().expect("utf-8")]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .starts_with(&format!("{}:", dir.join("alert-state.fr.jinja").display())),
        "{run:?}"
    );
    assert!(run.stderr.contains("syntax error"), "{run:?}");
}

#[test]
fn a_missing_template_is_caught_by_check() {
    let setup = Setup::new();
    let dir = setup.dir.path().join("templates");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::copy(
        root().join("templates/alert-opened.fr.jinja"),
        dir.join("alert-opened.fr.jinja"),
    )
    .expect("copy");
    // The shipped alert rule names four templates, three of them missing;
    // the reminder rule names one, missing.
    let run = setup.relais(&["check", "--templates", dir.to_str().expect("utf-8")]);
    assert_eq!(run.code, 1, "{run:?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 5, "{run:?}");
    assert!(lines[3].contains("reminders.yaml:16:9: rule `waiting-customer-reminders`: template `relance` does not exist"), "{run:?}");
    assert!(lines[0].ends_with(&format!(
        "alerts.yaml:10:9: rule `contract-alerts`: template `alert-closed` does not exist (no alert-closed.jinja nor alert-closed.LANG.jinja in {})",
        dir.display()
    )), "{run:?}");

    // A customer's alert format naming a template no file provides.
    let setup = Setup::new();
    let directory = setup.dir.path().join("customers.yaml");
    std::fs::write(
        &directory,
        "companies: [ { code: A, name: A } ]\n\
         customers:\n  - { code: C9, name: C9, company: A, language: en, alert-formats: { closed: { keyword: \"[X]\", template: alert-closed-custom } } }\n",
    )
    .expect("write");
    let import = setup.relais(&["import", directory.to_str().expect("utf-8")]);
    assert_eq!(import.code, 0, "{import:?}");
    let run = setup.relais(&["check"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(
            "customer `C9`: alert template `alert-closed-custom` in language `en` does not exist"
        ),
        "{run:?}"
    );
}

/// A JSON Schema's verdict on a YAML file: the errors, none when valid.
fn schema_errors(schema: &serde_json::Value, yaml: &str) -> Vec<String> {
    let instance: serde_json::Value = serde_yaml::from_str(yaml).expect("YAML");
    let validator = jsonschema::validator_for(schema).expect("a valid schema");
    validator
        .iter_errors(&instance)
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn the_config_and_import_schemas_are_published_and_judge_like_relais() {
    let setup = Setup::new();
    for (kind, files) in [
        (
            "config",
            &["docs/ops/relais.schema.json", "demo/relais.schema.json"][..],
        ),
        ("import", &["demo/directory.schema.json"][..]),
    ] {
        let run = setup.relais(&["schema", kind]);
        assert_eq!(run.code, 0, "{run:?}");
        for file in files {
            let committed = std::fs::read_to_string(root().join(file)).expect("schema file");
            assert_eq!(
                run.stdout, committed,
                "{file} is stale: run `relais schema {kind} > {file}`"
            );
        }
    }
    let config: serde_json::Value =
        serde_json::from_str(&setup.relais(&["schema", "config"]).stdout).expect("JSON");
    let import: serde_json::Value =
        serde_json::from_str(&setup.relais(&["schema", "import"]).stdout).expect("JSON");
    // The shipped files pass, and say where their schema is.
    for (schema, file) in [
        (&config, "docs/ops/relais.example.yaml"),
        (&config, "demo/relais.yaml"),
        (&import, "demo/directory.yaml"),
        (&import, "tests/fixtures/design-example.yaml"),
    ] {
        let text = std::fs::read_to_string(root().join(file)).expect("file");
        assert_eq!(schema_errors(schema, &text), Vec::<String>::new(), "{file}");
    }
    for file in [
        "docs/ops/relais.example.yaml",
        "demo/relais.yaml",
        "demo/directory.yaml",
    ] {
        let text = std::fs::read_to_string(root().join(file)).expect("file");
        assert!(
            text.starts_with("# yaml-language-server: $schema="),
            "{file} points editors at its schema"
        );
    }
    // What relais refuses, the schema refuses too.
    for (schema, broken) in [
        (&config, "databse: x.db\n"),
        (
            &config,
            "accounts: [ { name: a, host: h, username: u, password: { env: P }, securty: tls } ]\n",
        ),
        (&config, "outbox: { smtp: { host: h, security: ssl } }\n"),
        (&config, "limits: { batch: -1 }\n"),
        (&import, "customer: []\n"),
        (
            &import,
            "contacts: [ { id: x, name: X, customer: C, reception: pigeon } ]\n",
        ),
        (
            &import,
            "contacts: [ { id: x, name: X, customer: C, alerts: [reopened] } ]\n",
        ),
        (
            &import,
            "requests: [ { number: 1, company: A, customer: C, state: open } ]\n",
        ),
    ] {
        assert!(
            !schema_errors(schema, broken).is_empty(),
            "accepted: {broken}"
        );
    }
}

#[test]
fn the_demo_copies_the_schemas_its_files_name() {
    let setup = Setup::new();
    assert_eq!(setup.relais(&["demo", "here"]).code, 0);
    for file in [
        "relais.schema.json",
        "directory.schema.json",
        "rules/rules.schema.json",
    ] {
        assert!(setup.dir.path().join("here").join(file).exists(), "{file}");
    }
}

#[test]
fn the_rule_schema_refuses_the_broken_files_check_refuses() {
    let setup = Setup::new();
    let schema: serde_json::Value =
        serde_json::from_str(&setup.relais(&["schema"]).stdout).expect("JSON");
    let corpus = root().join("tests/fixtures/broken-rules");
    let mut files: Vec<_> = std::fs::read_dir(&corpus)
        .expect("corpus")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert!(files.len() >= 20, "{}", files.len());
    for file in &files {
        // `relais check` refuses it...
        let dir = setup.dir.path().join("one");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::copy(file, dir.join("rules.yaml")).expect("copy");
        let check = std::process::Command::new(env!("CARGO_BIN_EXE_relais"))
            .current_dir(setup.dir.path())
            .args(["--rules", dir.to_str().expect("utf-8")])
            .args([
                "--templates",
                root().join("templates").to_str().expect("utf-8"),
            ])
            .arg("check")
            .output()
            .expect("relais");
        assert_eq!(
            check.status.code(),
            Some(1),
            "check accepts {}",
            file.display()
        );
        // ...and so does an editor with the schema.
        let text = std::fs::read_to_string(file).expect("read");
        assert!(
            !schema_errors(&schema, &text).is_empty(),
            "the schema accepts {}",
            file.display()
        );
    }
    // The shipped rules still pass it.
    for entry in std::fs::read_dir(root().join("rules")).expect("rules") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).expect("read");
            assert_eq!(
                schema_errors(&schema, &text),
                Vec::<String>::new(),
                "{}",
                path.display()
            );
        }
    }
}
