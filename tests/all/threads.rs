//! Ticket linking (rules/ticket-linking.yaml, bundled plugin `ticket-link`)
//! on real-world reply chains: Outlook, Gmail, Thunderbird, Apple Mail,
//! Lotus Notes, Gnus and broken mailers, in French and English.
//!
//! The corpus of `tests/fixtures/threads/mails` is ingested in one batch,
//! in file name order; each mail says in its headers what must come of it:
//!
//! - `X-Expect: new T1 C001 ct-jeanne SUBJECT`: a new ticket, called `T1`
//!   by the mails that follow, of customer C001, requester ct-jeanne, with
//!   that subject;
//! - `X-Expect: ticket T1` or `X-Expect: ticket 23010203`: linked there;
//! - `X-Expect: reopened 23010150`: that closed ticket reopened (`open`)
//!   and the mail linked to it;
//! - `X-Expect: closed 23010151`: linked to that closed ticket, which
//!   stays closed;
//! - `X-Expect: unlinked`: on no ticket;
//! - `X-Expect-Log: TEXT` (any number): a line of the plugin's log in the
//!   stored run's trace contains TEXT (`{T1}` is the number of `T1`);
//! - `X-Expect-Warning: TEXT`: a warning of the ingest says TEXT.
//!
//! The mails that need an id Relais made up (replies to its alerts) or a
//! header no one would keep as a file (hundreds of References) are written
//! by the tests below. `tests/fixtures/threads/directory.yaml` adds what the
//! corpus needs to the DESIGN.md example directory: a second contact of
//! C001, a second customer C002 with its ticket, an address shared by both
//! customers, two closed tickets and a second collaborator.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::{Setup, fixture};
use relais::store::prelude::*;

/// The requests of the two directory files, before any mail.
const EXISTING: [u64; 4] = [23010150, 23010151, 23010203, 23020001];

/// The DESIGN.md example directory plus the corpus' own
/// (`tests/fixtures/threads/directory.yaml`).
fn setup() -> Setup {
    let setup = Setup::with_directory();
    let directory = fixture("threads/directory.yaml");
    let run = setup.relais(&["import", directory.to_str().expect("utf-8")]);
    assert_eq!(run.code, 0, "{run:?}");
    setup
}

/// A corpus mail.
fn mail(name: &str) -> PathBuf {
    fixture("threads/mails").join(name)
}

/// `relais ingest --json --account ACCOUNT` of these files; checks that
/// every mail was read and its rules ran.
fn ingest(setup: &Setup, account: &str, paths: &[&Path]) -> Vec<Value> {
    let (run, lines) = setup.ingest_json(&["--account", account], paths);
    assert_eq!(run.code, 0, "{run:?}");
    for line in &lines {
        let outcome = line["outcome"].as_str().unwrap_or("?");
        assert!(
            outcome == "applied" || outcome == "duplicate",
            "{}: {line}",
            line["source"]
        );
    }
    lines
}

/// The lines the ticket-link plugin logged for this ingested mail, read
/// back from the stored run's trace.
fn linking_logs(setup: &Setup, line: &Value) -> Vec<String> {
    let run = line["run"].as_i64().expect("recorded run");
    let record = setup.store().run(run).expect("query").expect("run stored");
    record.trace["rules"]
        .as_array()
        .expect("rules in the trace")
        .iter()
        .filter(|rule| rule["id"] == "ticket-linking")
        .flat_map(|rule| rule["logs"].as_array().cloned().unwrap_or_default())
        .map(|log| {
            assert_eq!(log["plugin"], "ticket-link", "{log}");
            log["message"].as_str().expect("message").to_string()
        })
        .collect()
}

/// Panics unless one of `logs` contains `text`.
fn assert_logged(logs: &[String], text: &str) {
    assert!(
        logs.iter().any(|line| line.contains(text)),
        "no log line contains {text:?}; the plugin logged:\n{}",
        logs.join("\n")
    );
}

/// The ticket a stored mail is on.
fn ticket_of(setup: &Setup, message_id: &str) -> Option<u64> {
    setup
        .store()
        .mail(message_id)
        .expect("query")
        .unwrap_or_else(|| panic!("mail <{message_id}> not stored"))
        .ticket
}

fn state_of(setup: &Setup, number: u64) -> String {
    setup
        .store()
        .request(number)
        .expect("query")
        .unwrap_or_else(|| panic!("no request {number}"))
        .state
}

/// The highest request number: no ticket above it must appear unasked.
fn max_request(setup: &Setup) -> u64 {
    let mut number = 23020001;
    while setup.store().request(number + 1).expect("query").is_some() {
        number += 1;
    }
    number
}

// ---------------------------------------------------------------------------
// The corpus

/// What a corpus mail must become, from its `X-Expect` header.
#[derive(Debug)]
enum Expect {
    New {
        name: String,
        customer: String,
        requester: String,
        subject: String,
    },
    Ticket(String),
    Reopened(u64),
    LeftClosed(u64),
    Unlinked,
}

#[derive(Debug)]
struct Expectations {
    expect: Expect,
    logs: Vec<String>,
    warnings: Vec<String>,
}

/// The `X-Expect*` headers of a corpus mail (its header block only).
fn expectations(path: &str) -> Expectations {
    let bytes = std::fs::read(path).expect("read mail");
    let text = String::from_utf8_lossy(&bytes);
    let header = |name: &str| -> Vec<String> {
        text.lines()
            .map(|line| line.trim_end_matches('\r'))
            .take_while(|line| !line.is_empty())
            .filter_map(|line| line.strip_prefix(name))
            .map(|value| value.trim().to_string())
            .collect()
    };
    let [expect] = header("X-Expect: ")
        .try_into()
        .unwrap_or_else(|found| panic!("{path}: one X-Expect header wanted, found {found:?}"));
    let words: Vec<&str> = expect.splitn(5, ' ').collect();
    let number = |word: &str| -> u64 {
        word.parse()
            .unwrap_or_else(|_| panic!("{path}: `{expect}`: not a ticket number"))
    };
    let expect = match words.as_slice() {
        ["new", name, customer, requester, subject] => Expect::New {
            name: name.to_string(),
            customer: customer.to_string(),
            requester: requester.to_string(),
            subject: subject.to_string(),
        },
        ["ticket", ticket] => Expect::Ticket(ticket.to_string()),
        ["reopened", ticket] => Expect::Reopened(number(ticket)),
        ["closed", ticket] => Expect::LeftClosed(number(ticket)),
        ["unlinked"] => Expect::Unlinked,
        _ => panic!("{path}: X-Expect `{expect}` not understood"),
    };
    Expectations {
        expect,
        logs: header("X-Expect-Log: "),
        warnings: header("X-Expect-Warning: "),
    }
}

