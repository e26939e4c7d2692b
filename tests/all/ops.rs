//! Running Relais like any well-kept daemon and command: signals, logs a
//! collector can read, listings that end quietly in a pipe.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{Engine, Setup, fixture, wait_for};
use relais::store::prelude::*;

#[test]
fn a_listing_piped_into_head_ends_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_relais"))
        .arg("schema")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("relais runs");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("a line");
    // `head -1` has what it wants and goes: the pipe closes.
    let output = child.wait_with_output().expect("exits");
    assert_eq!(first.trim(), "{");
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn logs_are_json_on_request_and_never_coloured_in_a_file() {
    let setup = Setup::with_directory();
    let mail = fixture("mails/catchmail-jeanne.eml");
    let mail = mail.to_str().expect("utf-8");
    let run = |format: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_relais"));
        command
            .current_dir(setup.dir.path())
            .env("RELAIS_LOG", "info")
            .env_remove("NO_COLOR")
            .args(["--db", setup.db().to_str().expect("utf-8")])
            .args(["--rules", setup.rules.to_str().expect("utf-8")])
            .args([
                "--templates",
                crate::support::root()
                    .join("templates")
                    .to_str()
                    .expect("utf-8"),
            ])
            .args(["ingest", "--dry-run", mail]);
        if let Some(format) = format {
            command.env("RELAIS_LOG_FORMAT", format);
        }
        let output = command.output().expect("relais runs");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let plain = run(None);
    assert!(plain.contains("posted mail"), "{plain}");
    assert!(!plain.contains('\u{1b}'), "ANSI codes in a pipe: {plain:?}");
    let json = run(Some("json"));
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["plugin"] == "catchmail" && l["level"] == "INFO"),
        "{json}"
    );
}

