//! Plugins decide on worker threads beside the writer: a slow plugin on one
//! mail holds up neither the other mail nor the API, while the mails of
//! one thread still land in arrival order.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::api::{TOKEN, call};
use crate::support::{Engine, Setup, root, test_plugin, wait_for, write_mail};
use relais::store::prelude::*;

const SLEEPY_RULE: &str = "rules:
  - id: slow
    on: mail-received
    when: { subject: { matches: '^sleep ' } }
    run: { plugin: sleepy }
  - id: slow-save
    on: request-saved
    run: { plugin: sleepy }
";

/// A daemon on the demo directory, the shipped rules and a `sleepy` rule,
/// reading `spool/`, with its API on `port`.
fn start(setup: &mut Setup, workers: usize) -> (Engine, u16) {
    let import = setup.relais(&[
        "import",
        root().join("demo/directory.yaml").to_str().expect("utf-8"),
    ]);
    assert_eq!(import.code, 0, "{import:?}");
    let rules = setup.dir.path().join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    for file in ["catchmail.yaml", "ticket-linking.yaml", "alerts.yaml"] {
        std::fs::copy(root().join("rules").join(file), rules.join(file)).expect("copy rules");
    }
    std::fs::write(rules.join("slow.yaml"), SLEEPY_RULE).expect("slow rule");
    setup.rules = rules.clone();
    setup.install_plugin(&test_plugin("sleepy"), "sleepy.wasm");
    // Time enough to hold a mail for seconds.
    std::fs::write(
        setup.plugins_dir().join("limits.yaml"),
        "plugins:\n  sleepy: { timeout-ms: 20000 }\n",
    )
    .expect("limits");
    std::fs::write(setup.dir.path().join("api-token"), TOKEN).expect("token file");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let config = setup.dir.path().join("relais.yaml");
    std::fs::write(
        &config,
        format!(
            "{}database: relais.db
rules: {rules}
templates: {templates}
plugins: plugins
spool: spool
outbox: {{ pickup: outbox }}
http: {{ listen: 127.0.0.1:{port}, token: {{ file: api-token }} }}
limits: {{ plugin-workers: {workers} }}
",
            crate::support::TEST_CONFIG,
            rules = rules.display(),
            templates = root().join("templates").display(),
        ),
    )
    .expect("config");
    std::fs::create_dir_all(setup.dir.path().join("spool")).expect("spool");
    let mut engine = Engine::start(setup, &config);
    wait_for(&mut engine, Duration::from_secs(30), "the API", || {
        call(port, "GET", "/health", None, None).is_some_and(|a| a.status == 200)
    });
    (engine, port)
}

fn mail(spool: &Path, name: &str, from: &str, to: &str, subject: &str, extra: &[(&str, &str)]) {
    let id = format!("<{name}@test.example>");
    let mut headers = vec![
        ("From", from),
        ("To", to),
        ("Subject", subject),
        ("Message-ID", id.as_str()),
    ];
    headers.extend_from_slice(extra);
    // Written under a hidden name, then renamed in: the spool never reads
    // half a file.
    let hidden = write_mail(spool, &format!(".{name}.eml"), &headers, "Bonjour\n");
    std::fs::rename(&hidden, spool.join(format!("{name}.eml"))).expect("rename");
}

/// The id of the run that processed `message_id`, once there is one.
fn run_of(setup: &Setup, message_id: &str) -> Option<i64> {
    setup
        .store()
        .runs_of_mail(message_id)
        .expect("runs")
        .into_iter()
        .next()
}

