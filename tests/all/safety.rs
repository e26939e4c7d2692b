//! Facing real customers: authenticated senders, notices that tell a
//! stranger nothing, the customer boundary held by the host, identities on
//! outgoing mail, one engine per store, mail kept under its own id when its
//! Message-ID was taken, and hostile input that stays cheap.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::{Engine, Setup, TEST_CONFIG, fixture, wait_for, write_mail};
use relais::store::prelude::*;

/// Jeanne's mail to CatchMail on request 23010203 (design example), with
/// `extra` headers first.
fn jeanne_mail(dir: &Path, name: &str, extra: &[(&str, &str)], body: &str) -> std::path::PathBuf {
    let mut headers: Vec<(&str, &str)> = extra.to_vec();
    headers.extend([
        ("From", "Jeanne Martin <jeanne@dupont.example>"),
        ("To", "catchmail@acme.example"),
        ("Subject", "#23010203 *message*"),
        ("Date", "Mon, 30 Nov 2026 10:00:00 +0100"),
    ]);
    let id = format!("<{name}@dupont.example>");
    headers.push(("Message-ID", &id));
    write_mail(dir, &format!("{name}.eml"), &headers, body)
}

fn only_effect(line: &Value) -> &Value {
    let effects = line["effects"].as_array().expect("effects");
    assert_eq!(effects.len(), 1, "{line}");
    &effects[0]
}

#[test]
fn a_forged_sender_is_refused_and_the_notice_goes_to_the_owner_not_the_envelope() {
    let setup = Setup::with_directory();
    let dir = setup.dir.path();
    let forged = [
        // A DMARC failure from the trusted server.
        jeanne_mail(
            dir,
            "forged-dmarc-fail",
            &[
                ("Return-Path", "<attacker@evil.example>"),
                (
                    "Authentication-Results",
                    "mx.acme.example; spf=pass smtp.mailfrom=evil.example; dmarc=fail (p=reject) header.from=dupont.example",
                ),
            ],
            "Fermez ma demande.",
        ),
        // A pass written by the sender, under another authserv-id.
        jeanne_mail(
            dir,
            "forged-own-results",
            &[
                ("Return-Path", "<attacker@evil.example>"),
                (
                    "Authentication-Results",
                    "evil.example; dmarc=pass header.from=dupont.example",
                ),
            ],
            "Fermez ma demande.",
        ),
        // Nothing at all.
        jeanne_mail(
            dir,
            "forged-no-results",
            &[("Return-Path", "<attacker@evil.example>")],
            "Fermez ma demande.",
        ),
    ];
    let paths: Vec<&Path> = forged.iter().map(|p| p.as_path()).collect();
    let (run, lines) = setup.ingest_json(&[], &paths);
    assert_eq!(run.code, 0, "{run:?}");
    for line in &lines {
        let effect = only_effect(line);
        assert_eq!(effect["kind"], "reply-failure", "{line}");
        assert_eq!(effect["reason"], "sender-not-authenticated", "{line}");
        assert_eq!(
            effect["to"], "jeanne@dupont.example",
            "the owner, not the envelope: {line}"
        );
        assert_eq!(effect["request"], Value::Null, "no ticket tag: {line}");
    }
    assert!(
        setup
            .store()
            .messages(23010203)
            .expect("messages")
            .is_empty(),
        "nothing posted in Jeanne's name"
    );
    // The verdict is in the trace, with what it rests on.
    let run_id = lines[0]["run"].as_i64().expect("run");
    let trace = setup
        .store()
        .run(run_id)
        .expect("query")
        .expect("run")
        .trace;
    assert_eq!(trace["authentication"]["result"], "fail", "{trace}");
    assert_eq!(trace["authentication"]["authority"], "mx.acme.example");
    let ignored = setup.store().run(lines[1]["run"].as_i64().expect("run"));
    let ignored = ignored.expect("query").expect("run").trace;
    assert!(
        ignored["authentication"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("from others, ignored")),
        "{ignored}"
    );

    // Authenticated, on a locked conversation, with another envelope: the
    // notice goes to Jeanne's address, never to the envelope.
    let store = setup.store();
    drop(store);
    let locked = setup.dir.path().join("locked.yaml");
    std::fs::write(
        &locked,
        "requests:\n  - { number: 23010203, company: ACME-FR, customer: C001, type: INCIDENT, requester: ct-jeanne, state: open, publishable: true, conversation-locked: true, contract: K-2026-001 }\n",
    )
    .expect("write");
    assert_eq!(
        setup
            .relais(&["import", locked.to_str().expect("utf-8")])
            .code,
        0
    );
    let mail = jeanne_mail(
        dir,
        "genuine-locked",
        &[
            ("Return-Path", "<bounces@list.example>"),
            (
                "Authentication-Results",
                "mx.acme.example; dkim=pass header.d=dupont.example; dmarc=pass header.from=dupont.example",
            ),
        ],
        "Bonjour",
    );
    let (_, lines) = setup.ingest_json(&[], &[&mail]);
    let effect = only_effect(&lines[0]);
    assert_eq!(effect["reason"], "conversation-locked", "{}", lines[0]);
    assert_eq!(effect["to"], "jeanne@dupont.example");
}

