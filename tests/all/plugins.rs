//! The WebAssembly plugin host, end to end: bundled CatchMail, customers'
//! plugins replacing it, the template, and plugins that misbehave. Every
//! plugin here is built from source.

use crate::support::{Setup, build_wasm, fixture, root, test_plugin, write_mail};
use relais::store::prelude::*;

const MISBEHAVE_RULES: &str = "rules:
  - id: misbehave
    on: mail-received
    when: { subject: { matches: '^\\[(trap|loop|alloc|huge|ghost|stdout)\\]' } }
    run: { plugin: misbehave, config: { do: placeholder } }
";

/// A set-up whose `misbehave` rule does `what`, beside the shipped CatchMail
/// rule.
fn misbehave_setup(what: &str) -> Setup {
    let shipped =
        std::fs::read_to_string(root().join("rules/catchmail.yaml")).expect("shipped rule");
    let rules = MISBEHAVE_RULES.replace("placeholder", what);
    let setup = Setup::with_directory()
        .with_rules(&[("misbehave.yaml", &rules), ("catchmail.yaml", &shipped)]);
    setup.install_plugin(&test_plugin("misbehave"), "misbehave.wasm");
    setup
}

/// One bad mail then one good CatchMail mail, ingested together.
fn misbehave_then_catchmail(what: &str) -> (Setup, Vec<serde_json::Value>) {
    let setup = misbehave_setup(what);
    let lines = ingest_bad_then_good(&setup, what);
    (setup, lines)
}

fn ingest_bad_then_good(setup: &Setup, what: &str) -> Vec<serde_json::Value> {
    let mails = setup.dir.path().join("mails");
    std::fs::create_dir_all(&mails).expect("mkdir");
    write_mail(
        &mails,
        "1-bad.eml",
        &[
            ("From", "jeanne@dupont.example"),
            ("To", "robot@acme.example"),
            ("Message-ID", "<bad@d>"),
            ("Subject", &format!("[{what}] please")),
        ],
        "hello\r\n",
    );
    std::fs::copy(
        fixture("mails/catchmail-jeanne.eml"),
        mails.join("2-good.eml"),
    )
    .expect("copy");
    let (_, lines) = setup.ingest_json(&[], &[&mails]);
    assert_eq!(lines.len(), 2, "{lines:?}");
    lines
}

/// The trace of rule `id` in a run's trace.
fn rule_trace(trace: &serde_json::Value, id: &str) -> serde_json::Value {
    let rules = trace["rules"].as_array().expect("rules");
    rules
        .iter()
        .find(|r| r["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no rule {id} in {trace}"))
}

fn assert_fault_then_normal(what: &str, expected: &str) {
    let (setup, lines) = misbehave_then_catchmail(what);
    let bad = &lines[0];
    assert_eq!(bad["outcome"], "failed", "{bad}");
    let error = bad["error"].as_str().expect("error");
    assert!(
        error.contains(expected),
        "`{what}`: expected {expected:?} in {error:?}"
    );
    let run = setup
        .store()
        .run(bad["run"].as_i64().expect("run"))
        .expect("query")
        .expect("traced");
    let rule = rule_trace(&run.trace, "misbehave");
    assert_eq!(rule["failure"], "fault", "{rule}");
    assert_eq!(
        lines[1]["outcome"], "applied",
        "the next event is processed normally: {}",
        lines[1]
    );
    assert_eq!(lines[1]["effects"][0]["kind"], "post-message");
    assert_eq!(
        setup
            .store()
            .mail("bad@d")
            .expect("query")
            .expect("kept")
            .status,
        "failed",
        "the failed mail is kept for a retry"
    );
}

#[test]
fn a_trap_fails_its_event_only() {
    assert_fault_then_normal("trap", "trapped");
}

#[test]
fn an_endless_loop_runs_out_of_fuel() {
    assert_fault_then_normal("loop", "CPU limit exceeded");
}

#[test]
fn a_memory_bomb_hits_the_memory_limit() {
    assert_fault_then_normal("alloc", "memory limit of 64 MiB exceeded");
}

#[test]
fn a_huge_output_is_refused() {
    assert_fault_then_normal("huge", "limit");
}

#[test]
fn an_effect_on_a_missing_request_fails_the_event() {
    let (_, lines) = misbehave_then_catchmail("ghost");
    assert_eq!(lines[0]["outcome"], "failed");
    assert_eq!(
        lines[0]["error"],
        "effect 1 (post-message): request 99999999 does not exist"
    );
    assert_eq!(lines[1]["outcome"], "applied");
}

