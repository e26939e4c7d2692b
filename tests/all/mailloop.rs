//! The mail loop against real servers: Postfix (SMTP) delivers into Dovecot
//! (IMAP with IDLE), `relais run` picks mail up over IMAP and sends its
//! failure notices back through Postfix. The servers come from
//! `tests/mail-servers.sh start` (which `tests/run.sh` runs); these tests are
//! ignored by a bare `cargo test` and run with `--include-ignored`.
//!
//! Tests share the servers but not mailboxes: each uses its own CatchMail
//! address (`catchmail@<test>.example`) and Message-IDs of its own.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Engine, Setup, root, wait_for};
use relais::store::prelude::*;

/// The servers' coordinates, from `tests/mail-servers.sh env`, and a hold
/// on them: shared by tests that only use them, exclusive for the tests
/// that stop and start them.
struct Servers {
    imap_port: u16,
    smtp_port: u16,
    mail_dir: PathBuf,
    _hold: Hold,
}

#[allow(dead_code)]
enum Hold {
    Shared(std::sync::RwLockReadGuard<'static, ()>),
    Exclusive(std::sync::RwLockWriteGuard<'static, ()>),
}

static SERVERS: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// The servers, shared with other tests.
fn servers() -> Servers {
    coordinates(Hold::Shared(
        SERVERS.read().unwrap_or_else(|e| e.into_inner()),
    ))
}

/// The servers, for a test that stops and starts them.
fn servers_exclusive() -> Servers {
    coordinates(Hold::Exclusive(
        SERVERS.write().unwrap_or_else(|e| e.into_inner()),
    ))
}

fn coordinates(hold: Hold) -> Servers {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: start the servers with `tests/mail-servers.sh start` and `eval \"$(tests/mail-servers.sh env)\"`, or run tests/run.sh")
        })
    };
    Servers {
        imap_port: var("RELAIS_TEST_IMAP_PORT").parse().expect("port"),
        smtp_port: var("RELAIS_TEST_SMTP_PORT").parse().expect("port"),
        mail_dir: PathBuf::from(var("RELAIS_TEST_MAIL_DIR")),
        _hold: hold,
    }
}

/// Runs the harness script (stop and start one server).
fn harness(args: &[&str]) {
    let status = Command::new(root().join("tests/mail-servers.sh"))
        .args(args)
        .status()
        .expect("harness runs");
    assert!(status.success(), "mail-servers.sh {args:?} failed");
}

impl Servers {
    /// A user's Maildir (`new/` and `cur/` hold its mail).
    fn maildir(&self, address: &str) -> PathBuf {
        let (local, domain) = address.split_once('@').expect("an address");
        self.mail_dir
            .join("mail")
            .join(domain.to_lowercase())
            .join(local.to_lowercase())
            .join("Maildir")
    }

    /// Every mail in a user's Maildir, as (file name, text).
    fn mails(&self, address: &str) -> Vec<(String, String)> {
        let mut mails = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.maildir(address).join(sub)) else {
                continue;
            };
            for entry in entries.flatten() {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                mails.push((entry.file_name().to_string_lossy().into_owned(), text));
            }
        }
        mails
    }

    /// Mails in `address`'s mailbox that answer `message_id`.
    fn replies_to(&self, address: &str, message_id: &str) -> Vec<String> {
        let needle = format!("In-Reply-To: <{message_id}>");
        self.mails(address)
            .into_iter()
            .map(|(_, text)| text)
            .filter(|text| text.contains(&needle))
            .collect()
    }

    /// Sends a raw mail through Postfix with this envelope.
    fn send(&self, from: &str, to: &str, raw: &str) {
        let stream = TcpStream::connect(("127.0.0.1", self.smtp_port)).expect("SMTP connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut writer = stream;
        let mut expect = |code: &str| loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("SMTP answers");
            assert!(
                line.starts_with(code),
                "SMTP: expected {code}, got {line:?}"
            );
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        };
        expect("220");
        let mut command = |text: &str, code: &str| {
            writer
                .write_all(format!("{text}\r\n").as_bytes())
                .expect("SMTP write");
            expect(code);
        };
        command("EHLO test.example", "250");
        command(&format!("MAIL FROM:<{from}>"), "250");
        command(&format!("RCPT TO:<{to}>"), "250");
        command("DATA", "354");
        let body = raw.replace("\r\n", "\n").replace('\n', "\r\n");
        let dotted: String = body
            .split("\r\n")
            .map(|line| {
                if line.starts_with('.') {
                    format!(".{line}\r\n")
                } else {
                    format!("{line}\r\n")
                }
            })
            .collect();
        command(&format!("{dotted}."), "250");
        command("QUIT", "221");
    }
}

/// A name no other test run uses: mailboxes and Message-IDs outlive a run
/// in the servers' store.
fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{name}-{:x}", nanos % (1 << 40))
}