#[test]
fn a_slow_plugin_delays_neither_other_mail_nor_the_api_and_a_thread_keeps_its_order() {
    let mut setup = Setup::new();
    let (mut engine, port) = start(&mut setup, 2);
    let spool = setup.dir.path().join("spool");

    // A mail whose plugin takes 5 s.
    mail(
        &spool,
        "slow",
        "sleeper@elsewhere.example",
        "support@acme.example",
        "sleep 5000",
        &[],
    );
    std::thread::sleep(Duration::from_millis(500));
    let sent_at = Instant::now();
    // Meanwhile: a CatchMail message from Jeanne, and two mails of one
    // new thread written at once, the second answering the first.
    mail(
        &spool,
        "catchmail",
        "Jeanne Martin <jeanne@dupont.example>",
        "catchmail@acme.example",
        "#23010203 *message*",
        &[(
            "Authentication-Results",
            "mx.acme.example; dmarc=pass header.from=dupont.example",
        )],
    );
    mail(
        &spool,
        "thread-1",
        "Jeanne Martin <jeanne@dupont.example>",
        "support@acme.example",
        "Imprimante du 2e étage",
        &[],
    );
    mail(
        &spool,
        "thread-2",
        "Jeanne Martin <jeanne@dupont.example>",
        "support@acme.example",
        "Re: Imprimante du 2e étage",
        &[
            ("In-Reply-To", "<thread-1@test.example>"),
            ("References", "<thread-1@test.example>"),
        ],
    );
    // And an API write: a new request saved.
    let saved = call(
        port,
        "PUT",
        "/requests/23010290",
        Some(TOKEN),
        Some(&crate::api::request("open").to_string()),
    )
    .expect("an answer");
    assert!(saved.status == 200 || saved.status == 201, "{saved:?}");
    assert!(
        run_of(&setup, "slow@test.example").is_none(),
        "the API answered after the slow mail was committed: it waited for it"
    );
    wait_for(
        &mut engine,
        Duration::from_secs(30),
        "the other mails",
        || {
            ["catchmail", "thread-1", "thread-2"]
                .iter()
                .all(|name| run_of(&setup, &format!("{name}@test.example")).is_some())
        },
    );
    assert!(
        run_of(&setup, "slow@test.example").is_none(),
        "the other mails waited for the slow one ({:?} after they were written)",
        sent_at.elapsed()
    );
    wait_for(
        &mut engine,
        Duration::from_secs(30),
        "the slow mail",
        || run_of(&setup, "slow@test.example").is_some(),
    );

    let store = setup.store();
    // The message was posted; the thread's second mail found the ticket
    // its first one opened.
    let messages = store.messages(23010203).expect("messages");
    assert!(
        messages.iter().any(|m| m.body.contains("Bonjour")),
        "{messages:?}"
    );
    let first = store
        .linked_ticket("thread-1@test.example")
        .expect("query")
        .expect("the first mail of the thread is on a ticket");
    let second = store
        .linked_ticket("thread-2@test.example")
        .expect("query")
        .expect("the answer is on a ticket");
    assert_eq!(first, second, "the answer lands on its thread's ticket");
    let first_run = run_of(&setup, "thread-1@test.example").expect("run");
    let second_run = run_of(&setup, "thread-2@test.example").expect("run");
    assert!(first_run < second_run, "a thread is committed in order");
    let slow = store
        .run(run_of(&setup, "slow@test.example").expect("run"))
        .expect("run")
        .expect("slow run");
    assert_ne!(slow.outcome, "failed", "{slow:?}");
}

#[test]
fn a_slow_plugin_on_one_request_save_delays_neither_other_saves_nor_mail() {
    let mut setup = Setup::new();
    let (mut engine, port) = start(&mut setup, 2);
    let save = move |number: u64, subject: &str| {
        let mut body = crate::api::request("open");
        body["subject"] = subject.into();
        call(
            port,
            "PUT",
            &format!("/requests/{number}"),
            Some(TOKEN),
            Some(&body.to_string()),
        )
        .expect("an answer")
    };
    // A save whose plugin takes 5 s, in a thread of its own: the API
    // answers it once committed.
    let slow = std::thread::spawn(move || {
        let answer = save(23010291, "sleep 5000");
        (answer.status, answer.body)
    });
    std::thread::sleep(Duration::from_millis(500));
    let other = save(23010292, "Imprimante en panne");
    assert_eq!(other.status, 201, "{}", other.body);
    assert!(
        setup.store().request(23010291).expect("query").is_none(),
        "the other save waited for the slow one"
    );
    mail(
        &setup.dir.path().join("spool"),
        "meanwhile",
        "Jeanne Martin <jeanne@dupont.example>",
        "support@acme.example",
        "Imprimante du 3e étage",
        &[],
    );
    wait_for(&mut engine, Duration::from_secs(30), "the mail", || {
        run_of(&setup, "meanwhile@test.example").is_some()
    });
    assert!(
        setup.store().request(23010291).expect("query").is_none(),
        "the mail waited for the slow save"
    );
    let (status, body) = slow.join().expect("the slow save answers");
    assert_eq!(status, 201, "{body}");
    assert!(setup.store().request(23010291).expect("query").is_some());
}