#[test]
fn stdout_and_stderr_become_log_lines_with_the_plugin_name() {
    let (setup, lines) = misbehave_then_catchmail("stdout");
    assert_eq!(lines[0]["outcome"], "applied");
    let run = setup
        .store()
        .run(lines[0]["run"].as_i64().expect("run"))
        .expect("query")
        .expect("traced");
    let logs = rule_trace(&run.trace, "misbehave")["logs"]
        .as_array()
        .expect("logs")
        .clone();
    let texts: Vec<&str> = logs.iter().filter_map(|l| l["message"].as_str()).collect();
    assert!(
        texts.iter().any(|t| t.starts_with("[stdout] ")),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.starts_with("[stderr] ")),
        "{texts:?}"
    );
    assert!(logs.iter().all(|l| l["plugin"] == "misbehave"), "{logs:?}");
}

fn refused(file: &str, as_name: &str, expected: &str) {
    let setup = Setup::new();
    setup.install_plugin(&test_plugin(file), as_name);
    let check = setup.relais(&["check"]);
    assert_eq!(check.code, 1, "{check:?}");
    assert!(
        check.stderr.contains(as_name) && check.stderr.contains(expected),
        "expected {expected:?}:\n{}",
        check.stderr
    );
    let list = setup.relais(&["plugins"]);
    assert!(
        list.stdout.contains("catchmail"),
        "the bundled plugins still load: {list:?}"
    );
    assert!(list.stderr.contains(expected), "{list:?}");
}

#[test]
fn a_plugin_importing_an_undeclared_capability_is_refused() {
    refused(
        "greedy",
        "greedy.wasm",
        "imports the `contracts` capability without declaring it",
    );
}

#[test]
fn a_plugin_asking_for_an_unknown_capability_is_refused() {
    refused(
        "spy",
        "spy.wasm",
        "asks for unknown capability `filesystem`",
    );
}

#[test]
fn a_plugin_built_against_another_wit_version_is_refused() {
    refused("future", "future.wasm", "built against relais:plugin@9.0.0");
}

#[test]
fn a_plugin_that_handles_no_trigger_or_an_unknown_one_is_refused() {
    refused("idle", "idle.wasm", "plugin `idle` handles no trigger");
    refused(
        "stray",
        "stray.wasm",
        "plugin `stray` handles unknown trigger `ticket-closed` (Relais has: mail-received, request-saved, contract-event, schedule)",
    );
}

#[test]
fn a_file_that_is_not_a_component_is_refused() {
    let setup = Setup::new();
    std::fs::write(
        setup.plugins_dir().join("junk.wasm"),
        b"\0asm\x01\0\0\0garbage",
    )
    .expect("write");
    let check = setup.relais(&["check"]);
    assert_eq!(check.code, 1);
    assert!(
        check
            .stderr
            .contains("junk.wasm:1:1: not a valid WebAssembly component"),
        "{check:?}"
    );
}

#[test]
fn bundled_catchmail_is_listed_with_its_capabilities() {
    let list = Setup::new().relais(&["plugins"]);
    assert_eq!(list.code, 0, "{list:?}");
    let line = list
        .stdout
        .lines()
        .find(|l| l.starts_with("catchmail"))
        .expect("catchmail listed");
    assert!(
        line.contains("bundled") && line.contains("requests, directory, settings"),
        "{line}"
    );
    assert!(line.contains(" mail-received "), "its trigger: {line}");
    let reminders = list
        .stdout
        .lines()
        .find(|l| l.starts_with("reminders"))
        .expect("reminders listed");
    assert!(reminders.contains(" schedule "), "{reminders}");
}

#[test]
fn plugin_run_prints_effects_and_logs_without_applying() {
    let setup = Setup::with_directory();
    let run = setup.relais(&[
        "plugin",
        "run",
        test_plugin("misbehave").to_str().expect("utf-8"),
        "--event",
        fixture("mails/catchmail-jeanne.eml")
            .to_str()
            .expect("utf-8"),
        "--rule-config",
        fixture("misbehave-query.yaml").to_str().expect("utf-8"),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let output: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(output["plugin"]["name"], "misbehave");
    let logs = output["logs"].as_array().expect("logs");
    assert!(
        logs.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.contains("23010203"))),
        "{logs:?}"
    );
    assert!(
        crate::support::event_runs(&setup.store(), 10).is_empty(),
        "nothing recorded"
    );
}