/// A demo mail with a Message-ID of its own.
fn demo_mail(file: &str, message_id: &str) -> String {
    let text = std::fs::read_to_string(root().join("demo/mails").join(file)).expect("demo mail");
    text.lines()
        .map(|line| {
            if line.to_ascii_lowercase().starts_with("message-id:") {
                format!("Message-ID: <{message_id}>")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// A CatchMail set-up on `catchmail@<name>.example`, with the demo
/// directory imported; `extra` is appended to the config.
fn engine_config(setup: &Setup, servers: &Servers, name: &str, extra: &str) -> PathBuf {
    engine_config_with(setup, servers, name, "", extra)
}

/// [`engine_config`] with more IMAP accounts (`accounts` items, indented
/// as list items of `accounts:`).
fn engine_config_with(
    setup: &Setup,
    servers: &Servers,
    name: &str,
    accounts: &str,
    extra: &str,
) -> PathBuf {
    let demo = setup.relais(&[
        "import",
        root().join("demo/directory.yaml").to_str().expect("utf-8"),
    ]);
    assert_eq!(demo.code, 0, "{demo:?}");
    let config = format!(
        "database: relais.db
rules: {rules}
plugins: plugins
templates: {templates}
spool: ~
accounts:
  - name: catchmail
    host: 127.0.0.1
    port: {imap}
    security: plain
    username: catchmail@{name}.example
    password: {{ env: RELAIS_TEST_MAIL_PASSWORD }}
{accounts}outbox:
  smtp: {{ host: 127.0.0.1, port: {smtp}, security: plain }}
  retry-seconds: 1
  max-retry-seconds: 2
identity: {{ address: catchmail@{name}.example, message-id-domain: {name}.example }}
authentication: {{ trusted-authserv-ids: [mx.acme.example] }}
{extra}",
        rules = root().join("rules").display(),
        templates = root().join("templates").display(),
        imap = servers.imap_port,
        smtp = servers.smtp_port,
    );
    let path = setup.dir.path().join("relais.yaml");
    std::fs::write(&path, config).expect("write config");
    path
}

/// An engine with the HTTP API on a free port, its config from
/// [`engine_config_with`]; returns it once the API answers.
fn start_with_api(setup: &Setup, servers: &Servers, name: &str, accounts: &str) -> (Engine, u16) {
    use crate::api::{TOKEN, call};
    std::fs::write(setup.dir.path().join("api-token"), TOKEN).expect("token");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let config = engine_config_with(
        setup,
        servers,
        name,
        accounts,
        &format!("http: {{ listen: 127.0.0.1:{port}, token: {{ file: api-token }} }}\n"),
    );
    let mut engine = Engine::start(setup, &config);
    wait_for(&mut engine, Duration::from_secs(30), "the API", || {
        call(port, "GET", "/health", None, None).is_some_and(|a| a.status == 200)
    });
    (engine, port)
}

fn processed(setup: &Setup, message_id: &str) -> bool {
    setup.store().mail(message_id).expect("store").is_some()
}

/// CatchMail messages on request 23010203 whose body contains `token`.
fn posted(setup: &Setup, token: &str) -> usize {
    setup
        .store()
        .messages(23010203)
        .expect("messages")
        .iter()
        .filter(|m| m.body.contains(token))
        .count()
}

#[test]
#[ignore = "needs the mail servers: tests/mail-servers.sh start"]
fn mail_through_postfix_and_dovecot_becomes_messages_and_notices() {
    let servers = servers();
    let setup = Setup::new();
    let name = unique("e2e");
    let config = engine_config(&setup, &servers, &name, "");
    let mut engine = Engine::start(&setup, &config);
    let inbox = &format!("catchmail@{name}.example");

    let good = &format!("{name}-good@dupont.example");
    let locked = &format!("{name}-locked@dupont.example");
    let automatic = &format!("{name}-auto@dupont.example");
    let mail = demo_mail("01-contact-message.eml", good).replace("Bonjour", "Bonjour e2e-token");
    servers.send("jeanne@dupont.example", inbox, &mail);
    servers.send(
        "jeanne@dupont.example",
        inbox,
        &demo_mail("03-locked-conversation.eml", locked),
    );
    servers.send(
        "marc@dupont.example",
        inbox,
        &demo_mail("06-out-of-office.eml", automatic),
    );

    wait_for(&mut engine, Duration::from_secs(30), "three mails", || {
        [good, locked, automatic]
            .iter()
            .all(|id| processed(&setup, id))
    });
    assert_eq!(posted(&setup, "e2e-token"), 1, "one direct message");

    // The notice comes back through Postfix into the sender's mailbox.
    wait_for(
        &mut engine,
        Duration::from_secs(30),
        "the failure notice",
        || {
            !servers
                .replies_to("jeanne@dupont.example", locked)
                .is_empty()
        },
    );
    let notices = servers.replies_to("jeanne@dupont.example", locked);
    assert_eq!(notices.len(), 1, "exactly one notice");
    let notice = &notices[0];
    for header in [
        "Return-Path: <>",
        "Auto-Submitted: auto-replied",
        &format!("References: <{locked}>"),
        &format!("X-Loop: catchmail@{name}.example"),
        "X-Relais-Reason: conversation-locked",
    ] {
        assert!(notice.contains(header), "missing {header:?} in:\n{notice}");
    }
    // Automatic mail is never answered.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        servers
            .replies_to("marc@dupont.example", automatic)
            .is_empty(),
        "an out-of-office got an answer"
    );

    // Each mail is flagged \Seen on the server once processed.
    wait_for(&mut engine, Duration::from_secs(10), "\\Seen flags", || {
        let mails = servers.mails(inbox);
        mails.len() == 3
            && mails
                .iter()
                .all(|(name, _)| name.split(":2,").nth(1).is_some_and(|f| f.contains('S')))
    });
}

#[test]
#[ignore = "needs the mail servers: tests/mail-servers.sh start"]
fn the_engine_stops_cleanly_on_sigterm() {
    let servers = servers();
    let setup = Setup::new();
    let name = unique("sigterm");
    let config = engine_config(&setup, &servers, &name, "");
    let mut engine = Engine::start(&setup, &config);
    let log = engine.log.clone();
    wait_for(
        &mut engine,
        Duration::from_secs(20),
        "the connection",
        || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("IMAP account connected")
        },
    );
    let status = engine.stop();
    assert!(status.success(), "exit {status:?}: {}", engine.log());
    assert!(engine.log().contains("stopped"), "{}", engine.log());
}

#[test]
#[ignore = "needs the mail servers: tests/mail-servers.sh start"]
fn a_permanently_rejected_recipient_marks_the_notice_failed() {
    let servers = servers();
    let setup = Setup::new();
    let name = unique("reject");
    let config = engine_config(&setup, &servers, &name, "");
    let mut engine = Engine::start(&setup, &config);
    // An unknown sender whose address Postfix refuses with 550.
    let id = &format!("{name}-1@elsewhere.example");
    let mail = demo_mail("04-unknown-sender.eml", id).replace(
        "someone@elsewhere.example",
        "rejected-user@elsewhere.example",
    );
    servers.send(
        "rejected-user@elsewhere.example",
        &format!("catchmail@{name}.example"),
        &mail,
    );
    wait_for(
        &mut engine,
        Duration::from_secs(30),
        "the failed notice",
        || {
            !setup
                .store()
                .outbox(Some("failed"), 10)
                .expect("outbox")
                .is_empty()
        },
    );
    let failed = setup.store().outbox(Some("failed"), 10).expect("outbox");
    assert_eq!(failed.len(), 1);
    let error = failed[0].last_error.as_deref().unwrap_or_default();
    assert!(
        error.contains("550"),
        "the server's answer is kept: {error}"
    );
    assert_eq!(failed[0].attempts, 1, "a permanent failure is not retried");

    // Retried by hand: queued again, refused again, with its answer.
    let retry = setup.relais(&["outbox", "retry", "--all"]);
    assert_eq!(retry.code, 0, "{retry:?}");
    assert!(retry.stdout.contains("1 mail queued again"), "{retry:?}");
    wait_for(
        &mut engine,
        Duration::from_secs(30),
        "the second attempt",
        || {
            setup
                .store()
                .outbox(Some("failed"), 10)
                .expect("outbox")
                .first()
                .is_some_and(|m| m.attempts == 2)
        },
    );
}

#[test]
#[ignore = "needs the mail servers: tests/mail-servers.sh start"]
fn processed_mail_is_moved_or_deleted_from_the_server_as_configured() {
    let servers = servers();
    for (name, option) in [
        (unique("moved"), "move-to: Processed"),
        (unique("expired"), "delete-after-days: 0"),
        (
            unique("moved-expired"),
            "move-to: Processed\n    delete-after-days: 0",
        ),
    ] {
        let setup = Setup::new();
        let config = engine_config(&setup, &servers, &name, "");
        let text = std::fs::read_to_string(&config).expect("config").replace(
            "    password: { env: RELAIS_TEST_MAIL_PASSWORD }\n",
            &format!("    password: {{ env: RELAIS_TEST_MAIL_PASSWORD }}\n    {option}\n"),
        );
        std::fs::write(&config, text).expect("config");
        let mut engine = Engine::start(&setup, &config);
        let inbox = format!("catchmail@{name}.example");
        let id = format!("{name}-1@dupont.example");
        servers.send(
            "jeanne@dupont.example",
            &inbox,
            &demo_mail("01-contact-message.eml", &id),
        );
        wait_for(&mut engine, Duration::from_secs(30), "the mail", || {
            processed(&setup, &id)
        });
        // Gone from INBOX (the Maildir's own new/ and cur/).
        wait_for(
            &mut engine,
            Duration::from_secs(30),
            "INBOX emptied",
            || servers.mails(&inbox).is_empty(),
        );
        let in_processed: usize = ["new", "cur"]
            .iter()
            .map(|sub| {
                std::fs::read_dir(servers.maildir(&inbox).join(".Processed").join(sub))
                    .map(|d| d.count())
                    .unwrap_or(0)
            })
            .sum();
        if option == "move-to: Processed" {
            assert_eq!(in_processed, 1, "moved to Processed");
        } else if option.starts_with("move-to") {
            // Moved, then deleted from Processed once expired.
            wait_for(
                &mut engine,
                Duration::from_secs(30),
                "Processed emptied",
                || {
                    ["new", "cur"].iter().all(|sub| {
                        std::fs::read_dir(servers.maildir(&inbox).join(".Processed").join(sub))
                            .map(|d| d.count() == 0)
                            .unwrap_or(true)
                    })
                },
            );
            assert!(setup.store().mail(&id).expect("store").is_some());
        } else {
            assert_eq!(in_processed, 0, "deleted, not moved");
            assert!(
                setup.store().mail(&id).expect("store").is_some(),
                "kept in the store"
            );
        }
    }
}

#[test]
#[ignore = "needs the mail servers: tests/mail-servers.sh start"]
fn a_mail_over_the_size_limit_is_kept_and_its_sender_told() {
    let servers = servers();
    let setup = Setup::new();
    let name = unique("huge");
    let config = engine_config(&setup, &servers, &name, "limits: { max-mail-mib: 1 }\n");
    let mut engine = Engine::start(&setup, &config);
    let big = "x".repeat(76);
    let padding: String = (0..20_000).map(|_| format!("{big}\n")).collect();
    let id = &format!("{name}-1@dupont.example");
    let mail = demo_mail("01-contact-message.eml", id) + "\r\n" + &padding;
    let automatic_id = &format!("{name}-auto@dupont.example");
    let automatic = demo_mail("06-out-of-office.eml", automatic_id) + "\r\n" + &padding;
    servers.send(
        "jeanne@dupont.example",
        &format!("catchmail@{name}.example"),
        &mail,
    );
    servers.send(
        "marc@dupont.example",
        &format!("catchmail@{name}.example"),
        &automatic,
    );
    wait_for(
        &mut engine,
        Duration::from_secs(30),
        "both mails kept",
        || processed(&setup, id) && processed(&setup, automatic_id),
    );
    let store = setup.store();
    for message_id in [id, automatic_id] {
        let record = store.mail(message_id).expect("store").expect("kept");
        assert_eq!(record.status, "too-large");
    }
    assert_eq!(posted(&setup, "Bonjour"), 0, "not processed");
    wait_for(&mut engine, Duration::from_secs(30), "the notice", || {
        !servers.replies_to("jeanne@dupont.example", id).is_empty()
    });
    let notice = &servers.replies_to("jeanne@dupont.example", id)[0];
    assert!(
        notice.contains("X-Relais-Reason: mail-too-large"),
        "{notice}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        servers
            .replies_to("marc@dupont.example", automatic_id)
            .is_empty()
    );
}

#[test]
#[ignore = "needs the mail servers: tests/mail-servers.sh start"]
fn big_mails_over_imap_are_fetched_within_the_in_flight_bytes_each_once() {
    let servers = servers();
    let setup = Setup::new();
    let name = unique("inflight");
    // Each mail is about 0.7 MiB: at most one is fetched and waits for its
    // commit at a time.
    let config = engine_config(
        &setup,
        &servers,
        &name,
        "limits: { max-in-flight-mib: 1 }\n",
    );
    let line = format!("{}\n", "x".repeat(76));
    let padding = line.repeat(9_000);
    let ids: Vec<String> = (0..5)
        .map(|n| {
            let id = format!("{name}-{n}@dupont.example");
            let mail = demo_mail("01-contact-message.eml", &id) + "\r\n" + &padding;
            servers.send(
                "jeanne@dupont.example",
                &format!("catchmail@{name}.example"),
                &mail,
            );
            id
        })
        .collect();
    let mut engine = Engine::start(&setup, &config);
    wait_for(&mut engine, Duration::from_secs(60), "every mail", || {
        ids.iter().all(|id| processed(&setup, id))
    });
    assert!(engine.stop().success(), "{}", engine.log());
    crate::safety::assert_processed_once(&setup, &ids);
    assert_eq!(posted(&setup, "Bonjour"), ids.len(), "a message each");
}

#[test]
#[ignore = "needs the mail servers: tests/mail-servers.sh start"]
fn smtp_down_then_back_sends_the_notice_once_later() {
    let servers = servers_exclusive();
    let setup = Setup::new();
    // Mail is taken from a spool folder here: with Postfix down, nothing
    // would reach Dovecot.
    let name = unique("smtpdown");
    let config = engine_config(&setup, &servers, &name, "");
    let text = std::fs::read_to_string(&config)
        .expect("config")
        .replace("spool: ~", "spool: spool");
    std::fs::write(&config, text).expect("config");
    harness(&["stop-smtp"]);
    let mut engine = Engine::start(&setup, &config);
    let id = &format!("{name}-1@dupont.example");
    let spool = setup.dir.path().join("spool");
    std::fs::create_dir_all(&spool).expect("spool");
    std::fs::write(
        spool.join("mail.eml"),
        demo_mail("03-locked-conversation.eml", id),
    )
    .expect("drop");
    wait_for(
        &mut engine,
        Duration::from_secs(30),
        "a failed attempt",
        || {
            setup
                .store()
                .outbox(Some("queued"), 10)
                .expect("outbox")
                .iter()
                .any(|m| m.attempts >= 1)
        },
    );
    let queued = setup.store().outbox(Some("queued"), 10).expect("outbox");
    assert!(
        queued[0].last_error.is_some(),
        "the error is kept: {queued:?}"
    );
    harness(&["start-smtp"]);
    wait_for(&mut engine, Duration::from_secs(60), "the notice", || {
        !servers.replies_to("jeanne@dupont.example", id).is_empty()
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(servers.replies_to("jeanne@dupont.example", id).len(), 1);
    let sent = setup.store().outbox(Some("sent"), 10).expect("outbox");
    assert_eq!(sent.len(), 1);
    assert!(sent[0].attempts >= 2, "{sent:?}");
}

#[test]
#[ignore = "needs the mail servers: tests/mail-servers.sh start"]
fn imap_restart_and_uidvalidity_change_lose_and_repeat_nothing() {
    let servers = servers_exclusive();
    let setup = Setup::new();
    let name = unique("restart");
    let config = engine_config(&setup, &servers, &name, "");
    let mut engine = Engine::start(&setup, &config);
    let inbox = &format!("catchmail@{name}.example");
    let send = |n: usize| {
        let id = format!("{name}-{n}@dupont.example");
        let mail = demo_mail("01-contact-message.eml", &id)
            .replace("Bonjour", &format!("Bonjour restart-token-{n}"));
        servers.send("jeanne@dupont.example", inbox, &mail);
        id
    };
    let first = send(1);
    wait_for(&mut engine, Duration::from_secs(30), "mail 1", || {
        processed(&setup, &first)
    });

    // The IMAP server goes away mid-session; mail arriving meanwhile waits
    // in Postfix's queue.
    harness(&["stop-imap"]);
    let second = send(2);
    std::thread::sleep(Duration::from_secs(2));
    harness(&["start-imap"]);
    wait_for(&mut engine, Duration::from_secs(60), "mail 2", || {
        processed(&setup, &second)
    });
    assert!(engine.log().contains("reconnecting"), "{}", engine.log());

    // A new UIDVALIDITY: the mailbox is read again, but nothing is
    // processed twice.
    harness(&["uidvalidity", inbox, "INBOX"]);
    let third = send(3);
    wait_for(&mut engine, Duration::from_secs(60), "mail 3", || {
        processed(&setup, &third)
    });
    assert!(
        engine.log().contains("UIDVALIDITY changed"),
        "{}",
        engine.log()
    );
    for n in 1..=3 {
        assert_eq!(
            posted(&setup, &format!("restart-token-{n}")),
            1,
            "mail {n} posted exactly once"
        );
    }
}

#[test]
#[ignore = "needs the mail servers: tests/mail-servers.sh start"]
fn sigkill_in_a_batch_then_restart_processes_and_sends_everything_once() {
    let servers = servers();
    let setup = Setup::new();
    let name = unique("crash");
    let config = engine_config(
        &setup,
        &servers,
        &name,
        "limits: { batch: 8 }\nfailure-replies: { per-sender: 1000 }\n",
    );
    let inbox = &format!("catchmail@{name}.example");
    // Half the mails post a message, half get a notice back.
    let total = 600;
    let ids: Vec<String> = (0..total)
        .map(|n| format!("{name}-{n}@dupont.example"))
        .collect();
    for (n, id) in ids.iter().enumerate() {
        let mail = if n % 2 == 0 {
            demo_mail("01-contact-message.eml", id)
                .replace("Bonjour", &format!("Bonjour crash-token-{n}."))
        } else {
            demo_mail("03-locked-conversation.eml", id)
        };
        servers.send("jeanne@dupont.example", inbox, &mail);
    }
    wait_for_delivery(&servers, inbox, total);

    let mut engine = Engine::start(&setup, &config);
    // Killed as soon as the first commits show: the rest is in flight.
    let store = setup.store();
    let started = Instant::now();
    while crate::support::event_runs(&store, 1).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            engine.log()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    engine.kill();
    let done_before = ids.iter().filter(|id| processed(&setup, id)).count();
    assert!(done_before < total, "killed too late to test anything");
    engine.spawn();
    wait_for(&mut engine, Duration::from_secs(120), "every mail", || {
        ids.iter().all(|id| processed(&setup, id))
    });
    for n in (0..ids.len()).step_by(2) {
        assert_eq!(
            posted(&setup, &format!("crash-token-{n}.")),
            1,
            "mail {n} posted once"
        );
    }
    crate::safety::assert_processed_once(&setup, &ids);
    wait_for(&mut engine, Duration::from_secs(60), "every notice", || {
        ids.iter()
            .enumerate()
            .filter(|(n, _)| n % 2 == 1)
            .all(|(_, id)| !servers.replies_to("jeanne@dupont.example", id).is_empty())
    });
    std::thread::sleep(Duration::from_secs(2));
    for (n, id) in ids.iter().enumerate().filter(|(n, _)| n % 2 == 1) {
        assert_eq!(
            servers.replies_to("jeanne@dupont.example", id).len(),
            1,
            "notice {n} sent once"
        );
    }
}

/// Waits until Dovecot holds `count` mails for `address`.
fn wait_for_delivery(servers: &Servers, address: &str, count: usize) {
    let started = Instant::now();
    while servers.mails(address).len() < count {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "Postfix delivered {} of {count} mails",
            servers.mails(address).len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn failure_notices_are_rate_limited_per_sender() {
    let setup = Setup::new();
    let demo = setup.relais(&[
        "import",
        root().join("demo/directory.yaml").to_str().expect("utf-8"),
    ]);
    assert_eq!(demo.code, 0, "{demo:?}");
    let dir = setup.dir.path().join("mails");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for n in 0..7 {
        let mail = demo_mail(
            "03-locked-conversation.eml",
            &format!("rate-{n}@dupont.example"),
        );
        std::fs::write(dir.join(format!("{n}.eml")), mail).expect("write");
    }
    let (_, reports) = setup.ingest_json(&["--account", "catchmail"], &[&dir]);
    assert_eq!(reports.len(), 7);
    let store = setup.store();
    let queued = store.outbox(Some("queued"), 100).expect("outbox");
    let suppressed = store.outbox(Some("suppressed"), 100).expect("outbox");
    assert_eq!(
        queued.len(),
        5,
        "the default: 5 notices per sender per hour"
    );
    assert_eq!(suppressed.len(), 2, "the others are kept, not sent");
    assert!(
        suppressed[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("rate limit")),
        "{suppressed:?}"
    );
}

#[test]
#[ignore = "needs the mail servers: tests/mail-servers.sh start"]
fn alerts_of_requests_saved_over_http_reach_the_recipients_mailboxes() {
    use crate::api::{TOKEN, call, parse_mail};
    let servers = servers();
    let setup = Setup::new();
    let name = unique("alerts");
    let (mut engine, port) = start_with_api(&setup, &servers, &name, "");
    // Recipients of this run only: the servers' mailboxes outlive a run.
    let jeanne = format!("jeanne@{name}.example");
    let paul = format!("paul@{name}.example");
    let directory = setup.dir.path().join("alerts.yaml");
    std::fs::write(
        &directory,
        format!(
            "contacts:
  - {{ id: ct-e2e, name: Jeanne Martin, customer: C001, site: MAIN, email: {jeanne}, alerts: [opened, resolved, closed] }}
collaborators:
  - {{ id: co-e2e, name: Paul Durand, email: {paul}, alerts: [opened, closed] }}
contracts:
  - code: K-E2E
    customer: C001
    alerts: {{ opened: true, resolved: true, closed: true }}
    recipients: {{ contract-contacts: [ct-e2e], site-contacts: [ct-e2e], product-collaborators: [co-e2e] }}
"
        ),
    )
    .expect("write");
    let import = setup.relais(&["import", directory.to_str().expect("utf-8")]);
    assert_eq!(import.code, 0, "{import:?}");

    let put = |state: &str| {
        let mut body = crate::api::request(state);
        body["requester"] = serde_json::json!("ct-e2e");
        body["contract"] = serde_json::json!("K-E2E");
        let answer = call(
            port,
            "PUT",
            "/requests/23070001",
            Some(TOKEN),
            Some(&body.to_string()),
        )
        .expect("answer");
        assert!(answer.status == 200 || answer.status == 201, "{answer:?}");
        answer.json()
    };
    assert_eq!(put("open")["changes"], serde_json::json!(["opened"]));
    assert_eq!(
        put("resolved")["changes"],
        serde_json::json!(["resolved", "state-changed"])
    );
    assert_eq!(
        put("closed")["changes"],
        serde_json::json!(["closed", "state-changed"])
    );

    // jeanne: opened, resolved, closed; paul: opened, closed.
    wait_for_delivery(&servers, &jeanne, 3);
    wait_for_delivery(&servers, &paul, 2);
    let mut received: Vec<(String, String, String)> = servers
        .mails(&jeanne)
        .into_iter()
        .chain(servers.mails(&paul))
        .map(|(_, text)| parse_mail(text.as_bytes()))
        .collect();
    received.sort();
    let subjects: Vec<(&str, &str)> = received
        .iter()
        .map(|(to, subject, _)| (to.as_str(), subject.as_str()))
        .collect();
    let mut expected = vec![
        (jeanne.as_str(), "[CLOTURE] [#23070001] Imprimante en panne"),
        (
            jeanne.as_str(),
            "[OUVERTURE] [#23070001] Imprimante en panne",
        ),
        (
            jeanne.as_str(),
            "[RESOLUTION] [#23070001] Imprimante en panne",
        ),
        (paul.as_str(), "[CLOTURE] [#23070001] Imprimante en panne"),
        (paul.as_str(), "[OUVERTURE] [#23070001] Imprimante en panne"),
    ];
    expected.sort();
    assert_eq!(subjects, expected);
    let resolved = &received
        .iter()
        .find(|(_, s, _)| s.starts_with("[RESOLUTION]"))
        .expect("resolution")
        .2;
    // SMTP ends the body with a line break of its own.
    assert_eq!(
        resolved.trim_end(),
        "Bonjour Jeanne Martin,\n\n\
         La demande 23070001 « Imprimante en panne » de Dupont SA est résolue (état précédent : open).\n\n\
         Si le problème persiste, répondez à ce message.\n\n-- \nAlerte automatique du support"
    );
    let status = engine.stop();
    assert!(status.success(), "{}", engine.log());
}

#[test]
#[ignore = "needs the mail servers: tests/mail-servers.sh start"]
fn a_customers_answer_to_an_alert_lands_on_the_request_it_was_about() {
    use crate::api::{TOKEN, call, parse_mail};
    let servers = servers();
    let setup = Setup::new();
    let name = unique("answer");
    let support = format!("support@{name}.example");
    let (mut engine, port) = start_with_api(
        &setup,
        &servers,
        &name,
        &format!(
            "  - name: support
    host: 127.0.0.1
    port: {imap}
    security: plain
    username: {support}
    password: {{ env: RELAIS_TEST_MAIL_PASSWORD }}
",
            imap = servers.imap_port
        ),
    );
    let jeanne = format!("jeanne@{name}.example");
    let directory = setup.dir.path().join("answer.yaml");
    std::fs::write(
        &directory,
        format!(
            "contacts:
  - {{ id: ct-answer, name: Jeanne Martin, customer: C001, site: MAIN, email: {jeanne}, alerts: [opened] }}
contracts:
  - code: K-ANSWER
    customer: C001
    alerts: {{ opened: true }}
    recipients: {{ contract-contacts: [ct-answer] }}
"
        ),
    )
    .expect("write");
    let import = setup.relais(&["import", directory.to_str().expect("utf-8")]);
    assert_eq!(import.code, 0, "{import:?}");

    // The support system opens a request: Jeanne gets the alert.
    let mut body = crate::api::request("open");
    body["requester"] = serde_json::json!("ct-answer");
    body["contract"] = serde_json::json!("K-ANSWER");
    let answer = call(
        port,
        "PUT",
        "/requests/23070002",
        Some(TOKEN),
        Some(&body.to_string()),
    )
    .expect("answer");
    assert_eq!(answer.status, 201, "{answer:?}");
    wait_for_delivery(&servers, &jeanne, 1);
    let (_, alert) = servers.mails(&jeanne).remove(0);
    let (_, subject, _) = parse_mail(alert.as_bytes());
    assert_eq!(subject, "[OUVERTURE] [#23070002] Imprimante en panne");
    let alert_id = message_id_of(&alert);

    // She answers from Outlook (tag kept, In-Reply-To), then from a client
    // that drops In-Reply-To and whose user edited the tag away: only
    // References carries the alert's id.
    let outlook = format!("{name}-outlook@dupont.example");
    let edited = format!("{name}-edited@dupont.example");
    let reply = |id: &str, subject: &str, threading: &str| {
        format!(
            "From: Jeanne Martin <{jeanne}>\r\nTo: {support}\r\nSubject: {subject}\r\n\
             Message-ID: <{id}>\r\n{threading}Content-Type: text/plain; charset=utf-8\r\n\r\n\
             Toujours en panne ce matin.\r\n\r\nDe : Support\r\nObjet : {subject}\r\n"
        )
    };
    servers.send(
        &jeanne,
        &support,
        &reply(
            &outlook,
            &format!("RE: {subject}"),
            &format!("In-Reply-To: {alert_id}\r\nReferences: {alert_id}\r\nThread-Topic: Imprimante en panne\r\n"),
        ),
    );
    servers.send(
        &jeanne,
        &support,
        &reply(
            &edited,
            "AW: Imprimante en panne",
            &format!("References: {alert_id}\r\n"),
        ),
    );
    wait_for(&mut engine, Duration::from_secs(30), "both answers", || {
        processed(&setup, &outlook) && processed(&setup, &edited)
    });
    let store = setup.store();
    for id in [&outlook, &edited] {
        let mail = store.mail(id).expect("store").expect("stored");
        assert_eq!(mail.account, "support");
        assert_eq!(mail.ticket, Some(23070002), "{id}");
    }
    // The thread shows the alert Relais sent with both answers under it.
    let alert_id = alert_id.trim_start_matches('<').trim_end_matches('>');
    let tree = store.thread_tree(&outlook).expect("store").expect("thread");
    assert_eq!(tree.len(), 1);
    assert_eq!(tree[0].message_id, alert_id);
    let mut replies: Vec<&str> = tree[0]
        .replies
        .iter()
        .map(|r| r.message_id.as_str())
        .collect();
    replies.sort();
    let mut expected = vec![edited.as_str(), outlook.as_str()];
    expected.sort();
    assert_eq!(replies, expected);
    let status = engine.stop();
    assert!(status.success(), "{}", engine.log());
}

/// The README's production set-up, on the test servers: two accounts
/// (catchmail, support), alerts and reminders from the support identity,
/// notices about CatchMail mail from the CatchMail identity, the
/// receiving server's verdict on senders trusted.
fn production_config(setup: &Setup, servers: &Servers, name: &str, port: u16) -> PathBuf {
    std::fs::write(setup.dir.path().join("api-token"), crate::api::TOKEN).expect("token");
    let config = format!(
        "database: relais.db
rules: {rules}
templates: {templates}
spool: ~
accounts:
  - {{ name: catchmail, host: 127.0.0.1, port: {imap}, security: plain, identity: catchmail,
      username: catchmail@{name}.example, password: {{ env: RELAIS_TEST_MAIL_PASSWORD }} }}
  - {{ name: support, host: 127.0.0.1, port: {imap}, security: plain,
      username: support@{name}.example, password: {{ env: RELAIS_TEST_MAIL_PASSWORD }} }}
outbox:
  smtp: {{ host: 127.0.0.1, port: {smtp}, security: plain }}
identity: {{ address: support@{name}.example, name: Acme Support, message-id-domain: {name}.example }}
identities:
  catchmail: {{ address: catchmail@{name}.example, name: Acme CatchMail, reply-to: support@{name}.example }}
authentication: {{ trusted-authserv-ids: [mx.acme.example] }}
http: {{ listen: 127.0.0.1:{port}, token: {{ file: api-token }} }}
",
        rules = root().join("rules").display(),
        templates = root().join("templates").display(),
        imap = servers.imap_port,
        smtp = servers.smtp_port,
    );
    let path = setup.dir.path().join("relais.yaml");
    std::fs::write(&path, config).expect("write config");
    path
}

/// A delivered mail's Message-ID header value, brackets kept.
fn message_id_of(mail: &str) -> String {
    mail.lines()
        .find(|line| line.to_ascii_lowercase().starts_with("message-id:"))
        .and_then(|line| line.split_once(':'))
        .map(|(_, id)| id.trim().to_string())
        .expect("the mail has a Message-ID")
}

/// Where a mail program sends an answer to `mail`: its Reply-To, else its
/// From.
fn answer_address(mail: &str) -> String {
    let header = |name: &str| {
        mail.lines()
            .take_while(|line| !line.is_empty())
            .find(|line| {
                line.to_ascii_lowercase()
                    .starts_with(&format!("{}:", name.to_ascii_lowercase()))
            })
            .and_then(|line| line.split_once(':'))
            .map(|(_, value)| value.trim().to_string())
    };
    let value = header("Reply-To")
        .or_else(|| header("From"))
        .expect("a From");
    match value.rsplit_once('<') {
        Some((_, rest)) => rest.trim_end_matches('>').to_string(),
        None => value,
    }
}

#[test]
#[ignore = "needs the mail servers: tests/mail-servers.sh start"]
fn in_production_answers_reach_their_ticket_stop_reminders_and_get_no_notice() {
    use crate::api::{TOKEN, call, parse_mail};
    let servers = servers();
    let setup = Setup::new();
    let name = unique("production");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let demo = setup.relais(&[
        "import",
        root().join("demo/directory.yaml").to_str().expect("utf-8"),
    ]);
    assert_eq!(demo.code, 0, "{demo:?}");
    let jeanne = format!("jeanne@{name}.example");
    let directory = setup.dir.path().join("production.yaml");
    std::fs::write(
        &directory,
        format!(
            "settings: {{ notify-by-email-default: true }}
contacts:
  - {{ id: ct-prod, name: Jeanne Martin, customer: C001, site: MAIN, email: {jeanne}, alerts: [opened] }}
contracts:
  - {{ code: K-PROD, customer: C001, alerts: {{ opened: true }}, recipients: {{ contract-contacts: [ct-prod] }} }}
"
        ),
    )
    .expect("write");
    assert_eq!(
        setup
            .relais(&["import", directory.to_str().expect("utf-8")])
            .code,
        0
    );
    let config = production_config(&setup, &servers, &name, port);
    let mut engine = Engine::start(&setup, &config);
    wait_for(&mut engine, Duration::from_secs(30), "the API", || {
        call(port, "GET", "/health", None, None).is_some_and(|a| a.status == 200)
    });

    // The support system opens a request waiting on Jeanne: she gets the
    // alert, from the support address.
    let mut body = crate::api::request("waiting-customer");
    body["requester"] = serde_json::json!("ct-prod");
    body["contract"] = serde_json::json!("K-PROD");
    let number = 23080001;
    let answer = call(
        port,
        "PUT",
        &format!("/requests/{number}"),
        Some(TOKEN),
        Some(&body.to_string()),
    )
    .expect("answer");
    assert_eq!(answer.status, 201, "{answer:?}");
    wait_for_delivery(&servers, &jeanne, 1);
    let (_, alert) = servers.mails(&jeanne).remove(0);
    let (_, subject, _) = parse_mail(alert.as_bytes());
    let support = answer_address(&alert);
    assert_eq!(support, format!("support@{name}.example"), "{alert}");
    let alert_id = message_id_of(&alert);

    // She answers from her mail program, to where it says: the tag kept,
    // then a second answer with only References.
    let first = format!("{name}-first@dupont.example");
    let second = format!("{name}-second@dupont.example");
    let reply = |id: &str, subject: &str, threading: &str| {
        format!(
            "From: Jeanne Martin <{jeanne}>\r\nTo: {support}\r\nSubject: {subject}\r\n\
             Message-ID: <{id}>\r\n{threading}Content-Type: text/plain; charset=utf-8\r\n\r\n\
             Toujours en panne.\r\n"
        )
    };
    servers.send(
        &jeanne,
        &support,
        &reply(
            &first,
            &format!("RE: {subject}"),
            &format!("In-Reply-To: {alert_id}\r\nReferences: {alert_id}\r\n"),
        ),
    );
    servers.send(
        &jeanne,
        &support,
        &reply(
            &second,
            "Re: Imprimante en panne",
            &format!("References: {alert_id}\r\n"),
        ),
    );
    wait_for(&mut engine, Duration::from_secs(30), "both answers", || {
        processed(&setup, &first) && processed(&setup, &second)
    });
    let store = setup.store();
    let received: Vec<String> = store
        .exchanges(number)
        .expect("exchanges")
        .into_iter()
        .filter(|e| e.direction == "received")
        .filter_map(|e| e.subject)
        .collect();
    assert_eq!(
        received.len(),
        2,
        "both answers are exchanges: {received:?}"
    );

    // A week later the reminder check leaves the request alone: the
    // customer spoke last.
    let at = (chrono::Utc::now() + chrono::TimeDelta::days(8)).to_rfc3339();
    let fired = call(
        port,
        "POST",
        "/rules/waiting-customer-reminders/fire",
        Some(TOKEN),
        Some(&serde_json::json!({ "at": at }).to_string()),
    )
    .expect("fired");
    assert_eq!(fired.status, 200, "{fired:?}");
    let reminded = fired.json()["effects"]
        .as_array()
        .expect("effects")
        .iter()
        .any(|e| e["request"] == number);
    assert!(!reminded, "{}", fired.body);

    // Paul posts through CatchMail: with notify-by-email, Jeanne is told,
    // as a message posted through the API would tell her.
    let paul_post = format!("{name}-paul@acme.example");
    servers.send(
        "paul@acme.example",
        &format!("catchmail@{name}.example"),
        &format!(
            "Authentication-Results: mx.acme.example; dkim=pass header.d=acme.example; dmarc=pass header.from=acme.example\r\n\
             From: Paul Durand <paul@acme.example>\r\nTo: catchmail@{name}.example\r\n\
             Subject: #{number} *message*\r\nMessage-ID: <{paul_post}>\r\n\r\nUn technicien passe demain.\r\n"
        ),
    );
    wait_for_delivery(&servers, &jeanne, 2);
    let messages = setup.store().messages(number).expect("messages");
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0].side, "staff");
    let notification = servers
        .mails(&jeanne)
        .into_iter()
        .map(|(_, text)| text)
        .find(|text| text.contains("Un technicien passe demain."))
        .expect("the notification");
    assert!(
        notification.contains(&format!("[#{number}]")),
        "{notification}"
    );
    assert_eq!(answer_address(&notification), support);

    // Nothing was answered with a failure notice.
    let notices: Vec<_> = setup
        .store()
        .outbox(None, 50)
        .expect("outbox")
        .into_iter()
        .filter(|m| m.mail.kind == "failure-reply")
        .collect();
    assert!(notices.is_empty(), "{notices:?}");
    assert!(engine.stop().success(), "{}", engine.log());
}

#[test]
#[ignore = "needs the mail servers: tests/mail-servers.sh start"]
fn through_postfix_a_forged_sender_posts_nothing_and_the_attacker_hears_nothing() {
    let servers = servers();
    let setup = Setup::new();
    let name = unique("forged");
    let config = engine_config(&setup, &servers, &name, "");
    let mut engine = Engine::start(&setup, &config);
    let inbox = format!("catchmail@{name}.example");
    let attacker = format!("attacker@{name}-evil.example");
    let forged = format!("{name}-forged@dupont.example");
    // From Jeanne, by the attacker's envelope, with a verdict the attacker
    // wrote under another authserv-id; and one with the trusted server's
    // DMARC failure.
    let failed = format!("{name}-failed@dupont.example");
    for (id, results) in [
        (
            &forged,
            "evil.example; dmarc=pass header.from=dupont.example",
        ),
        (
            &failed,
            "mx.acme.example; dmarc=fail (p=reject) header.from=dupont.example",
        ),
    ] {
        servers.send(
            &attacker,
            &inbox,
            &format!(
                "Authentication-Results: {results}\r\nFrom: Jeanne Martin <jeanne@dupont.example>\r\n\
                 To: {inbox}\r\nSubject: #23010203 *message*\r\nMessage-ID: <{id}>\r\n\r\nFermez tout.\r\n"
            ),
        );
    }
    wait_for(&mut engine, Duration::from_secs(30), "both mails", || {
        processed(&setup, &forged) && processed(&setup, &failed)
    });
    assert_eq!(posted(&setup, "Fermez tout"), 0, "nothing posted");
    // Jeanne, the owner of the address, is told; the envelope is not.
    wait_for(&mut engine, Duration::from_secs(30), "the notices", || {
        [&forged, &failed]
            .iter()
            .all(|id| !servers.replies_to("jeanne@dupont.example", id).is_empty())
    });
    for id in [&forged, &failed] {
        let notice = &servers.replies_to("jeanne@dupont.example", id)[0];
        assert!(
            notice.contains("X-Relais-Reason: sender-not-authenticated"),
            "{notice}"
        );
    }
    assert!(servers.mails(&attacker).is_empty(), "the attacker got mail");
    assert!(engine.stop().success(), "{}", engine.log());
}

#[test]
#[ignore = "needs the mail servers: tests/mail-servers.sh start"]
fn twenty_sigkills_while_sending_over_smtp_repeat_at_most_one_mail_each() {
    use crate::safety::{crash_while_sending, spool_engine, stranger_mails};
    let servers = servers();
    let setup = Setup::with_directory();
    let name = unique("smtp-crash");
    let domain = format!("{name}.example");
    let total = 200;
    let ids = stranger_mails(&setup.dir.path().join("spool"), "smtp", &domain, total);
    let config = spool_engine(
        &setup,
        &format!(
            "outbox: {{ smtp: {{ host: 127.0.0.1, port: {}, security: plain }}, retry-seconds: 1, max-retry-seconds: 2 }}\n",
            servers.smtp_port
        ),
    );
    let (mut engine, kills) = crash_while_sending(&setup, config, total);
    let started = Instant::now();
    let delivered = |n: usize| servers.mails(&format!("stranger-{n}@{domain}")).len();
    while (0..total).any(|n| delivered(n) == 0) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not every notice arrived"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    let repeated: usize = (0..total).map(|n| delivered(n).saturating_sub(1)).sum();
    println!(
        "SMTP crash test: {kills} SIGKILLs while sending {total} notices, {repeated} delivered twice"
    );
    assert!(
        repeated <= kills,
        "{repeated} notices repeated after {kills} kills: at most one per kill"
    );
    assert_eq!(ids.len(), total);
    assert!(engine.stop().success(), "{}", engine.log());
}