/// The corpus ingested: the ingest lines, in order, and the number each
/// ticket name (`T1`...) was given.
struct Corpus {
    setup: Setup,
    lines: Vec<Value>,
    names: BTreeMap<String, u64>,
}

impl Corpus {
    /// The number of a ticket named in an expectation: `T1` or `23010203`.
    fn number(&self, ticket: &str) -> Option<u64> {
        self.names
            .get(ticket)
            .copied()
            .or_else(|| ticket.parse().ok())
    }

    /// `text` with `{T1}`... replaced by their numbers.
    fn expand(&self, text: &str) -> String {
        self.names
            .iter()
            .fold(text.to_string(), |text, (name, number)| {
                text.replace(&format!("{{{name}}}"), &number.to_string())
            })
    }

    /// The Message-ID a corpus file was stored under.
    fn id_of(&self, file: &str) -> String {
        self.lines
            .iter()
            .find(|line| line["source"].as_str().is_some_and(|s| s.ends_with(file)))
            .unwrap_or_else(|| panic!("{file} not ingested"))["message-id"]
            .as_str()
            .expect("message id")
            .to_string()
    }
}

/// Ingests the whole corpus on account `support` and checks every mail
/// against its expectations; returns the failures, one line each.
fn ingest_corpus() -> (Corpus, Vec<String>) {
    let setup = setup();
    let dir = fixture("threads/mails");
    let files = std::fs::read_dir(&dir)
        .expect("corpus folder")
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "eml"))
        })
        .count();
    let lines = ingest(&setup, "support", &[&dir]);
    assert_eq!(lines.len(), files, "one line per corpus mail");
    let mut corpus = Corpus {
        setup,
        lines: Vec::new(),
        names: BTreeMap::new(),
    };
    let mut failures = Vec::new();
    for line in &lines {
        let source = line["source"].as_str().expect("source").to_string();
        let file = source.rsplit('/').next().unwrap_or(&source).to_string();
        let mut fail = |why: String| failures.push(format!("{file}: {why}"));
        let expected = expectations(&source);
        let id = line["message-id"].as_str().expect("message id");
        let effects = line["effects"].as_array().cloned().unwrap_or_default();
        let ticket = ticket_of(&corpus.setup, id);
        if line["outcome"] != "applied" {
            fail(format!("outcome {}, not applied: {line}", line["outcome"]));
        }
        match &expected.expect {
            Expect::New {
                name,
                customer,
                requester,
                subject,
            } => {
                let created = matches!(
                    effects.as_slice(),
                    [effect] if effect["kind"] == "create-ticket" && effect["link-mail"] == id
                );
                if !created {
                    fail(format!(
                        "expected a new ticket linking the mail, got effects {effects:?}"
                    ));
                }
                match ticket {
                    None => fail("expected a new ticket, the mail is on none".to_string()),
                    Some(number)
                        if EXISTING.contains(&number)
                            || corpus.names.values().any(|n| *n == number) =>
                    {
                        fail(format!(
                            "expected a new ticket, the mail is on ticket {number}, an older one"
                        ));
                    }
                    Some(number) => {
                        let request = corpus
                            .setup
                            .store()
                            .request(number)
                            .expect("query")
                            .expect("created");
                        let actual = (
                            request.customer.as_str(),
                            request.requester.as_deref(),
                            request.subject.as_deref(),
                            request.request_type.as_str(),
                            request.state.as_str(),
                        );
                        let wanted = (
                            customer.as_str(),
                            Some(requester.as_str()),
                            Some(subject.as_str()),
                            "INCIDENT",
                            "open",
                        );
                        if actual != wanted {
                            fail(format!(
                                "ticket {number} (customer, requester, subject, type, state) \
                                 is {actual:?}, expected {wanted:?}"
                            ));
                        }
                        if corpus.names.insert(name.clone(), number).is_some() {
                            fail(format!("ticket name {name} given twice"));
                        }
                    }
                }
            }
            Expect::Ticket(name) => match corpus.number(name) {
                None => fail(format!("ticket {name} named before it was created")),
                Some(number) => {
                    if ticket != Some(number) {
                        fail(format!(
                            "expected on ticket {name} ({number}), is on {ticket:?}"
                        ));
                    }
                    if effects.as_slice()
                        != [json!({"kind": "link-mail", "message-id": id, "request": number})]
                    {
                        fail(format!("expected one link-mail effect, got {effects:?}"));
                    }
                }
            },
            Expect::Reopened(number) => {
                if ticket != Some(*number) {
                    fail(format!("expected on ticket {number}, is on {ticket:?}"));
                }
                let wanted = [
                    json!({"kind": "reopen-ticket", "request": number, "state": "open"}),
                    json!({"kind": "link-mail", "message-id": id, "request": number}),
                ];
                if effects.as_slice() != wanted {
                    fail(format!("expected reopen then link, got {effects:?}"));
                }
                let state = state_of(&corpus.setup, *number);
                if state != "open" {
                    fail(format!(
                        "ticket {number} is `{state}`, expected reopened `open`"
                    ));
                }
            }
            Expect::LeftClosed(number) => {
                if ticket != Some(*number) {
                    fail(format!("expected on ticket {number}, is on {ticket:?}"));
                }
                if effects.as_slice()
                    != [json!({"kind": "link-mail", "message-id": id, "request": number})]
                {
                    fail(format!("expected one link-mail effect, got {effects:?}"));
                }
                let state = state_of(&corpus.setup, *number);
                if state != "closed" {
                    fail(format!(
                        "ticket {number} is `{state}`, expected still `closed`"
                    ));
                }
            }
            Expect::Unlinked => {
                if ticket.is_some() || !effects.is_empty() {
                    fail(format!(
                        "expected unlinked, is on {ticket:?} with effects {effects:?}"
                    ));
                }
            }
        }
        let logs = linking_logs(&corpus.setup, line);
        for text in &expected.logs {
            let text = corpus.expand(text);
            if !logs.iter().any(|l| l.contains(&text)) {
                fail(format!(
                    "no log line contains {text:?}; the plugin logged:\n    {}",
                    logs.join("\n    ")
                ));
            }
        }
        let warnings: Vec<&str> = line["warnings"]
            .as_array()
            .map(|w| w.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for text in &expected.warnings {
            if !warnings.iter().any(|w| w.contains(text.as_str())) {
                fail(format!("no warning says {text:?}: {warnings:?}"));
            }
        }
        if expected.warnings.is_empty() && !warnings.is_empty() {
            fail(format!("unexpected warnings {warnings:?}"));
        }
    }
    corpus.lines = lines;
    (corpus, failures)
}