#[test]
fn a_huge_text_mail_gets_body_too_long_and_the_plugin_a_bounded_text() {
    let setup = Setup::with_directory();
    let body =
        "Ligne de texte assez longue pour remplir la mémoire du greffon.\r\n".repeat(360_000);
    assert!(body.len() > 23_000_000);
    let mail = jeanne_mail(
        setup.dir.path(),
        "huge-text",
        &[(
            "Authentication-Results",
            "mx.acme.example; dmarc=pass header.from=dupont.example",
        )],
        &body,
    );
    let (run, lines) = setup.ingest_json(&[], &[&mail]);
    assert_eq!(run.code, 0, "{run:?}");
    let line = &lines[0];
    assert_eq!(line["outcome"], "applied", "{line}");
    let effect = only_effect(line);
    assert_eq!(effect["reason"], "body-too-long", "{line}");
    assert!(
        line["warnings"]
            .as_array()
            .expect("warnings")
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("cut to 1.0 MiB"))),
        "{line}"
    );
    // The whole mail is stored all the same.
    let id = line["message-id"].as_str().expect("id");
    let raw = setup.store().raw_mail(id).expect("query").expect("raw");
    assert!(raw.len() > 23_000_000);
}

#[test]
fn a_different_mail_reusing_a_message_id_is_kept_under_its_own() {
    let setup = Setup::with_directory();
    let dir = setup.dir.path();
    let auth = (
        "Authentication-Results",
        "mx.acme.example; dmarc=pass header.from=dupont.example",
    );
    let first = jeanne_mail(dir, "reused", &[auth], "Premier message.");
    let (_, lines) = setup.ingest_json(&[], &[&first]);
    assert_eq!(lines[0]["outcome"], "applied");
    // Another mail, the same Message-ID (as some mailers and list
    // software produce).
    let other = dir.join("other");
    std::fs::create_dir(&other).expect("mkdir");
    let second = jeanne_mail(&other, "reused", &[auth], "Un tout autre message.");
    // The first one fetched again from another mailbox: transport headers
    // differ, the message is the same.
    let again_dir = dir.join("again");
    std::fs::create_dir(&again_dir).expect("mkdir");
    let again = jeanne_mail(
        &again_dir,
        "reused",
        &[auth, ("Received", "from mx2.acme.example by imap2")],
        "Premier message.",
    );
    let (run, lines) = setup.ingest_json(&[], &[&second, &again]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(lines[0]["outcome"], "applied", "{}", lines[0]);
    let own = lines[0]["message-id"].as_str().expect("id");
    assert_ne!(own, "reused@dupont.example");
    assert!(
        own.contains(".dup-") && own.ends_with("@dupont.example"),
        "{own}"
    );
    let warning = lines[0]["warnings"][0].as_str().expect("a warning");
    assert!(
        warning.contains("<reused@dupont.example> is already used by a different mail"),
        "{warning}"
    );
    assert_eq!(lines[1]["outcome"], "duplicate", "{}", lines[1]);
    let bodies: Vec<String> = setup
        .store()
        .messages(23010203)
        .expect("messages")
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(bodies, ["Premier message.", "Un tout autre message."]);
    // Fetched yet again, the second one is recognised under its own id.
    let (_, lines) = setup.ingest_json(&[], &[&second]);
    assert_eq!(lines[0]["outcome"], "duplicate", "{}", lines[0]);
}

#[test]
fn a_plugin_cannot_cross_the_customer_boundary_nor_an_import() {
    let setup = Setup::with_directory();
    // A contract of C001 naming a contact of another customer.
    let other = setup.dir.path().join("other.yaml");
    std::fs::write(
        &other,
        "customers: [ { code: C002, name: Martin SA, company: ACME-FR } ]\n\
         contacts:\n  - { id: ct-martin, name: Luc Martin, customer: C002, email: luc@martin.example }\n\
         contracts:\n  - { code: K-2026-001, customer: C001, recipients: { contract-contacts: [ct-jeanne, ct-martin] } }\n",
    )
    .expect("write");
    let run = setup.relais(&["import", other.to_str().expect("utf-8")]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(
            "other.yaml:5:86: contracts[0].recipients.contract-contacts[1]: contact `ct-martin` belongs to customer `C002`, not to the contract's customer `C001`"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("nothing imported"), "{}", run.stderr);
    let bad = setup.dir.path().join("bad-address.yaml");
    std::fs::write(
        &bad,
        "contacts:\n  - { id: ct-x, name: X, customer: C001, email: \"x@dupont.example\\r\\nBcc: all@evil.example\" }\n",
    )
    .expect("write");
    let run = setup.relais(&["import", bad.to_str().expect("utf-8")]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("bad-address.yaml:2:49: contacts[0].email:")
            && run.stderr.contains("holds a line break"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_second_engine_is_refused_and_status_says_stopped_or_gone() {
    let setup = Setup::with_directory();
    let config = spool_engine(&setup, "");
    let mut first = Engine::start(&setup, &config);
    wait_for(
        &mut first,
        Duration::from_secs(30),
        "the engine's status",
        || setup.relais(&["status", "--json"]).code == 0,
    );
    let second = setup.relais(&["--config", config.to_str().expect("utf-8"), "run"]);
    assert_eq!(second.code, 1, "{second:?}");
    let pid = first.child.as_ref().expect("running").id();
    assert!(
        second.stderr.contains("another engine is running on")
            && second.stderr.contains(&format!("pid {pid}")),
        "{}",
        second.stderr
    );
    // Killed: its lock goes with it; status says it is gone.
    first.kill();
    let status = setup.relais(&["status", "--json"]);
    assert_eq!(status.code, 1, "{status:?}");
    let view: Value = serde_json::from_str(&status.stdout).expect("json");
    assert_eq!(view["state"], "gone");
    // Started again, stopped cleanly: stopped.
    let mut again = Engine::start(&setup, &config);
    let pid = again.child.as_ref().expect("running").id();
    wait_for(
        &mut again,
        Duration::from_secs(30),
        "its own status",
        || {
            let run = setup.relais(&["status", "--json"]);
            let view: Value = serde_json::from_str(&run.stdout).unwrap_or(Value::Null);
            run.code == 0 && view["pid"] == pid && view["state"] == "running"
        },
    );
    assert!(again.stop().success(), "{}", again.log());
    let status = setup.relais(&["status", "--json"]);
    assert_eq!(status.code, 1, "{status:?}");
    let view: Value = serde_json::from_str(&status.stdout).expect("json");
    assert_eq!(view["state"], "stopped");
}

#[test]
fn mail_goes_out_with_the_identity_of_its_kind() {
    let setup = Setup::with_directory();
    let config = setup.dir.path().join("relais.yaml");
    std::fs::write(
        &config,
        format!(
            "{TEST_CONFIG}identity: {{ address: support@acme.example, name: Acme Support, message-id-domain: acme.example }}\n\
             identities:\n  catchmail: {{ address: catchmail@acme.example, name: Acme CatchMail, reply-to: support@acme.example }}\n"
        ),
    )
    .expect("config");
    // A notice about mail sent to the CatchMail address comes back from it.
    let stranger = fixture("mails/catchmail-stranger.eml");
    let (_, lines) = setup.ingest_json(&[], &[&stranger]);
    assert_eq!(only_effect(&lines[0])["reason"], "unknown-sender");
    // An alert (the shipped alert rule) comes from the support identity.
    let save = setup.dir.path().join("save.yaml");
    std::fs::write(
        &save,
        "{ number: 23010299, company: ACME-FR, customer: C001, type: INCIDENT, requester: ct-jeanne, state: open, publishable: true, conversation-locked: false, contract: K-2026-001, subject: Imprimante }\n",
    )
    .expect("write");
    let run = setup.relais(&["request", "save", save.to_str().expect("utf-8")]);
    assert_eq!(run.code, 0, "{run:?}");
    let outbox = setup.store().outbox(None, 10).expect("outbox");
    let header = |kind: &str, name: &str| -> Vec<String> {
        outbox
            .iter()
            .filter(|m| m.mail.kind == kind)
            .filter_map(|m| {
                m.mail
                    .headers
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
            })
            .collect()
    };
    assert_eq!(
        header("failure-reply", "From"),
        ["\"Acme CatchMail\" <catchmail@acme.example>"]
    );
    assert_eq!(
        header("failure-reply", "Reply-To"),
        ["support@acme.example"]
    );
    assert_eq!(
        header("failure-reply", "X-Loop"),
        ["catchmail@acme.example"]
    );
    let alerts = header("mail", "From");
    assert!(!alerts.is_empty(), "{outbox:?}");
    assert!(
        alerts
            .iter()
            .all(|from| from == "\"Acme Support\" <support@acme.example>"),
        "{alerts:?}"
    );
    assert!(
        outbox
            .iter()
            .all(|m| m.mail.message_id.ends_with("@acme.example")),
        "{outbox:?}"
    );

    // A rule naming an identity that is not defined is refused by check.
    let setup = Setup::new().with_rules(&[(
        "alerts.yaml",
        "rules:\n  - id: alerts\n    on: request-saved\n    run: { plugin: alert-dispatch, identity: suport }\n",
    )]);
    std::fs::write(
        setup.dir.path().join("relais.yaml"),
        std::fs::read(&config).expect("read"),
    )
    .expect("config");
    let run = setup.relais(&["check"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("alerts.yaml:4:46: unknown identity `suport`")
            && run.stderr.contains("(defined: default, catchmail)"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_config_is_checked_and_names_what_is_wrong() {
    let setup = Setup::new();
    let config = setup.dir.path().join("broken.yaml");
    std::fs::write(
        &config,
        "identity: { address: \"support at acme\" }\n\
         identities:\n  catchmail: { address: catchmail@acme.example }\n\
         accounts:\n  - { name: support, host: imap.acme.example, username: u, password: { env: P }, identity: suport }\n\
         outbox:\n  smtp: { host: smtp.acme.example, security: plain }\n",
    )
    .expect("write");
    let run = setup.relais(&["--config", config.to_str().expect("utf-8"), "check"]);
    assert_eq!(run.code, 1, "{run:?}");
    for expected in [
        "broken.yaml:1:22: `support at acme` is not a mail address",
        "broken.yaml:5:92: unknown identity `suport`",
        "broken.yaml:7:46: `security: plain` would send mail",
    ] {
        assert!(run.stderr.contains(expected), "{expected}\n{}", run.stderr);
    }
}

#[test]
fn a_hundred_thousand_references_cost_what_reading_them_costs() {
    let setup = Setup::with_directory();
    let references: Vec<String> = (0..100_000).map(|i| format!("<r{i}@x.example>")).collect();
    let value = references.join("\r\n ");
    let mail = write_mail(
        setup.dir.path(),
        "refs.eml",
        &[
            ("From", "jeanne@dupont.example"),
            ("To", "support@acme.example"),
            ("Subject", "Re: a long thread"),
            ("Message-ID", "<refs@dupont.example>"),
            ("References", &value),
        ],
        "Bonjour",
    );
    let (run, lines) = setup.ingest_json(&[], &[&mail]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(lines[0]["outcome"], "applied", "{}", lines[0]);
    assert!(
        lines[0]["warnings"][0]
            .as_str()
            .is_some_and(|w| w.contains("References names 100000 ids")),
        "{}",
        lines[0]
    );
}

/// An engine with the HTTP API (header timeout of one second) on a free
/// port, the shipped rules and a templates folder of its own; returns it
/// once the API answers.
fn engine_with_api(setup: &Setup) -> (Engine, u16) {
    use crate::api::{TOKEN, call};
    std::fs::write(setup.dir.path().join("api-token"), TOKEN).expect("token");
    let templates = setup.dir.path().join("templates");
    std::fs::create_dir_all(&templates).expect("mkdir");
    for entry in std::fs::read_dir(crate::support::root().join("templates")).expect("templates") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, templates.join(path.file_name().expect("name"))).expect("copy");
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let config = setup.dir.path().join("engine.yaml");
    std::fs::write(
        &config,
        format!(
            "{TEST_CONFIG}database: relais.db\nrules: {}\ntemplates: templates\nspool: spool\n\
             reload: {{ debounce-ms: 50, poll-seconds: 1 }}\n\
             http: {{ listen: 127.0.0.1:{port}, token: {{ file: api-token }}, header-timeout-seconds: 1 }}\n",
            setup.rules.display(),
        ),
    )
    .expect("config");
    let mut engine = Engine::start(setup, &config);
    wait_for(&mut engine, Duration::from_secs(30), "the API", || {
        call(port, "GET", "/health", None, None).is_some_and(|a| a.status == 200)
    });
    (engine, port)
}

#[test]
fn hostile_input_fails_fast_and_never_holds_the_engine() {
    use crate::api::{TOKEN, call};
    use std::io::{Read, Write};
    let setup = Setup::with_directory();
    let (mut engine, port) = engine_with_api(&setup);

    // A 400 KB import nested 200,000 deep: refused at once, over the API
    // and from a file, and the engine goes on.
    let deep = format!(
        "companies: {}{}\n",
        "[".repeat(200_000),
        "]".repeat(200_000)
    );
    let answer = call(port, "POST", "/import", Some(TOKEN), Some(&deep)).expect("answer");
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(
        answer.body.contains("nesting deeper than 64 levels"),
        "{}",
        answer.body
    );
    let file = setup.dir.path().join("deep.yaml");
    std::fs::write(&file, &deep).expect("write");
    let run = setup.relais(&["import", file.to_str().expect("utf-8")]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("deep.yaml:1:"), "{}", run.stderr);

    // A client that sends half its headers and waits is disconnected.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .expect("write");
    let mut rest = Vec::new();
    let read = slow.read_to_end(&mut rest);
    assert!(read.is_ok(), "the server closed the connection: {read:?}");
    assert!(
        call(port, "GET", "/health", None, None).is_some_and(|a| a.status == 200),
        "the API still answers"
    );

    // A template that loops for ever is refused by the reload, which says
    // why; the set in use stays.
    std::fs::write(
        setup.dir.path().join("templates/bomb.jinja"),
        "{% for a in range(100000) %}{% for b in range(100000) %}{{ a }}{% endfor %}{% endfor %}",
    )
    .expect("write");
    wait_for(
        &mut engine,
        Duration::from_secs(30),
        "the refused reload",
        || {
            let status = setup.relais(&["status", "--json"]);
            let view: Value = serde_json::from_str(&status.stdout).unwrap_or(Value::Null);
            view["last-reload"]["ok"] == false
        },
    );
    let status = setup.relais(&["status", "--json"]);
    assert!(status.stdout.contains("too much work"), "{}", status.stdout);
    // And SIGTERM is not held by anything.
    let stopping = std::time::Instant::now();
    assert!(engine.stop().success(), "{}", engine.log());
    assert!(
        stopping.elapsed() < Duration::from_secs(15),
        "SIGTERM waited {:?}",
        stopping.elapsed()
    );
}

/// `engine.yaml` for an engine on the set-up's store, rules and the shipped
/// templates, reading `spool/`; `extra` is appended.
pub fn spool_engine(setup: &Setup, extra: &str) -> std::path::PathBuf {
    let config = setup.dir.path().join("engine.yaml");
    std::fs::write(
        &config,
        format!(
            "{TEST_CONFIG}database: relais.db\nrules: {}\ntemplates: {}\nspool: spool\n{extra}",
            setup.rules.display(),
            crate::support::root().join("templates").display()
        ),
    )
    .expect("config");
    config
}

/// An engine on `config`, not started yet.
pub fn engine_on(setup: &Setup, config: std::path::PathBuf) -> Engine {
    Engine {
        child: None,
        config,
        dir: setup.dir.path().to_path_buf(),
        log: setup.dir.path().join("relais.log"),
    }
}

/// How many times each mail was processed (duplicates aside) must be one.
pub fn assert_processed_once(setup: &Setup, ids: &[String]) {
    let store = setup.store();
    for id in ids {
        let processings = store
            .runs_of_mail(id)
            .expect("runs")
            .into_iter()
            .filter_map(|run| store.run(run).expect("run"))
            .filter(|run| run.outcome != "duplicate")
            .count();
        assert_eq!(processings, 1, "{id}");
    }
}

/// `count` mails to CatchMail from strangers (each its own address, so no
/// rate limit applies), each answered with an `unknown-sender` notice.
pub fn stranger_mails(dir: &Path, prefix: &str, domain: &str, count: usize) -> Vec<String> {
    std::fs::create_dir_all(dir).expect("mkdir");
    (0..count)
        .map(|n| {
            let id = format!("{prefix}-{n}@{domain}");
            let from = format!("stranger-{n}@{domain}");
            write_mail(
                dir,
                &format!("{prefix}-{n:04}.eml"),
                &[
                    ("From", &from),
                    ("To", "catchmail@acme.example"),
                    ("Subject", "#23010203 *message*"),
                    ("Message-ID", &format!("<{id}>")),
                ],
                "Bonjour",
            );
            id
        })
        .collect()
}

/// SIGKILLs the engine `kills` times, each time once more outbox mail was
/// recorded sent than before, then lets it finish; returns how many
/// kills landed while mail was still queued.
pub fn kill_while_sending(engine: &mut Engine, setup: &Setup, kills: usize, total: usize) -> usize {
    let mut landed = 0;
    for _ in 0..kills {
        let before = sent_count(setup);
        if before >= total {
            break;
        }
        engine.spawn();
        let started = std::time::Instant::now();
        while sent_count(setup) <= before && started.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(3));
        }
        engine.kill();
        landed += 1;
    }
    engine.spawn();
    landed
}

/// An engine on `config` killed 20 times while it sends `total` mails,
/// then left to send them all; it and how many kills landed.
pub fn crash_while_sending(
    setup: &Setup,
    config: std::path::PathBuf,
    total: usize,
) -> (Engine, usize) {
    let mut engine = engine_on(setup, config);
    let kills = kill_while_sending(&mut engine, setup, 20, total);
    assert!(kills >= 5, "too few kills landed while sending: {kills}");
    wait_for(
        &mut engine,
        Duration::from_secs(120),
        "every mail sent",
        || sent_count(setup) == total,
    );
    (engine, kills)
}

pub fn sent_count(setup: &Setup) -> usize {
    setup
        .store()
        .outbox(Some("sent"), 100_000)
        .map(|m| m.len())
        .unwrap_or(0)
}

#[test]
fn twenty_sigkills_while_delivering_to_the_pickup_folder_give_each_file_once() {
    let setup = Setup::with_directory();
    let total = 300;
    let ids = stranger_mails(
        &setup.dir.path().join("spool"),
        "pickup",
        "elsewhere.example",
        total,
    );
    let config = spool_engine(&setup, "");
    // A reader takes each delivered file away as soon as it appears (as a
    // mail server's pickup does), never the hidden ones.
    let outbox = setup.dir.path().join("outbox");
    let taken_dir = setup.dir.path().join("taken");
    std::fs::create_dir_all(&outbox).expect("mkdir");
    std::fs::create_dir_all(&taken_dir).expect("mkdir");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (outbox, taken_dir, stop) = (outbox.clone(), taken_dir.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut taken: Vec<String> = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for entry in std::fs::read_dir(&outbox).into_iter().flatten().flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name.starts_with('.') || !name.ends_with(".eml") {
                        continue;
                    }
                    let to = taken_dir.join(format!("{}-{name}", taken.len()));
                    if std::fs::rename(entry.path(), to).is_ok() {
                        taken.push(name);
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            taken
        })
    };
    let (mut engine, kills) = crash_while_sending(&setup, config, total);
    std::thread::sleep(Duration::from_millis(300));
    assert!(engine.stop().success(), "{}", engine.log());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let taken = reader.join().expect("reader");
    let mut seen = std::collections::HashMap::new();
    for name in &taken {
        *seen.entry(name.clone()).or_insert(0) += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    println!(
        "pickup crash test: {kills} SIGKILLs while delivering {total} notices, {} files taken twice",
        twice.len()
    );
    assert!(
        twice.is_empty(),
        "taken twice after {kills} kills: {twice:?}"
    );
    assert_eq!(seen.len(), total, "every notice taken once");
    // Each mail was processed once, whatever the kills.
    assert_processed_once(&setup, &ids);
}

#[test]
fn every_command_reads_the_config_it_is_given() {
    let setup = Setup::with_directory();
    // The set-up's own store has the directory; this config names another
    // store, which gets it too, and its own identity.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let config = elsewhere.path().join("desk.yaml");
    std::fs::write(
        &config,
        format!(
            "{TEST_CONFIG}database: desk.db\nrules: {}\ntemplates: {}\n\
             identity: {{ address: helpdesk@acme.example, name: Help Desk, message-id-domain: desk.acme.example }}\n",
            crate::support::root().join("rules").display(),
            crate::support::root().join("templates").display()
        ),
    )
    .expect("config");
    let relais = |args: &[&str]| -> crate::support::Run {
        std::process::Command::new(env!("CARGO_BIN_EXE_relais"))
            .current_dir(setup.dir.path())
            .env("RELAIS_CONFIG", &config)
            .env_remove("RELAIS_DB")
            .args(args)
            .output()
            .expect("relais runs")
            .into()
    };
    let directory = crate::support::fixture("design-example.yaml");
    assert_eq!(
        relais(&["import", directory.to_str().expect("utf-8")]).code,
        0
    );
    let stranger = fixture("mails/catchmail-stranger.eml");
    let run = relais(&["ingest", stranger.to_str().expect("utf-8")]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        elsewhere.path().join("desk.db").exists(),
        "the config's store"
    );
    let outbox = relais(&["outbox", "--json"]);
    let mail: Value =
        serde_json::from_str(outbox.stdout.lines().next().expect("a mail")).expect("json");
    assert!(
        mail["message-id"]
            .as_str()
            .is_some_and(|id| id.ends_with("@desk.acme.example")),
        "{mail}"
    );
    assert!(mail["headers"].to_string().contains("Help Desk"), "{mail}");
    let runs = relais(&["runs", "--json"]);
    let runs: Vec<Value> = runs
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("json"))
        .collect();
    // The mail's run, and the import's (a manual write).
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[1]["trigger"], "manual", "{runs:?}");
    assert_eq!(runs[0]["trigger"], "mail-received", "{runs:?}");
    let shown = relais(&["runs", "show", &runs[0]["id"].to_string()]);
    assert!(
        shown.stdout.contains("  sender:   pass"),
        "{}",
        shown.stdout
    );
    // The set-up's own store saw none of it.
    assert!(crate::support::event_runs(&setup.store(), 10).is_empty());
}

#[test]
fn only_a_plugin_that_declares_mail_anyone_may_mail_outside_the_directory() {
    let rules = "rules:
  - id: outside
    on: mail-received
    when: { subject: { contains: '[outside]' } }
    run: { plugin: misbehave, config: { do: mail, to: outsider@elsewhere.example } }
  - id: staff
    on: mail-received
    when: { subject: { contains: '[staff]' } }
    run: { plugin: misbehave, config: { do: mail, to: paul@acme.example } }
  - id: forward
    on: mail-received
    when: { subject: { contains: '[forward]' } }
    run: { plugin: courier, config: { to: tickets@outside-service.example } }
";
    let setup = Setup::with_directory().with_rules(&[("mail.yaml", rules)]);
    setup.install_plugin(&crate::support::test_plugin("misbehave"), "misbehave.wasm");
    setup.install_plugin(&crate::support::test_plugin("courier"), "courier.wasm");
    let dir = setup.dir.path().join("mails");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for tag in ["outside", "staff", "forward"] {
        write_mail(
            &dir,
            &format!("{tag}.eml"),
            &[
                ("From", "jeanne@dupont.example"),
                ("To", "robot@acme.example"),
                ("Subject", &format!("[{tag}]")),
                ("Message-ID", &format!("<{tag}@dupont.example>")),
            ],
            "hello",
        );
    }
    let (_, lines) = setup.ingest_json(&[], &[&dir]);
    let by = |tag: &str| {
        lines
            .iter()
            .find(|l| l["message-id"] == format!("{tag}@dupont.example"))
            .unwrap_or_else(|| panic!("{tag}: {lines:?}"))
            .clone()
    };
    let outside = by("outside");
    assert_eq!(outside["outcome"], "failed", "{outside}");
    assert!(
        outside["error"].as_str().is_some_and(|e| e.contains(
            "outsider@elsewhere.example is in no directory record: a plugin mails only collaborators and contacts unless it declares the `mail-anyone` capability"
        )),
        "{outside}"
    );
    assert_eq!(by("staff")["outcome"], "applied");
    assert_eq!(by("forward")["outcome"], "applied");
    // `relais check` and `relais plugins` name the plugin that may.
    let check = setup.relais(&["check"]);
    assert_eq!(check.code, 0, "{check:?}");
    assert!(
        check
            .stdout
            .contains("note: plugin `courier` may mail addresses outside the directory (capability mail-anyone)"),
        "{}",
        check.stdout
    );
    let plugins = setup.relais(&["plugins"]);
    assert!(
        plugins
            .stdout
            .lines()
            .any(|l| l.starts_with("courier") && l.contains("mail-anyone")),
        "{}",
        plugins.stdout
    );
}

/// Standard base64, for a DKIM key record.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A DNS server on loopback (Debian's dnsmasq) answering these TXT
/// records and nothing else; stopped when dropped.
struct Dns {
    child: std::process::Child,
    port: u16,
}

impl Dns {
    fn start(records: &[(&str, &str)]) -> Dns {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("a free port")
            .port();
        let mut command = std::process::Command::new("dnsmasq");
        command.args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--conf-file=/dev/null",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--user=root",
            &format!(
                "--pid-file={}",
                std::env::temp_dir()
                    .join(format!("relais-dns-{port}.pid"))
                    .display()
            ),
            &format!("--port={port}"),
        ]);
        for (name, text) in records {
            command.arg(format!("--txt-record={name},{text}"));
        }
        let child = command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("dnsmasq starts (tests/mail-servers.sh installs it)");
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "dnsmasq answers"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Dns { child, port }
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs dnsmasq: tests/mail-servers.sh start installs it"]
fn relais_verifies_dkim_and_dmarc_itself_against_dns() {
    use mail_auth::common::crypto::Ed25519Key;
    use mail_auth::common::headers::HeaderWriter;
    use mail_auth::dkim::DkimSigner;
    let pkcs8 = Ed25519Key::generate_pkcs8().expect("key");
    let key = Ed25519Key::from_pkcs8_der(&pkcs8).expect("key");
    let record = format!("v=DKIM1; k=ed25519; p={}", base64(&key.public_key()));
    let dns = Dns::start(&[
        ("s1._domainkey.dupont.example", &record),
        ("_dmarc.dupont.example", "v=DMARC1; p=reject"),
    ]);
    let signer = DkimSigner::from_key(key)
        .domain("dupont.example")
        .selector("s1")
        .headers(["From", "To", "Subject", "Message-ID"]);
    let mail = |id: &str, extra: &str, body: &str| {
        format!(
            "{extra}From: Jeanne Martin <jeanne@dupont.example>\r\nTo: catchmail@acme.example\r\n\
             Subject: #23010203 *message*\r\nMessage-ID: <{id}@dupont.example>\r\n\r\n{body}\r\n"
        )
    };
    let signed = |id: &str, body: &str| {
        let text = mail(id, "", body);
        let signature = signer.sign(text.as_bytes()).expect("signed");
        format!("{}{text}", signature.to_header())
    };
    let setup = Setup::with_directory();
    std::fs::write(
        setup.dir.path().join("relais.yaml"),
        format!(
            "authentication: {{ verify: true, nameservers: [127.0.0.1:{}] }}\n",
            dns.port
        ),
    )
    .expect("config");
    let dir = setup.dir.path().join("mails");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let genuine = signed("genuine", "Signé et vérifié.");
    // Signed, then changed on the way.
    let tampered =
        signed("tampered", "Version d'origine.").replace("Version d'origine.", "Fermez tout.");
    // Not signed at all, From Jeanne: her domain's DMARC says reject.
    let unsigned = mail("unsigned", "", "Fermez tout.");
    // A verdict written under Relais's own authserv-id is not ours.
    let posing = mail(
        "posing",
        "Authentication-Results: relais; dkim=pass header.d=dupont.example; dmarc=pass header.from=dupont.example\r\n",
        "Fermez tout.",
    );
    for (name, text) in [
        ("1-genuine", &genuine),
        ("2-tampered", &tampered),
        ("3-unsigned", &unsigned),
        ("4-posing", &posing),
    ] {
        std::fs::write(dir.join(format!("{name}.eml")), text).expect("write");
    }
    let (run, lines) = setup.ingest_json(&[], &[&dir]);
    assert_eq!(run.code, 0, "{run:?}");
    let kinds: Vec<String> = lines
        .iter()
        .map(|line| {
            let effect = &line["effects"][0];
            match effect["kind"].as_str() {
                Some("post-message") => "posted".to_string(),
                Some("reply-failure") => effect["reason"].as_str().unwrap_or("?").to_string(),
                _ => format!("{line}"),
            }
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "posted",
            "sender-not-authenticated",
            "sender-not-authenticated",
            "sender-not-authenticated"
        ],
        "{lines:#?}"
    );
    let messages = setup.store().messages(23010203).expect("messages");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].body, "Signé et vérifié.");
    let trace = setup
        .store()
        .run(lines[0]["run"].as_i64().expect("run"))
        .expect("query")
        .expect("run")
        .trace;
    assert_eq!(trace["authentication"]["authority"], "relais", "{trace}");
    let failed = setup
        .store()
        .run(lines[2]["run"].as_i64().expect("run"))
        .expect("query")
        .expect("run")
        .trace;
    assert_eq!(failed["authentication"]["result"], "fail", "{failed}");
}