#[test]
fn the_template_builds_loads_and_replaces_the_bundled_catchmail() {
    // The template takes a `prefix`, not CatchMail's keys: a rule of its own.
    let rule = "rules:\n  - id: catchmail\n    on: mail-received\n    run: { plugin: catchmail, config: { prefix: \"seen: \" } }\n";
    let setup = Setup::with_directory().with_rules(&[("catchmail.yaml", rule)]);
    let work = setup.dir.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    let created = setup.relais(&[
        "plugin",
        "new",
        "catchmail",
        "--dir",
        work.to_str().expect("utf-8"),
    ]);
    assert_eq!(created.code, 0, "{created:?}");
    // Its README speaks of the new plugin, not of the template.
    let readme = std::fs::read_to_string(work.join("catchmail/README.md")).expect("README");
    assert!(readme.contains("relais_plugin_catchmail.wasm"), "{readme}");
    assert!(readme.contains("plugin: catchmail"), "{readme}");
    assert!(!readme.contains("template.wasm"), "{readme}");
    let built = build_wasm(
        &work.join("catchmail/Cargo.toml"),
        &root().join("target/wasm-template"),
    );
    let wasm = built.join("relais_plugin_catchmail.wasm");
    setup.install_plugin(&wasm, "my-catchmail.wasm");
    let list = setup.relais(&["plugins"]);
    let line = list
        .stdout
        .lines()
        .find(|l| l.starts_with("catchmail"))
        .expect("listed");
    assert!(
        line.contains("my-catchmail.wasm"),
        "loaded from the file, not bundled: {line}"
    );
    let (run, lines) = setup.ingest_json(&[], &[&fixture("mails/catchmail-jeanne.eml")]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(lines[0]["outcome"], "applied");
    assert!(
        lines[0]["effects"].as_array().expect("effects").is_empty(),
        "the template posts nothing: {}",
        lines[0]
    );
    assert!(
        setup
            .store()
            .messages(23010203)
            .expect("messages")
            .is_empty()
    );
    let run = setup
        .store()
        .run(lines[0]["run"].as_i64().expect("run"))
        .expect("query")
        .expect("traced");
    let log = &run.trace["rules"][0]["logs"][0];
    assert_eq!(
        log["message"], "seen: Validation qualité #23010203 *message*",
        "{log}"
    );
}

#[test]
fn limits_yaml_sets_one_plugins_limits() {
    let setup = misbehave_setup("loop");
    // Fuel enough for minutes: the wall clock must stop the loop first.
    std::fs::write(
        setup.plugins_dir().join("limits.yaml"),
        "plugins:\n  misbehave: { timeout-ms: 100, fuel: 1000000000000 }\n",
    )
    .expect("write limits");
    let lines = ingest_bad_then_good(&setup, "loop");
    let error = lines[0]["error"].as_str().expect("failed");
    assert!(
        error.contains("wall-clock limit of 100ms exceeded"),
        "{error}"
    );
}

#[test]
fn a_misspelt_limits_file_is_located() {
    let setup = Setup::new();
    std::fs::write(
        setup.plugins_dir().join("limits.yaml"),
        "default:\n  memory-mb: 32\n",
    )
    .expect("write");
    let check = setup.relais(&["check"]);
    assert_eq!(check.code, 1);
    assert!(
        check
            .stderr
            .contains("limits.yaml:2:3: unknown field `memory-mb`")
            && check.stderr.contains("did you mean `memory-mib`?"),
        "{check:?}"
    );
}

/// The compiled entries of a plugin cache, by file name, with their bytes.
fn cache_entries(cache: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut entries = std::collections::BTreeMap::new();
    let Ok(compilers) = std::fs::read_dir(cache.join("modules")) else {
        return entries;
    };
    for compiler in compilers {
        let compiler = compiler.expect("entry").path();
        for entry in std::fs::read_dir(&compiler).expect("compiler folder") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .to_string();
            // The cache's usage statistics sit beside its entries.
            if path.is_file() && !name.ends_with(".stats") && !name.ends_with(".wip-") {
                entries.insert(name, std::fs::read(&path).expect("read"));
            }
        }
    }
    entries
}