#[test]
fn every_mail_of_the_corpus_lands_where_it_says() {
    let (corpus, failures) = ingest_corpus();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Six new tickets, T1 to T6, one number each, in order, and no other.
    let numbers: Vec<u64> = (1..=6).map(|i| corpus.names[&format!("T{i}")]).collect();
    assert_eq!(numbers, (23020002..=23020007).collect::<Vec<_>>());
    assert_eq!(max_request(&corpus.setup), 23020007, "no stray ticket");
    // Tickets that mails only named keep their state (23010203 is open).
    assert_eq!(state_of(&corpus.setup, 23010203), "open");
    assert_eq!(state_of(&corpus.setup, 23020001), "open");
}

// ---------------------------------------------------------------------------
// Thread trees

/// The nodes of a tree, depth first.
fn flatten<'a>(nodes: &'a [Value], out: &mut Vec<&'a Value>) {
    for node in nodes {
        out.push(node);
        flatten(node["replies"].as_array().map_or(&[], Vec::as_slice), out);
    }
}

fn reply_ids(node: &Value) -> Vec<&str> {
    node["replies"]
        .as_array()
        .expect("replies")
        .iter()
        .map(|reply| reply["message-id"].as_str().expect("id"))
        .collect()
}

fn thread_json(setup: &Setup, message_id: &str) -> Vec<Value> {
    let run = setup.relais(&["thread", &format!("<{message_id}>"), "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    serde_json::from_str(&run.stdout).expect("JSON tree")
}

#[test]
fn the_thread_tree_shows_each_mail_under_the_one_it_answers_with_its_ticket() {
    let (corpus, failures) = ingest_corpus();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let setup = &corpus.setup;
    let id = |file: &str| corpus.id_of(file);
    let t1 = corpus.names["T1"];

    // Asked from a mail deep in the chain, the whole thread comes back.
    let tree = thread_json(setup, &id("04-thunderbird-reply.eml"));
    assert_eq!(tree.len(), 1, "one root: {tree:#?}");
    let root = &tree[0];
    assert_eq!(
        root["message-id"],
        id("01-outlook-new-mail-opens-ticket.eml")
    );
    assert_eq!(root["direction"], "received");
    assert_eq!(root["account"], "support");
    assert_eq!(root["sender"], "jeanne@dupont.example");
    assert_eq!(root["ticket"], t1);
    // Paul's answer, and the Notes reply that names only the root.
    assert_eq!(
        reply_ids(root),
        [
            id("02-outlook-staff-reply.eml"),
            id("06-lotus-notes-references-only.eml")
        ]
    );
    let paul = &root["replies"][0];
    assert_eq!(
        reply_ids(paul),
        [
            id("03-gmail-reply-all.eml"),
            id("07-outlook-forward-tr.eml"),
            id("10-no-message-id.eml"),
        ]
    );
    let luc = &paul["replies"][0];
    assert_eq!(reply_ids(luc), [id("04-thunderbird-reply.eml")]);
    let thunderbird = &luc["replies"][0];
    assert_eq!(
        reply_ids(thunderbird),
        [
            id("05-apple-mail-reply-from-email2.eml"),
            id("25-thunderbird-tag-and-thread-disagree.eml"),
        ]
    );
    let apple = &thunderbird["replies"][0];
    assert_eq!(
        reply_ids(apple),
        [
            id("08-apple-mail-forward-fwd.eml"),
            id("09-gnus-in-reply-to-with-comment.eml"),
            id("24-gmail-other-customers-tag-in-thread.eml"),
            id("26-gmail-other-customer-replies-in-thread.eml"),
        ]
    );
    assert_eq!(
        reply_ids(&paul["replies"][1]),
        [id("33-unknown-sender-replies-in-thread.eml")]
    );

    // Every node shows the ticket its mail is on: one thread, three tickets.
    let mut nodes = Vec::new();
    flatten(&tree, &mut nodes);
    assert_eq!(nodes.len(), 14, "{tree:#?}");
    let mut tickets: BTreeMap<u64, usize> = BTreeMap::new();
    for node in &nodes {
        let message_id = node["message-id"].as_str().expect("id");
        let ticket = node["ticket"]
            .as_u64()
            .expect("every mail of it is on a ticket");
        assert_eq!(Some(ticket), ticket_of(setup, message_id), "{message_id}");
        *tickets.entry(ticket).or_default() += 1;
    }
    assert_eq!(
        tickets,
        BTreeMap::from([(23010203, 1), (t1, 12), (corpus.names["T4"], 1)]),
        "the tag that won, the thread, and the other customer's new ticket"
    );

    // The VPN thread, all odd ids, is one straight chain on T2.
    let tree = thread_json(setup, &id("15-outlook-reply-to-bare-id.eml"));
    let mut chain = Vec::new();
    let mut level = tree.as_slice();
    while let [node] = level {
        chain.push(node["message-id"].as_str().expect("id").to_string());
        assert_eq!(node["ticket"], corpus.names["T2"], "{node}");
        level = node["replies"].as_array().map_or(&[], Vec::as_slice);
    }
    assert!(level.is_empty(), "a branch in a straight chain: {tree:#?}");
    assert_eq!(
        chain,
        [
            id("11-gmail-new-mail-odd-message-id.eml"),
            id("12-legacy-gateway-quoted-id-folded-in-reply-to.eml"),
            id("13-gmail-reply-to-quoted-id-folded-references.eml"),
            id("14-intranet-bare-message-id-and-in-reply-to.eml"),
            id("15-outlook-reply-to-bare-id.eml"),
        ]
    );
}

// ---------------------------------------------------------------------------
// Replies to mail Relais sent

/// Saves 23010203 (Jeanne's, contract K-2026-001) in `state`: the shipped
/// alert rule queues its alerts. Returns the Message-ID of the one to
/// Jeanne, whose subject starts with `keyword`.
fn alert_to_jeanne(setup: &Setup, state: &str, keyword: &str) -> String {
    let file = setup.dir.path().join(format!("save-{state}.yaml"));
    std::fs::write(
        &file,
        format!(
            "{{ number: 23010203, company: ACME-FR, customer: C001, type: INCIDENT, \
             requester: ct-jeanne, state: {state}, contract: K-2026-001, \
             subject: Bourrage papier bac 2 }}\n"
        ),
    )
    .expect("write");
    let run = setup.relais(&["request", "save", file.to_str().expect("utf-8")]);
    assert_eq!(run.code, 0, "{run:?}");
    let outbox = setup.relais(&["outbox", "--json"]);
    assert_eq!(outbox.code, 0, "{outbox:?}");
    let alerts: Vec<Value> = outbox
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON"))
        .filter(|mail: &Value| {
            mail["to"] == json!(["jeanne@dupont.example"])
                && mail["subject"]
                    .as_str()
                    .is_some_and(|s| s.starts_with(keyword))
        })
        .collect();
    let [alert] = alerts.as_slice() else {
        panic!("one {keyword} alert to Jeanne expected: {}", outbox.stdout);
    };
    assert_eq!(alert["request"], 23010203, "{alert}");
    assert_eq!(
        alert["subject"],
        format!("{keyword} [#23010203] Bourrage papier bac 2"),
        "the host writes the ticket tag into what it sends"
    );
    alert["message-id"]
        .as_str()
        .expect("message id")
        .to_string()
}

/// Writes a mail from `template`, `{alert}` standing for an alert's id.
fn write_reply(setup: &Setup, name: &str, template: &str, alert: &str) -> PathBuf {
    let path = setup.dir.path().join(name);
    std::fs::write(&path, template.replace("{alert}", alert)).expect("write");
    path
}

/// Outlook, tag kept in the subject, In-Reply-To and References.
const OUTLOOK_REPLY_TO_ALERT: &str = "\
From: Jeanne Martin <jeanne@dupont.example>
To: Support ACME <support@acme.example>
Subject: RE: [RESOLUTION] [#23010203] Bourrage papier bac 2
Thread-Topic: [RESOLUTION] [#23010203] Bourrage papier bac 2
Thread-Index: AQHbMmD8v0tJ3nRkQ0a1mX5yZ2pW4g==
Date: Mon, 9 Nov 2026 08:12:40 +0000
Message-ID: <PAXPR02MB7310AA11BB22CC33DD44EE55FF66A@PAXPR02MB7310.eurprd02.prod.outlook.com>
References: <{alert}>
In-Reply-To: <{alert}>
Accept-Language: fr-FR, en-US
Content-Language: fr-FR
MIME-Version: 1.0
Content-Type: text/plain; charset=\"iso-8859-1\"
Content-Transfer-Encoding: quoted-printable

Merci, plus aucun bourrage depuis le changement de papier.

Jeanne

De : Support ACME <relais@acme.example>=20
Envoy=E9 : lundi 9 novembre 2026 08:55
=C0 : Jeanne Martin <jeanne@dupont.example>
Objet : [RESOLUTION] [#23010203] Bourrage papier bac 2

Bonjour Jeanne Martin,

La demande 23010203 =AB Bourrage papier bac 2 =BB de Dupont SA est r=E9solue.
";

/// Lotus Notes: References only, and the subject rewritten without tag.
const NOTES_REFERENCES_ONLY_REPLY: &str = "\
Subject: =?ISO-8859-1?Q?Toujours_des_bourrages_=E0_Lyon?=
To: support@acme.example
From: \"Jeanne Martin\" <j.martin@dupont.example>
Date: Mon, 9 Nov 2026 10:31:02 +0100
References: <{alert}>
Message-ID: <OF77AA88BB.99CC00DD-ONC1258A20.0039E1F2-C1258A20.0039F3A4@dupont.example>
X-Mailer: Lotus Notes Release 8.5.3 September 15, 2011
MIME-Version: 1.0
Content-Type: text/plain; charset=\"ISO-8859-1\"
Content-Transfer-Encoding: quoted-printable

Le bac 2 de l'imprimante de Lyon bourre encore, m=EAme avec le nouveau papier.



De :\t\"Support ACME\" <relais@acme.example>
A :\t\"Jeanne Martin\" <jeanne@dupont.example>
Date :\t09/11/2026 08:55
Objet :\t[RESOLUTION] [#23010203] Bourrage papier bac 2
";

/// Gmail: In-Reply-To and References, the tag deleted from the subject.
const GMAIL_REPLY_WITHOUT_TAG: &str = "\
MIME-Version: 1.0
References: <{alert}>
In-Reply-To: <{alert}>
From: Luc Bernard <luc@dupont.example>
Date: Mon, 9 Nov 2026 11:02:51 +0100
Message-ID: <CAKx3vQ9bN4mZ1cV7xL2kJ8hG5fD3sA6pO0iU9yT4rE2wQ@mail.gmail.com>
Subject: Re: [RESOLUTION] Bourrage papier bac 2
To: support@acme.example
Content-Type: text/plain; charset=\"UTF-8\"
Content-Transfer-Encoding: quoted-printable

Jeanne m'a transf=C3=A9r=C3=A9 votre message : confirm=C3=A9 pour Lyon aussi=
, on peut clore.

Luc

Le lun. 9 nov. 2026 =C3=A0 08:55, Support ACME <relais@acme.example> a =C3=
=A9crit :

> Bonjour Jeanne Martin,
>
> La demande 23010203 =C2=AB Bourrage papier bac 2 =C2=BB de Dupont SA est
> r=C3=A9solue.
";

/// Postfix bounce of the alert: a delivery report naming it only in its
/// returned headers.
const BOUNCE_OF_ALERT: &str = "\
Return-Path: <>
Received: by smtp.dupont.example (Postfix)
\tid 3A1B2C4D5E; Mon,  9 Nov 2026 08:55:04 +0100 (CET)
Date: Mon,  9 Nov 2026 08:55:04 +0100 (CET)
From: MAILER-DAEMON@smtp.dupont.example (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: relais@acme.example
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary=\"3A1B2C4D5E.1762674904/smtp.dupont.example\"
Message-Id: <20261109075504.3A1B2C4D5E@smtp.dupont.example>

This is a MIME-encapsulated message.

--3A1B2C4D5E.1762674904/smtp.dupont.example
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host smtp.dupont.example.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<jeanne@dupont.example>: mailbox full (quota exceeded)

--3A1B2C4D5E.1762674904/smtp.dupont.example
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; smtp.dupont.example
X-Postfix-Queue-ID: 3A1B2C4D5E
Arrival-Date: Mon,  9 Nov 2026 08:55:03 +0100 (CET)

Final-Recipient: rfc822; jeanne@dupont.example
Action: failed
Status: 5.2.2
Diagnostic-Code: x-unix; mailbox full (quota exceeded)

--3A1B2C4D5E.1762674904/smtp.dupont.example
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: Support ACME <relais@acme.example>
To: jeanne@dupont.example
Subject: [RESOLUTION] [#23010203] Bourrage papier bac 2
Message-ID: <{alert}>
Auto-Submitted: auto-generated

--3A1B2C4D5E.1762674904/smtp.dupont.example--
";

#[test]
fn replies_to_an_alert_relais_sent_land_on_its_ticket() {
    let setup = setup();
    let alert = alert_to_jeanne(&setup, "resolved", "[RESOLUTION]");
    let files = [
        write_reply(&setup, "1-outlook.eml", OUTLOOK_REPLY_TO_ALERT, &alert),
        write_reply(&setup, "2-notes.eml", NOTES_REFERENCES_ONLY_REPLY, &alert),
        write_reply(&setup, "3-gmail.eml", GMAIL_REPLY_WITHOUT_TAG, &alert),
        write_reply(&setup, "4-bounce.eml", BOUNCE_OF_ALERT, &alert),
    ];
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let lines = ingest(&setup, "support", &paths);
    assert_eq!(lines.len(), 4);
    for line in &lines {
        let id = line["message-id"].as_str().expect("id");
        assert_eq!(
            line["effects"],
            json!([{"kind": "link-mail", "message-id": id, "request": 23010203}]),
            "{}",
            line["source"]
        );
        assert_eq!(ticket_of(&setup, id), Some(23010203), "{}", line["source"]);
    }
    // Tag and thread agree for the Outlook reply; the others have only
    // the thread, found through the sent alert.
    assert_logged(
        &linking_logs(&setup, &lines[0]),
        &format!("tag [#23010203] and thread (In-Reply-To <{alert}>) agree on ticket 23010203"),
    );
    assert_logged(
        &linking_logs(&setup, &lines[1]),
        &format!("found by thread (References <{alert}>)"),
    );
    assert_logged(
        &linking_logs(&setup, &lines[2]),
        &format!("found by thread (In-Reply-To <{alert}>)"),
    );
    // The bounce answers the alert it reports on.
    let bounce = setup
        .store()
        .mail("20261109075504.3A1B2C4D5E@smtp.dupont.example")
        .expect("query")
        .expect("stored");
    assert_eq!(bounce.in_reply_to, std::slice::from_ref(&alert));
    assert_logged(
        &linking_logs(&setup, &lines[3]),
        &format!("found by thread (In-Reply-To <{alert}>)"),
    );
    // Resolved is not closed: nothing reopened, no ticket created.
    assert_eq!(state_of(&setup, 23010203), "resolved");
    assert_eq!(max_request(&setup), 23020001);

    // The tree: the sent alert at the root, the four answers under it.
    let tree = thread_json(&setup, "20261109075504.3A1B2C4D5E@smtp.dupont.example");
    assert_eq!(tree.len(), 1, "{tree:#?}");
    let root = &tree[0];
    assert_eq!(root["message-id"], alert);
    assert_eq!(root["direction"], "sent");
    assert_eq!(root["to"], json!(["jeanne@dupont.example"]));
    assert_eq!(root["ticket"], 23010203);
    let replies = root["replies"].as_array().expect("replies");
    assert_eq!(replies.len(), 4, "{tree:#?}");
    for reply in replies {
        assert_eq!(reply["direction"], "received", "{reply}");
        assert_eq!(reply["ticket"], 23010203, "{reply}");
        assert_eq!(reply["replies"], json!([]), "{reply}");
    }
    let receipts: Vec<&Value> = replies.iter().map(|r| &r["receipt"]).collect();
    assert_eq!(
        receipts,
        [
            &Value::Null,
            &Value::Null,
            &Value::Null,
            &json!("delivery-status")
        ]
    );
}

#[test]
fn a_closure_alert_answered_by_a_person_reopens_the_ticket_an_auto_reply_does_not() {
    let setup = setup();
    let alert = alert_to_jeanne(&setup, "closed", "[CLOTURE]");
    assert_eq!(state_of(&setup, 23010203), "closed");

    let auto_reply = write_reply(
        &setup,
        "1-ooo.eml",
        "From: Jeanne Martin <jeanne@dupont.example>
To: Support ACME <relais@acme.example>
Subject: =?iso-8859-1?Q?R=E9ponse_automatique=A0:_[CLOTURE]_[#23010203]_Bourrage_papier_bac_2?=
Date: Mon, 9 Nov 2026 09:00:02 +0000
Message-ID: <PAXPR02MB7310BB00CC11DD22EE33FF4400A1B@PAXPR02MB7310.eurprd02.prod.outlook.com>
In-Reply-To: <{alert}>
References: <{alert}>
Auto-Submitted: auto-replied
X-Auto-Response-Suppress: All
MIME-Version: 1.0
Content-Type: text/plain; charset=\"iso-8859-1\"
Content-Transfer-Encoding: quoted-printable

Je suis absente jusqu'au 16 novembre.
",
        &alert,
    );
    let lines = ingest(&setup, "support", &[&auto_reply]);
    let id = lines[0]["message-id"].as_str().expect("id");
    assert_eq!(ticket_of(&setup, id), Some(23010203));
    assert_eq!(
        state_of(&setup, 23010203),
        "closed",
        "a robot reopens nothing"
    );
    assert_logged(
        &linking_logs(&setup, &lines[0]),
        "automatic mail (Auto-Submitted: auto-replied) neither reopens a ticket nor opens a new one",
    );

    // References only, the tag gone from the subject: the thread alone.
    let reply = write_reply(
        &setup,
        "2-reply.eml",
        "Received: from notes-gw.lyon.dupont.example (notes-gw.lyon.dupont.example [10.40.2.15])
\tby smtp.dupont.example (Postfix) with ESMTP id 6D7E8F9A0B
\tfor <relais@acme.example>; Tue, 10 Nov 2026 08:05:11 +0100 (CET)
Subject: =?ISO-8859-1?Q?Bourrages_:_ce_n'est_pas_r=E9gl=E9?=
To: \"Support ACME\" <relais@acme.example>
From: \"Jeanne Martin\" <jeanne@dupont.example>
Date: Tue, 10 Nov 2026 08:05:09 +0100
References: <{alert}>
Message-ID: <OF0011AA22.BB33CC44-ONC1258A21.002C5D6E-C1258A21.002C7F80@dupont.example>
X-Mailer: Lotus Notes Release 8.5.3 September 15, 2011
MIME-Version: 1.0
Content-Type: text/plain; charset=\"ISO-8859-1\"
Content-Transfer-Encoding: quoted-printable

De retour ce matin : le bac 2 bourre toujours. Merci de rouvrir la demande.
",
        &alert,
    );
    let lines = ingest(&setup, "support", &[&reply]);
    let id = lines[0]["message-id"].as_str().expect("id");
    assert_eq!(
        lines[0]["effects"],
        json!([
            {"kind": "reopen-ticket", "request": 23010203, "state": "open"},
            {"kind": "link-mail", "message-id": id, "request": 23010203}
        ])
    );
    assert_eq!(ticket_of(&setup, id), Some(23010203));
    assert_eq!(state_of(&setup, 23010203), "open");
    assert_logged(
        &linking_logs(&setup, &lines[0]),
        &format!(
            "ticket 23010203, found by thread (References <{alert}>), is closed (state `closed`): \
             reopened as `open`"
        ),
    );
    assert_eq!(max_request(&setup), 23020001, "no follow-up ticket");
}

#[test]
fn the_desk_tag_format_relais_writes_is_the_one_it_reads() {
    let setup = setup();
    let settings = setup.dir.path().join("tag.yaml");
    std::fs::write(&settings, "settings: { ticket-tag: \"[ACME-{number}]\" }\n").expect("write");
    let run = setup.relais(&["import", settings.to_str().expect("utf-8")]);
    assert_eq!(run.code, 0, "{run:?}");
    let file = setup.dir.path().join("save.yaml");
    std::fs::write(
        &file,
        "{ number: 23010203, company: ACME-FR, customer: C001, type: INCIDENT, \
         requester: ct-jeanne, state: resolved, contract: K-2026-001, subject: Bourrage papier bac 2 }\n",
    )
    .expect("write");
    assert_eq!(
        setup
            .relais(&["request", "save", file.to_str().expect("utf-8")])
            .code,
        0
    );
    // The host puts the desk's tag on what it sends about the ticket.
    let outbox = setup.store().outbox(None, 10).expect("outbox");
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    let subject = &outbox[0].mail.subject;
    // In the place of the shipped template's `[#NUMBER]`: one tag only.
    assert_eq!(
        subject,
        "[RESOLUTION] [ACME-23010203] Bourrage papier bac 2"
    );
    // A reply whose thread headers were lost (a copy pasted into a new
    // mail): the tag alone, in the desk's format, finds the ticket.
    let reply = setup.dir.path().join("reply.eml");
    std::fs::write(
        &reply,
        "From: Luc Bernard <luc@dupont.example>\r\n\
         To: support@acme.example\r\n\
         Subject: Re: [RESOLUTION] [ACME-23010203] Bourrage papier bac 2\r\n\
         Date: Mon, 9 Nov 2026 14:10:00 +0100\r\n\
         Message-ID: <CAKx3vQ1aZ2sX3dC4fV5gB6hN7jM8kL9pO0iU1yT2rE3wQ@mail.gmail.com>\r\n\
         Content-Type: text/plain; charset=\"UTF-8\"\r\n\
         \r\n\
         Resolved here too, thanks.\r\n",
    )
    .expect("write");
    let lines = ingest(&setup, "support", &[&reply]);
    let id = lines[0]["message-id"].as_str().expect("id");
    assert_eq!(ticket_of(&setup, id), Some(23010203));
    let logs = linking_logs(&setup, &lines[0]);
    assert_logged(&logs, "found by tag [ACME-23010203]");
    assert!(
        !logs.iter().any(|l| l.contains("tag [#23010203]")),
        "`[#NUMBER]` is not this desk's tag: {logs:?}"
    );
}

// ---------------------------------------------------------------------------
// Hostile headers

/// A Gmail-like id of a mail Relais never saw.
fn unseen_id(i: usize) -> String {
    format!("CAF{i:04}q8Zm3Rx7Tp1Wv5Ny9Lk2Hj6Gd4Sb0@mail.gmail.com")
}

#[test]
fn hundreds_of_references_with_a_loop_still_find_the_ticket() {
    let setup = setup();
    let lines = ingest(
        &setup,
        "support",
        &[
            &mail("01-outlook-new-mail-opens-ticket.eml"),
            &mail("02-outlook-staff-reply.eml"),
        ],
    );
    let root = lines[0]["message-id"].as_str().expect("id").to_string();
    let paul = lines[1]["message-id"].as_str().expect("id").to_string();
    let t1 = ticket_of(&setup, &root).expect("a ticket for the first mail");
    assert_eq!(ticket_of(&setup, &paul), Some(t1));

    // A thread grown for months outside Relais: the root, 250 mails, Paul's
    // answer, 30 more; the client repeats some ids and names the mail
    // itself, in References and as its In-Reply-To.
    let own = "e0c51f9a-3b2d-4c8e-a7f6-1d2e3f4a5b6c@dupont.example";
    let mut references = vec![root.clone()];
    references.extend((0..250).map(unseen_id));
    references.push(own.to_string());
    references.push(paul.clone());
    references.extend((250..280).map(unseen_id));
    references.extend((0..5).map(unseen_id));
    references.push(paul.clone());
    references.push(own.to_string());
    let folded: Vec<String> = references.iter().map(|id| format!("<{id}>")).collect();
    let path = setup.dir.path().join("long-thread.eml");
    std::fs::write(
        &path,
        format!(
            "Message-ID: <{own}>\r\n\
             Date: Wed, 11 Nov 2026 09:40:12 +0100\r\n\
             MIME-Version: 1.0\r\n\
             User-Agent: Mozilla Thunderbird\r\n\
             Subject: =?UTF-8?Q?Re=3a_Imprimante_du_3e_=c3=a9tage_en_panne?=\r\n\
             To: support@acme.example\r\n\
             References: {}\r\n\
             From: Jeanne Martin <jeanne@dupont.example>\r\n\
             In-Reply-To: <{own}>\r\n\
             Content-Type: text/plain; charset=UTF-8; format=flowed\r\n\
             Content-Transfer-Encoding: 8bit\r\n\
             \r\n\
             L'imprimante refait des pages blanches.\r\n",
            folded.join("\r\n ")
        ),
    )
    .expect("write");
    let lines = ingest(&setup, "support", &[&path]);
    let line = &lines[0];
    assert_eq!(line["message-id"], own);
    // 282 distinct ids besides its own: the root and the newest 99 kept.
    assert_eq!(
        line["warnings"],
        json!(["References names 282 ids: kept the first and the newest 99"])
    );
    let stored = setup.store().mail(own).expect("query").expect("stored");
    assert!(stored.in_reply_to.is_empty(), "{:?}", stored.in_reply_to);
    assert_eq!(stored.references.len(), 100);
    assert_eq!(stored.references[0], root);
    assert_eq!(stored.references[99], unseen_id(279));
    assert!(
        !stored.references.iter().any(|id| id == own),
        "the loop is cut"
    );
    assert_eq!(
        line["effects"],
        json!([{"kind": "link-mail", "message-id": own, "request": t1}])
    );
    assert_eq!(stored.ticket, Some(t1));
    let logs = linking_logs(&setup, line);
    assert_logged(
        &logs,
        "thread: 49 older ids left out, only the 50 nearest and the root are looked up (max-references)",
    );
    assert_logged(&logs, &format!("found by thread (References <{paul}>)"));

    // The mail of 282 ids joins the thread like any other: an answer to
    // it lands there too, and the tree stays whole.
    let answer = setup.dir.path().join("answer.eml");
    std::fs::write(
        &answer,
        format!(
            "From: Paul Durand <paul@acme.example>\r\n\
             To: Jeanne Martin <jeanne@dupont.example>\r\n\
             Subject: RE: Imprimante du 3e =?iso-8859-1?Q?=E9tage_en_panne?=\r\n\
             Date: Wed, 11 Nov 2026 09:02:00 +0000\r\n\
             Message-ID: <DB9PR03MB84129F8E7D6C5B4A3F2E1D0C9B8A7@DB9PR03MB8412.eurprd03.prod.outlook.com>\r\n\
             In-Reply-To: <{own}>\r\n\
             \r\n\
             On regarde.\r\n"
        ),
    )
    .expect("write");
    let lines = ingest(&setup, "support", &[&answer]);
    let id = lines[0]["message-id"].as_str().expect("id");
    assert_eq!(ticket_of(&setup, id), Some(t1));
    let tree = thread_json(&setup, id);
    let mut nodes = Vec::new();
    flatten(&tree, &mut nodes);
    assert_eq!(nodes.len(), 4, "the stored mails only: {tree:#?}");
    assert_eq!(tree[0]["message-id"], root);
    assert_eq!(max_request(&setup), t1, "no second ticket");
}

#[test]
fn a_mail_without_message_id_is_kept_under_a_derived_id_and_linked() {
    let setup = setup();
    let lines = ingest(
        &setup,
        "support",
        &[
            &mail("01-outlook-new-mail-opens-ticket.eml"),
            &mail("02-outlook-staff-reply.eml"),
            &mail("10-no-message-id.eml"),
        ],
    );
    let t1 = ticket_of(&setup, lines[0]["message-id"].as_str().expect("id")).expect("ticket");
    let derived = lines[2]["message-id"].as_str().expect("derived id");
    assert!(
        derived.ends_with("@content.relais.invalid"),
        "derived: {derived}"
    );
    assert_eq!(ticket_of(&setup, derived), Some(t1));
    // Its reply finds it under the derived id, In-Reply-To as the client
    // wrote it.
    let reply = setup.dir.path().join("reply.eml");
    std::fs::write(
        &reply,
        format!(
            "From: Sophie Leroy <sophie@acme.example>\r\n\
             To: jeanne@dupont.example\r\n\
             Subject: Re: Imprimante du 3e =?utf-8?Q?=C3=A9tage?= en panne\r\n\
             Message-ID: <87zk3m1q2w.fsf@acme.example>\r\n\
             In-Reply-To: <{derived}> (Jeanne Martin's message of \"Thu, 05 Nov 2026 10:03:51 +0100\")\r\n\
             \r\n\
             Merci, on clôt.\r\n"
        ),
    )
    .expect("write");
    let lines = ingest(&setup, "support", &[&reply]);
    assert_eq!(ticket_of(&setup, "87zk3m1q2w.fsf@acme.example"), Some(t1));
    assert_logged(
        &linking_logs(&setup, &lines[0]),
        &format!("found by thread (In-Reply-To <{derived}>)"),
    );
}

// ---------------------------------------------------------------------------
// The same mail again, and across accounts

#[test]
fn the_same_mail_twice_is_a_duplicate_and_keeps_its_one_link() {
    let setup = setup();
    let first_mail = mail("01-outlook-new-mail-opens-ticket.eml");
    let no_id = mail("10-no-message-id.eml");
    let first = ingest(
        &setup,
        "support",
        &[&first_mail, &mail("02-outlook-staff-reply.eml"), &no_id],
    );
    assert_eq!(first[0]["effects"][0]["kind"], "create-ticket");
    let root = first[0]["message-id"].as_str().expect("id");
    let derived = first[2]["message-id"].as_str().expect("id");
    let t1 = ticket_of(&setup, root).expect("ticket");
    assert_eq!(ticket_of(&setup, derived), Some(t1));
    let runs = setup.store().runs(100).expect("runs").len();

    // Again, as the same account would after a crash, and as another
    // account holding a copy (a mailbox in Cc).
    for account in ["support", "paul"] {
        let again = ingest(&setup, account, &[&first_mail, &no_id]);
        for (line, id) in again.iter().zip([root, derived]) {
            assert_eq!(line["outcome"], "duplicate", "{account}: {line}");
            assert_eq!(line["message-id"], id, "{account}: a stable id");
            assert_eq!(line["effects"], json!([]), "{account}: {line}");
        }
    }
    assert_eq!(ticket_of(&setup, root), Some(t1));
    assert_eq!(ticket_of(&setup, derived), Some(t1));
    assert_eq!(max_request(&setup), t1, "the first mail opened one ticket");
    let stored = setup.store().mail(root).expect("query").expect("stored");
    assert_eq!(stored.account, "support", "kept as first received");
    assert_eq!(setup.store().runs(100).expect("runs").len(), runs + 4);
}

#[test]
fn a_thread_is_followed_across_accounts() {
    let setup = setup();
    // Jeanne wrote to support; Paul answered from his own mailbox, which
    // Relais also reads; Luc's answer to Paul came to support.
    let first = ingest(
        &setup,
        "support",
        &[&mail("01-outlook-new-mail-opens-ticket.eml")],
    );
    let second = ingest(&setup, "paul", &[&mail("02-outlook-staff-reply.eml")]);
    let third = ingest(&setup, "support", &[&mail("03-gmail-reply-all.eml")]);
    let ids: Vec<&str> = [&first, &second, &third]
        .iter()
        .map(|lines| lines[0]["message-id"].as_str().expect("id"))
        .collect();
    let t1 = ticket_of(&setup, ids[0]).expect("ticket");
    assert_eq!(ticket_of(&setup, ids[1]), Some(t1));
    assert_eq!(ticket_of(&setup, ids[2]), Some(t1));
    assert_logged(
        &linking_logs(&setup, &third[0]),
        &format!("found by thread (In-Reply-To <{}>)", ids[1]),
    );
    let tree = thread_json(&setup, ids[0]);
    let accounts: Vec<&Value> = vec![
        &tree[0]["account"],
        &tree[0]["replies"][0]["account"],
        &tree[0]["replies"][0]["replies"][0]["account"],
    ];
    assert_eq!(
        accounts,
        [&json!("support"), &json!("paul"), &json!("support")]
    );
}

// ---------------------------------------------------------------------------
// Around the plugin

#[test]
fn a_mail_to_catchmail_is_left_to_catchmail_even_inside_a_thread() {
    let setup = setup();
    let lines = ingest(
        &setup,
        "support",
        &[
            &mail("01-outlook-new-mail-opens-ticket.eml"),
            &mail("02-outlook-staff-reply.eml"),
            &fixture("threads/catchmail-reply-in-thread.eml"),
        ],
    );
    let t1 = ticket_of(&setup, lines[0]["message-id"].as_str().expect("id")).expect("ticket");
    assert_ne!(t1, 23010203);
    // Its thread is on T1, its CatchMail number names 23010203: only
    // CatchMail runs (two rules linking one mail would fail the event).
    let line = &lines[2];
    let id = line["message-id"].as_str().expect("id");
    assert_eq!(line["outcome"], "applied", "{line}");
    assert_eq!(line["rules"], json!(["catchmail"]), "{line}");
    assert_eq!(ticket_of(&setup, id), Some(23010203));
    assert!(linking_logs(&setup, line).is_empty());
    let run = line["run"].as_i64().expect("run");
    let trace = setup.explained_trace(run);
    let linking = trace["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .find(|rule| rule["id"] == "ticket-linking")
        .expect("ticket-linking in the trace");
    assert_eq!(linking["matched"], false, "{linking}");
}

#[test]
fn a_turkish_reply_prefix_is_stripped_from_a_new_tickets_subject() {
    // Turkish Outlook writes `YNT:` (a built-in prefix) before subjects
    // that often hold `İ`, whose lowercase is one byte longer.
    let setup = setup();
    let lines = ingest(
        &setup,
        "support",
        &[&fixture("threads/turkish-outlook-reply-opens-ticket.eml")],
    );
    let id = lines[0]["message-id"].as_str().expect("id");
    let ticket = ticket_of(&setup, id).expect("a new ticket for a known contact");
    let request = setup
        .store()
        .request(ticket)
        .expect("query")
        .expect("ticket");
    assert_eq!(request.requester.as_deref(), Some("ct-ayse"));
    assert_eq!(
        request.subject.as_deref(),
        Some("İstanbul ofisinde yazıcı arızası"),
        "the reply prefix `YNT:` must not stay in the ticket's subject"
    );
}