#[test]
fn the_demo_takes_its_folder_as_an_argument() {
    let setup = Setup::new();
    let run = setup.relais(&["demo", "elsewhere"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(setup.dir.path().join("elsewhere/relais.db").exists());
    assert!(
        run.stdout.starts_with("Relais demo in elsewhere"),
        "{}",
        run.stdout
    );
}

#[test]
fn sighup_makes_the_daemon_look_at_its_sources_and_it_goes_on() {
    let setup = Setup::with_directory();
    let config = crate::safety::spool_engine(&setup, "reload: { poll-seconds: 3600 }\n");
    let mut engine = Engine::start(&setup, &config);
    wait_for(&mut engine, Duration::from_secs(30), "the engine", || {
        engine_log_has(&setup, "relais is running")
    });
    let pid = engine.child.as_ref().expect("running").id().to_string();
    let sent = Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill -HUP");
    assert!(sent.success());
    wait_for(
        &mut engine,
        Duration::from_secs(10),
        "the SIGHUP check",
        || {
            engine_log_has(
                &setup,
                "SIGHUP: checking the rules, templates and plugins now",
            )
        },
    );
    let status = setup.relais(&["status", "--json"]);
    assert_eq!(status.code, 0, "still running after SIGHUP: {status:?}");
    assert!(engine.stop().success(), "{}", engine.log());
}

/// Puts a fixture mail in the spool as a mail server would: written under a
/// hidden name, then renamed in.
fn drop_in_spool(setup: &Setup, fixture_path: &str) {
    let spool = setup.dir.path().join("spool");
    std::fs::create_dir_all(&spool).expect("mkdir");
    let name = fixture_path.rsplit('/').next().expect("a name");
    let hidden = spool.join(format!(".{name}"));
    std::fs::copy(fixture(fixture_path), &hidden).expect("copy");
    std::fs::rename(&hidden, spool.join(name)).expect("rename");
}

fn engine_log_has(setup: &Setup, text: &str) -> bool {
    std::fs::read_to_string(setup.dir.path().join("relais.log"))
        .unwrap_or_default()
        .contains(text)
}

#[test]
fn limits_for_a_plugin_that_is_not_loaded_are_refused() {
    let setup = Setup::new();
    std::fs::write(
        setup.plugins_dir().join("limits.yaml"),
        "default: { memory-mib: 64 }\nplugins:\n  catchmial: { memory-mib: 32 }\n",
    )
    .expect("write");
    let run = setup.relais(&["check"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(
            "limits.yaml:3:3: limits for unknown plugin `catchmial`; did you mean `catchmail`?"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn the_link_usage_gives_the_mail_first() {
    let setup = Setup::new();
    let run = setup.relais(&["link", "--help"]);
    assert!(
        run.stdout
            .contains("Usage: relais link [OPTIONS] <MESSAGE_ID> <TICKET|--new|--candidates>"),
        "{}",
        run.stdout
    );
}

#[test]
fn completions_and_the_manual_come_from_the_command_definitions() {
    let setup = Setup::new();
    for shell in ["bash", "zsh", "fish"] {
        let run = setup.relais(&["completions", shell]);
        assert_eq!(run.code, 0, "{run:?}");
        for command in ["ingest", "backup", "completions"] {
            assert!(run.stdout.contains(command), "{shell}: {command}");
        }
    }
    let bash = setup.dir.path().join("relais.bash");
    std::fs::write(&bash, setup.relais(&["completions", "bash"]).stdout).expect("write");
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&bash)
        .status()
        .expect("bash");
    assert!(syntax.success(), "the bash script parses");
    let man = setup.relais(&["man"]);
    assert_eq!(man.code, 0, "{man:?}");
    assert!(man.stdout.contains(".TH relais 1"), "{}", man.stdout);
    assert!(man.stdout.contains("backup"), "{}", man.stdout);
}

#[test]
fn a_backup_taken_while_the_engine_runs_restores_the_store() {
    let setup = Setup::with_directory();
    let config = crate::safety::spool_engine(&setup, "");
    let mut engine = Engine::start(&setup, &config);
    wait_for(&mut engine, Duration::from_secs(30), "the engine", || {
        engine_log_has(&setup, "relais is running")
    });
    // A mail processed by the running engine.
    drop_in_spool(&setup, "mails/catchmail-jeanne.eml");
    wait_for(&mut engine, Duration::from_secs(30), "the mail", || {
        !crate::support::event_runs(&setup.store(), 1).is_empty()
    });
    let copy = setup.dir.path().join("copy.db");
    let run = setup.relais(&["backup", copy.to_str().expect("utf-8")]);
    assert_eq!(run.code, 0, "{run:?}");
    let again = setup.relais(&["backup", copy.to_str().expect("utf-8")]);
    assert_eq!(
        again.code, 1,
        "an existing file is never overwritten: {again:?}"
    );
    assert!(engine.stop().success(), "{}", engine.log());
    // Restore: the engine stopped, the copy takes the store's place.
    for stale in ["relais.db-wal", "relais.db-shm"] {
        let _ = std::fs::remove_file(setup.dir.path().join(stale));
    }
    std::fs::rename(&copy, setup.db()).expect("restore");
    let store = setup.store();
    assert_eq!(store.messages(23010203).expect("messages").len(), 1);
    assert_eq!(crate::support::event_runs(&store, 10).len(), 1);
}

#[test]
fn under_systemd_the_engine_says_ready_then_stopping() {
    let setup = Setup::with_directory();
    let config = crate::safety::spool_engine(&setup, "");
    let socket_path = setup.dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).expect("socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut child = Command::new(env!("CARGO_BIN_EXE_relais"))
        .current_dir(setup.dir.path())
        .env("NOTIFY_SOCKET", &socket_path)
        .args(["--config", config.to_str().expect("utf-8"), "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("relais run");
    let mut message = [0u8; 64];
    let n = socket.recv(&mut message).expect("a notification");
    assert_eq!(&message[..n], b"READY=1");
    // Ready means running: its sources are up, as its status soon says.
    let started = std::time::Instant::now();
    loop {
        let status = setup.relais(&["status", "--json"]);
        if status.code == 0 && status.stdout.contains("\"spool\"") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{status:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    let n = socket.recv(&mut message).expect("a notification");
    assert_eq!(&message[..n], b"STOPPING=1");
    assert!(child.wait().expect("exits").success());
}

#[test]
fn the_shipped_example_config_and_unit_check() {
    let root = crate::support::root();
    // Its rules and templates sit beside it once installed; here, the
    // shipped ones stand in (the command line wins over the file).
    let setup = Setup::new();
    let run = setup.relais(&[
        "--config",
        root.join("docs/ops/relais.example.yaml")
            .to_str()
            .expect("utf-8"),
        "check",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("(2 identities, 2 accounts)"),
        "{}",
        run.stdout
    );
    let unit = std::fs::read_to_string(root.join("docs/ops/relais.service")).expect("unit");
    for line in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ExecStart=/usr/bin/relais --config /etc/relais/relais.yaml run",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line}");
    }
}

/// The metric names a PromQL expression reads (`relais_*`, `process_*`).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut current = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' {
            current.push(c);
        } else {
            if current.starts_with("relais_") || current.starts_with("process_") {
                names.push(current.clone());
            }
            current.clear();
        }
    }
    names
}

#[test]
#[ignore = "needs promtool: tests/mail-servers.sh start installs it"]
fn metrics_pass_promtool_and_the_dashboard_reads_only_what_exists() {
    use crate::api::{TOKEN, call};
    let setup = Setup::with_directory();
    std::fs::write(setup.dir.path().join("api-token"), TOKEN).expect("token");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let config = crate::safety::spool_engine(
        &setup,
        &format!("http: {{ listen: 127.0.0.1:{port}, token: {{ file: api-token }} }}\n"),
    );
    let mut engine = Engine::start(&setup, &config);
    wait_for(&mut engine, Duration::from_secs(30), "the API", || {
        call(port, "GET", "/health", None, None).is_some_and(|a| a.status == 200)
    });
    drop_in_spool(&setup, "mails/catchmail-stranger.eml");
    wait_for(
        &mut engine,
        Duration::from_secs(30),
        "a delivered notice",
        || {
            call(port, "GET", "/metrics", Some(TOKEN), None).is_some_and(|a| {
                a.body
                    .contains("relais_outbox_delivery_duration_seconds_count{outcome=\"sent\"} 1")
            })
        },
    );
    // What curl gets: the classic text format, which promtool checks.
    let classic = call(port, "GET", "/metrics", Some(TOKEN), None).expect("metrics");
    assert!(
        classic.headers.contains("text/plain; version=0.0.4"),
        "{}",
        classic.headers
    );
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    std::io::Write::write_all(
        &mut promtool.stdin.take().expect("stdin"),
        classic.body.as_bytes(),
    )
    .expect("write");
    let checked = promtool.wait_with_output().expect("promtool ends");
    assert!(
        checked.status.success(),
        "promtool: {}{}\n{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr),
        classic.body
    );
    for line in [
        "# TYPE relais_events_total counter",
        // At zero before their first event.
        "relais_events_total{trigger=\"schedule\",outcome=\"failed\"} 0",
        "relais_plugin_failures_total{plugin=\"catchmail\",kind=\"fault\"} 0",
        "relais_events_total{trigger=\"mail-received\",outcome=\"applied\"} 1",
        "relais_plugin_call_duration_seconds_count{plugin=\"catchmail\"} 1",
        "relais_event_duration_seconds_bucket{le=\"+Inf\",trigger=\"mail-received\"} 1",
        "# TYPE relais_build_info gauge",
        "# TYPE process_resident_memory_bytes gauge",
    ] {
        assert!(classic.body.contains(line), "{line} in:\n{}", classic.body);
    }
    assert!(!classic.body.contains("# EOF"));
    // Prometheus asks for OpenMetrics and gets it.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    std::io::Write::write_all(
        &mut stream,
        format!(
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\n\
             Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n\r\n"
        )
        .as_bytes(),
    )
    .expect("write");
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut stream, &mut answer).expect("read");
    assert!(answer.contains("application/openmetrics-text"), "{answer}");
    assert!(answer.trim_end().ends_with("# EOF"), "{answer}");
    // Every metric the shipped dashboard reads exists.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(crate::support::root().join("docs/ops/grafana-dashboard.json"))
            .expect("dashboard"),
    )
    .expect("JSON");
    let mut read = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            for name in metric_names(target["expr"].as_str().expect("expr")) {
                read += 1;
                assert!(
                    classic
                        .body
                        .lines()
                        .any(|l| l.starts_with(&format!("{name}{{"))
                            || l.starts_with(&format!("{name} "))),
                    "the dashboard reads `{name}`, which the engine does not serve"
                );
            }
        }
    }
    assert!(read >= 10, "{read}");
    assert!(engine.stop().success(), "{}", engine.log());
}

