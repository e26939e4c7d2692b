//! Latency from a mail delivered by Postfix into Dovecot to its direct
//! message committed by Relais, with IMAP IDLE: the delivery time is the
//! Maildir file's modification time (Dovecot writes it as it delivers), the
//! commit time is the end of the mail's run in the store.
//!
//! Needs the mail servers: `tests/mail-servers.sh start` then
//! `eval "$(tests/mail-servers.sh env)"`.
//! Run: `cargo bench -p relais --bench imap_latency` (`MAILS=N`, 200 by
//! default, sent 20 per second; `IDLE_CHECK_MS=N` sets the account's
//! `idle-check-ms`).

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use relais::config::{Account, Secret, Security};
use relais::daemon::imap::SourceState;
use relais::daemon::{dispatcher, imap};
use relais::plugins::{Limits, Runtime};
use relais::store::prelude::*;
use relais::{Options, Plugins, Store};
use tokio::sync::{Notify, watch};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        eprintln!(
            "{name} is not set: start the mail servers with `tests/mail-servers.sh start` and `eval \"$(tests/mail-servers.sh env)\"`"
        );
        std::process::exit(2)
    })
}

fn main() {
    let mails = common::sized("MAILS", 200, 5);
    let imap_port: u16 = env("RELAIS_TEST_IMAP_PORT").parse().expect("port");
    let smtp_port: u16 = env("RELAIS_TEST_SMTP_PORT").parse().expect("port");
    let mail_dir = PathBuf::from(env("RELAIS_TEST_MAIL_DIR"));
    let nonce = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let domain = format!("latency-{nonce}.example");
    let inbox = format!("catchmail@{domain}");

    let root = common::root();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("relais.db");
    let mut store = Store::open(&db).expect("store");
    common::import_demo(&mut store);

    let runtime = Runtime::new(Limits::default()).expect("runtime");
    let plugins = Plugins::load(&runtime, &dir.path().join("plugins")).0;
    let rules = relais::rules::load_dir(&root.join("rules"), &plugins).expect("shipped rules");
    // As the daemon runs: plugins decide on a worker beside the writer.
    let readers = vec![Store::open(&db).expect("reader")];
    let (jobs, _thread) = dispatcher::spawn(dispatcher::Engine {
        store,
        readers,
        active: Arc::new(relais::reload::Active::new(
            relais::reload::Generation::new(rules, plugins, Arc::new(relais::Templates::new())),
        )),
        metrics: Arc::new(relais::metrics::Metrics::new()),
        options: Options::default(),
        batch: 256,
        wake: Arc::new(Notify::new()),
    })
    .expect("dispatcher");

    let io = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let account = Account {
        name: "catchmail".into(),
        host: "127.0.0.1".into(),
        port: Some(imap_port),
        security: Security::Plain,
        username: inbox.clone(),
        password: Secret {
            env: Some("RELAIS_TEST_MAIL_PASSWORD".into()),
            file: None,
        },
        mailbox: "INBOX".into(),
        move_to: None,
        idle: true,
        poll_seconds: 60,
        idle_check_ms: std::env::var("IDLE_CHECK_MS")
            .ok()
            .and_then(|v| v.parse().ok()),
        delete_after_days: None,
        identity: None,
    };
    let state = Arc::new(Mutex::new(SourceState::Connecting));
    let (_stop, shutdown) = watch::channel(false);
    io.spawn(imap::run(
        account,
        Store::open(&db).expect("store"),
        jobs,
        None,
        state.clone(),
        32 << 20,
        shutdown,
    ));
    let started = Instant::now();
    while *state.lock().expect("state") != SourceState::Connected {
        assert!(started.elapsed() < Duration::from_secs(20), "IMAP login");
        std::thread::sleep(Duration::from_millis(20));
    }

    let template = common::demo_mail("01-contact-message.eml");
    let smtp = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(smtp_port)
        .build();
    let ids: Vec<String> = (0..mails).map(|n| format!("lat-{n}@{domain}")).collect();
    for id in &ids {
        let raw = common::with_message_id(&template, id);
        let envelope = lettre::address::Envelope::new(
            Some("jeanne@dupont.example".parse().expect("address")),
            vec![inbox.parse().expect("address")],
        )
        .expect("envelope");
        io.block_on(smtp.send_raw(&envelope, raw.as_bytes()))
            .expect("Postfix takes the mail");
        std::thread::sleep(Duration::from_millis(50));
    }

    let check = Store::open(&db).expect("store");
    let started = Instant::now();
    while ids.iter().any(|id| !check.mail_exists(id).unwrap_or(false)) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "every mail processed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let delivered = delivery_times(
        &mail_dir
            .join("mail")
            .join(&domain)
            .join("catchmail/Maildir"),
    );
    let mut latencies: Vec<Duration> = Vec::new();
    for id in &ids {
        let run = check
            .runs_of_mail(id)
            .expect("runs")
            .into_iter()
            .filter_map(|run| check.run(run).expect("run"))
            .find(|run| run.outcome == "applied")
            .expect("processed");
        let started_at = chrono::DateTime::parse_from_rfc3339(&run.started_at).expect("time");
        let committed = SystemTime::from(started_at) + Duration::from_micros(run.duration_us);
        let delivered_at = delivered
            .iter()
            .find(|(i, _)| i == id)
            .expect("delivered")
            .1;
        latencies.push(committed.duration_since(delivered_at).unwrap_or_default());
    }
    latencies.sort();
    let at = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    let mode = match std::env::var("IDLE_CHECK_MS") {
        Ok(ms) => format!("IDLE with idle-check-ms: {ms}"),
        Err(_) => "IDLE alone".to_string(),
    };
    println!("{mails} mails through Postfix into Dovecot, {mode}, to the direct message committed");
    println!(
        "latency median {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        at(1.0).as_secs_f64() * 1e3
    );
}

/// (Message-ID, delivery time) of every mail in a Maildir.
fn delivery_times(maildir: &Path) -> Vec<(String, SystemTime)> {
    let mut times = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(maildir.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let id = text
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
                .map(|l| l[11..].trim().trim_matches(['<', '>']).to_string());
            let modified = entry.metadata().and_then(|m| m.modified());
            if let (Some(id), Ok(modified)) = (id, modified) {
                times.push((id, modified));
            }
        }
    }
    times
}