#[test]
fn compiled_plugins_are_kept_and_what_does_not_read_back_is_compiled_again() {
    let setup = Setup::new();
    let cache = setup.dir.path().join("cache");
    let with_cache = [("RELAIS_CACHE_DIR", cache.as_os_str())];
    let check = |setup: &Setup| {
        let run = setup.relais_env(&with_cache, &["check"]);
        assert_eq!(run.code, 0, "{run:?}");
        cache_entries(&cache)
    };
    // The first command compiles the bundled plugins and keeps them...
    let first = check(&setup);
    assert_eq!(
        first.len(),
        4,
        "one entry per bundled plugin: {:?}",
        first.keys()
    );
    // ...the next reads them back and compiles nothing.
    let second = check(&setup);
    assert_eq!(second, first, "nothing compiled again");

    // A new plugin is compiled, once; the others are read back.
    let plugins = setup.dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    std::fs::copy(test_plugin("misbehave"), plugins.join("misbehave.wasm")).expect("copy");
    let third = check(&setup);
    assert_eq!(third.len(), 5, "{:?}", third.keys());
    assert!(
        first
            .iter()
            .all(|(name, bytes)| third.get(name) == Some(bytes))
    );

    // Entries that are garbage, or cut short, are compiled again and
    // replaced; the command works as before.
    let mut written = std::collections::BTreeMap::new();
    for (index, name) in third.keys().enumerate() {
        let path = std::fs::read_dir(cache.join("modules"))
            .expect("modules")
            .map(|e| e.expect("entry").path().join(name))
            .find(|p| p.exists())
            .expect("entry path");
        let bytes = std::fs::read(&path).expect("read");
        let broken = if index % 2 == 0 {
            b"not a compiled component".to_vec()
        } else {
            bytes[..bytes.len() / 2].to_vec()
        };
        std::fs::write(&path, &broken).expect("corrupt");
        written.insert(name.clone(), broken);
    }
    let mails = setup.dir.path().join("jeanne.eml");
    std::fs::copy(fixture("mails/catchmail-jeanne.eml"), &mails).expect("fixture");
    let ingest = setup.relais_env(
        &with_cache,
        &["ingest", "--dry-run", mails.to_str().expect("utf-8")],
    );
    assert_eq!(ingest.code, 0, "{ingest:?}");
    assert!(ingest.stdout.contains("[catchmail]"), "{ingest:?}");
    let rebuilt = cache_entries(&cache);
    assert_eq!(
        rebuilt.keys().collect::<Vec<_>>(),
        third.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &rebuilt {
        assert_ne!(Some(bytes), written.get(name), "{name} compiled again");
    }

    // A cache that cannot be written is done without.
    let blocked = setup.dir.path().join("blocked");
    std::fs::write(&blocked, "a file, not a folder").expect("write");
    let run = setup.relais_env(&[("RELAIS_CACHE_DIR", blocked.as_os_str())], &["check"]);
    assert_eq!(run.code, 0, "{run:?}");
}

/// Every event kind, with every optional field filled, as the host sends
/// it: the guest must read back exactly these values.
fn every_kind_of_event() -> Vec<relais_sdk::Event> {
    use relais_sdk::{
        Address, Attachment, AuthResult, ChangeKind, Contract, ContractEvent, Event, Mail, Request,
        RequestSaved, ScheduleFired, SenderAuthentication,
    };
    let address = |name: Option<&str>, email: &str| Address {
        name: name.map(str::to_string),
        email: email.to_string(),
    };
    let request = |state: &str| Request {
        number: 23010203,
        company: "ACME".into(),
        customer: "DUPONT".into(),
        request_type: "INCIDENT".into(),
        requester: Some("ct-jeanne".into()),
        state: state.into(),
        publishable: true,
        conversation_locked: false,
        contract: Some("K-2026-001".into()),
        subject: Some("Écran noir « 2 »".into()),
    };
    vec![
        Event::MailReceived(Mail {
            account: "catchmail".into(),
            message_id: "m1@dupont.example".into(),
            subject: "#23010203 *Merci* ✓".into(),
            from: Some(address(Some("Jeanne Martin"), "jeanne@dupont.example")),
            return_path: Some(String::new()),
            to: vec![address(None, "catchmail@acme.example")],
            cc: vec![address(Some("Paul"), "paul@acme.example")],
            reply_to: vec![address(None, "replies@dupont.example")],
            date: Some("2026-12-01T09:00:00+01:00".into()),
            in_reply_to: vec!["m0@acme.example".into()],
            references: vec!["r0@acme.example".into(), "m0@acme.example".into()],
            auto_submitted: Some("no".into()),
            precedence: Some("bulk".into()),
            list_headers: vec!["List-Id".into()],
            x_loop: vec!["catchmail@acme.example".into()],
            text: "Bonjour,\n\nle texte\u{0} et \u{1F600}.".into(),
            text_truncated: true,
            attachments: vec![Attachment {
                filename: Some("capture d'écran.png".into()),
                content_type: "image/png".into(),
                size: u64::MAX,
                sha256: "ab".repeat(32),
            }],
            size: 12345,
            authentication: SenderAuthentication {
                result: AuthResult::Fail,
                domain: Some("dupont.example".into()),
                method: Some("dmarc".into()),
                authority: Some("mx.acme.example".into()),
                reason: "dmarc=fail".into(),
            },
        }),
        Event::MailReceived(Mail::default()),
        Event::RequestSaved(RequestSaved {
            before: Some(request("open")),
            after: request("resolved"),
            changes: vec![ChangeKind::StateChanged, ChangeKind::Resolved],
        }),
        Event::RequestSaved(RequestSaved {
            before: None,
            after: relais_sdk::Request::default(),
            changes: ChangeKind::ALL.to_vec(),
        }),
        Event::ContractEvent(ContractEvent {
            kind: "expiring".into(),
            contract: Contract {
                code: "K-2026-001".into(),
                customer: "DUPONT".into(),
            },
        }),
        Event::Schedule(ScheduleFired {
            rule: "reminders".into(),
            fired_at: "2026-12-01T08:00:00Z".into(),
        }),
    ]
}

#[test]
fn every_event_and_its_config_reach_the_plugin_whole() {
    use relais::plugins::{Limits, Runtime};
    use relais::rules::RuleConfig;
    use relais::{Plugins, Store, StoreHost, Templates};
    use std::sync::Arc;

    let dir = tempfile::tempdir().expect("plugins dir");
    std::fs::copy(test_plugin("echo"), dir.path().join("echo.wasm")).expect("copy");
    let runtime = Runtime::with_cache(Limits::default(), None).expect("runtime");
    let (plugins, errors) = Plugins::load(&runtime, dir.path());
    assert!(errors.is_empty(), "{errors:?}");
    let echo = plugins.get("echo").expect("echo loads").clone();
    let host = Arc::new(StoreHost::new(
        Store::open_in_memory().expect("store"),
        Arc::new(Templates::new()),
        "echo",
    ));
    let configs = [
        serde_json::Value::Null,
        serde_json::json!({ "language": "fr", "own-addresses": ["a@b.example"], "n": 4000, "deep": { "x": [true, null, 1.5] } }),
    ];
    for event in every_kind_of_event() {
        for config in &configs {
            let effects = echo
                .handle(&event, &RuleConfig::new(config.clone()), host.clone())
                .expect("echo answers");
            let [relais_sdk::Effect::PostMessage { body, .. }] = effects.as_slice() else {
                panic!("one message expected: {effects:?}");
            };
            let seen: serde_json::Value = serde_json::from_str(body).expect("JSON body");
            assert_eq!(
                seen["event"],
                serde_json::to_value(&event).expect("event"),
                "event"
            );
            assert_eq!(&seen["config"], config, "config");
        }
    }
}

#[test]
fn plugin_install_checks_then_copies_and_plugin_run_takes_a_bundled_name() {
    let setup = Setup::with_directory();
    // A file that is no component, and a component of a future contract:
    // refused, nothing copied.
    let junk = setup.dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not a component").expect("write");
    for refused in [junk.clone(), test_plugin("future")] {
        let run = setup.relais(&["plugin", "install", refused.to_str().expect("utf-8")]);
        assert_eq!(run.code, 1, "{run:?}");
        assert!(run.stderr.contains("not installed"), "{run:?}");
    }
    let plugins = setup.dir.path().join("plugins");
    let listed = |dir: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(listed(&plugins).is_empty(), "{:?}", listed(&plugins));

    let run = setup.relais(&[
        "plugin",
        "install",
        test_plugin("noop").to_str().expect("utf-8"),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("installed noop"), "{run:?}");
    assert_eq!(
        listed(&plugins),
        ["noop.wasm"],
        "under its name, nothing aside"
    );
    let list = setup.relais(&["plugins"]);
    assert!(
        list.stdout.lines().any(|line| line.starts_with("noop")),
        "{list:?}"
    );

    // A bundled plugin runs by its name.
    let run = setup.relais(&[
        "plugin",
        "run",
        "catchmail",
        "--event",
        fixture("mails/catchmail-jeanne.eml")
            .to_str()
            .expect("utf-8"),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let output: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(output["plugin"]["name"], "catchmail");
    assert_eq!(output["trigger"], "mail-received");
}