#[test]
fn a_dry_run_fails_where_the_real_run_would_and_writes_nothing() {
    // A rule whose effect the store refuses (a message on a request that
    // does not exist): the dry run must not say it would apply.
    let rules = "rules:\n  - id: ghost\n    on: mail-received\n    run: { plugin: misbehave, config: { do: ghost } }\n";
    let setup = Setup::with_directory().with_rules(&[("ghost.yaml", rules)]);
    setup.install_plugin(&crate::support::test_plugin("misbehave"), "misbehave.wasm");
    let mail = fixture("mails/catchmail-jeanne.eml");
    let (_, dry) = setup.ingest_json(&["--dry-run"], &[&mail]);
    assert_eq!(dry[0]["outcome"], "failed", "{}", dry[0]);
    let error = dry[0]["error"].as_str().expect("error").to_string();
    assert!(error.contains("request 99999999 does not exist"), "{error}");
    assert!(
        crate::support::event_runs(&setup.store(), 10).is_empty(),
        "nothing written"
    );
    let (_, real) = setup.ingest_json(&[], &[&mail]);
    assert_eq!(real[0]["outcome"], "failed");
    assert_eq!(real[0]["error"].as_str(), Some(error.as_str()));
    // Once stored, a dry run of the same mail says what the real one would.
    let (_, again) = setup.ingest_json(&["--dry-run"], &[&mail]);
    assert_eq!(again[0]["outcome"], "duplicate", "{}", again[0]);
}

#[test]
fn request_saves_contract_events_and_fires_have_a_dry_run() {
    let setup = Setup::with_directory();
    let save = setup.dir.path().join("save.yaml");
    std::fs::write(
        &save,
        "{ number: 23010299, company: ACME-FR, customer: C001, type: INCIDENT, requester: ct-jeanne, state: open, publishable: true, conversation-locked: false, contract: K-2026-001, subject: Imprimante }\n",
    )
    .expect("write");
    let run = setup.relais(&[
        "request",
        "save",
        "--dry-run",
        "--json",
        save.to_str().expect("utf-8"),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let answer: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(answer["outcome"], "dry-run", "{answer}");
    assert!(
        answer["effects"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["kind"] == "send-mail")),
        "the alerts it would send: {answer}"
    );
    let store = setup.store();
    assert_eq!(store.request(23010299).expect("query"), None, "not saved");
    assert!(crate::support::event_runs(&store, 10).is_empty());
    assert!(store.outbox(None, 10).expect("outbox").is_empty());
    let event = setup.relais(&[
        "contract-event",
        "--dry-run",
        "--json",
        "K-2026-001",
        "expiring",
    ]);
    assert_eq!(event.code, 0, "{event:?}");
    let at = (chrono::Utc::now() + chrono::TimeDelta::days(30)).to_rfc3339();
    let fired = setup.relais(&[
        "fire",
        "--dry-run",
        "--json",
        "waiting-customer-reminders",
        "--at",
        &at,
    ]);
    assert_eq!(fired.code, 0, "{fired:?}");
    assert!(
        crate::support::event_runs(&setup.store(), 10).is_empty(),
        "nothing written"
    );
}

#[test]
fn the_shipped_rule_tests_pass_and_a_failing_one_says_where_and_what() {
    let setup = Setup::new();
    let shipped = crate::support::root().join("rules/tests");
    let run = setup.relais(&["test", shipped.to_str().expect("utf-8")]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains(" passed, 0 failed"), "{}", run.stdout);
    let file = setup.dir.path().join("wrong.yaml");
    std::fs::write(
        &file,
        format!(
            "directory: {}\ntests:\n  - name: right\n    account: catchmail\n    mail: |\n      From: someone@elsewhere.example\n      To: catchmail@acme.example\n      Subject: #23010203 *message*\n      Message-ID: <w1@x>\n\n      Hi\n    expect: {{ failure: sender-not-authenticated }}\n  - name: wrong request\n    request-save: {{ number: 23019002, company: ACME-FR, customer: C001, type: INCIDENT, state: open, contract: K-2026-001 }}\n    expect:\n      effects:\n        - {{ kind: send-mail, request: 1 }}\n",
            crate::support::root().join("demo/directory.yaml").display()
        ),
    )
    .expect("write");
    let run = setup.relais(&["test", file.to_str().expect("utf-8")]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("wrong.yaml:3: right"), "{}", run.stdout);
    assert!(
        run.stdout.contains("FAIL  ") && run.stdout.contains("wrong.yaml:13: wrong request"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("effects: expected 1 item(s), got 2"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("2 tests: 1 passed, 1 failed"),
        "{}",
        run.stdout
    );
    let json = setup.relais(&["test", "--json", file.to_str().expect("utf-8")]);
    let verdicts: Vec<serde_json::Value> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(verdicts.len(), 2);
    assert_eq!(verdicts[0]["ok"], true);
    assert_eq!(verdicts[1]["ok"], false);
    assert_eq!(verdicts[1]["line"], 13);
}

#[test]
fn retention_removes_what_is_past_its_time_and_keeps_the_rest() {
    let setup = Setup::with_directory();
    // Processed before: a posted message (with its mail on the request),
    // a refused one (a notice queued), and a failed one to keep.
    let rules = "rules:\n  - id: ghost\n    on: mail-received\n    when: { subject: { contains: '[ghost]' } }\n    run: { plugin: misbehave, config: { do: ghost } }\n";
    let shipped =
        std::fs::read_to_string(crate::support::root().join("rules/catchmail.yaml")).expect("rule");
    let setup = setup.with_rules(&[("catchmail.yaml", &shipped), ("ghost.yaml", rules)]);
    setup.install_plugin(&crate::support::test_plugin("misbehave"), "misbehave.wasm");
    let ghost = crate::support::write_mail(
        setup.dir.path(),
        "ghost.eml",
        &[
            ("From", "jeanne@dupont.example"),
            ("Subject", "[ghost] boo"),
            ("Message-ID", "<ghost@dupont.example>"),
        ],
        "boo",
    );
    let (_, lines) = setup.ingest_json(
        &[],
        &[
            &fixture("mails/catchmail-jeanne.eml"),
            &fixture("mails/catchmail-stranger.eml"),
            &ghost,
        ],
    );
    assert_eq!(lines[2]["outcome"], "failed");
    let config = crate::safety::spool_engine(
        &setup,
        "retention: { runs-days: 0, raw-mail-days: 0, sent-outbox-days: 0, batch: 1 }\n",
    );
    let mut engine = Engine::start(&setup, &config);
    // The engine delivers the notice, then the hourly pass removes it with
    // the rest (its first pass runs at start; the notice may be sent after).
    wait_for(
        &mut engine,
        Duration::from_secs(30),
        "the first pass",
        || {
            let store = setup.store();
            store.runs(10).expect("runs").len() == 1
                && store
                    .raw_mail("fixture-jeanne-1@dupont.example")
                    .expect("query")
                    .is_some_and(|raw| raw.is_empty())
        },
    );
    assert!(engine.stop().success(), "{}", engine.log());
    let store = setup.store();
    let runs = store.runs(10).expect("runs");
    assert_eq!(runs.len(), 1, "the failed run stays: {runs:?}");
    assert_eq!(runs[0].outcome, "failed");
    // What was built on the removed records stays.
    assert_eq!(store.messages(23010203).expect("messages").len(), 1);
    let mail = store
        .mail("fixture-jeanne-1@dupont.example")
        .expect("query")
        .expect("the mail's record stays");
    assert_eq!(mail.ticket, Some(23010203));
    assert!(engine_log_has(
        &setup,
        "retention: removed what is past its time"
    ));
}

/// Spool files of `size` bytes each: a valid mail from Jeanne padded with
/// a long body.
fn big_spool_mails(setup: &Setup, count: usize, size: usize) -> Vec<String> {
    let spool = setup.dir.path().join("spool");
    std::fs::create_dir_all(&spool).expect("mkdir");
    let line = "Bonjour, voici le journal de l'imprimante.\r\n";
    let body = line.repeat(size / line.len() + 1);
    (0..count)
        .map(|n| {
            let id = format!("big-{n}@dupont.example");
            let text = format!(
                "From: jeanne@dupont.example\r\nTo: support@acme.example\r\n\
                 Subject: Journal {n}\r\nMessage-ID: <{id}>\r\n\r\n{body}"
            );
            let hidden = spool.join(format!(".big-{n}.eml"));
            std::fs::write(&hidden, text).expect("write");
            std::fs::rename(&hidden, spool.join(format!("big-{n}.eml"))).expect("rename");
            id
        })
        .collect()
}

#[test]
fn spool_files_are_removed_once_committed_unless_kept_and_in_flight_bytes_are_bounded() {
    for (extra, kept) in [
        // In flight: at most 1 MiB, less than two of these mails.
        ("limits: { max-in-flight-mib: 1 }\n", false),
        ("spool-done: keep\n", true),
    ] {
        let setup = Setup::with_directory();
        let config = crate::safety::spool_engine(&setup, extra);
        let ids = big_spool_mails(&setup, 6, 700 * 1024);
        let mut engine = Engine::start(&setup, &config);
        let spool = setup.dir.path().join("spool");
        wait_for(
            &mut engine,
            Duration::from_secs(60),
            "the spool emptied",
            || relais::daemon::spool::list(&spool).is_empty(),
        );
        assert!(engine.stop().success(), "{}", engine.log());
        crate::safety::assert_processed_once(&setup, &ids);
        let store = setup.store();
        for id in &ids {
            // The store keeps each mail byte for byte: the file is no
            // longer needed.
            let raw = store.raw_mail(id).expect("query").expect("stored");
            assert!(raw.len() > 700 * 1024, "{id}: {} bytes", raw.len());
        }
        let done: Vec<_> = std::fs::read_dir(spool.join("done"))
            .map(|entries| entries.flatten().collect())
            .unwrap_or_default();
        assert_eq!(done.len(), if kept { ids.len() } else { 0 }, "{extra}");
    }
}
