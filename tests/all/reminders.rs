//! The shipped reminders (`rules/reminders.yaml`, the bundled `reminders`
//! plugin): requests waiting on the customer get a reminder mail recorded
//! as an exchange typed `relance`, until the customer answers or the
//! maximum is reached. Run with `relais fire --at`, a week ahead, so that
//! the requests saved now count as idle.

use serde_json::Value;

use crate::support::{Setup, write_mail};
use relais::store::prelude::*;

const RULE: &str = "waiting-customer-reminders";

/// The design example's directory, plus three requests: 501 and 502
/// waiting on the customer (Jeanne asked for both), 503 open.
fn setup() -> Setup {
    let setup = Setup::with_directory();
    let requests = setup.dir.path().join("requests.yaml");
    let mut text = String::from("requests:\n");
    for (number, state, subject) in [
        (501, "waiting-customer", "Licence à renouveler"),
        (502, "waiting-customer", "Mot de passe perdu"),
        (503, "open", "Écran noir"),
    ] {
        text.push_str(&format!(
            "  - {{ number: {number}, company: ACME-FR, customer: C001, type: INCIDENT, requester: ct-jeanne, \
             state: {state}, publishable: true, conversation-locked: false, subject: \"{subject}\" }}\n"
        ));
    }
    std::fs::write(&requests, text).expect("requests");
    let run = setup.relais(&["import", requests.to_str().expect("utf-8")]);
    assert_eq!(run.code, 0, "{run:?}");
    setup
}

/// `relais fire` of the shipped rule, `days` ahead of now.
fn fire(setup: &Setup, days: i64) -> Value {
    let at = (chrono::Utc::now() + chrono::TimeDelta::days(days)).to_rfc3339();
    let run = setup.relais(&["fire", RULE, "--at", &at, "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    serde_json::from_str(&run.stdout).expect("json")
}

/// The requests a run sent a reminder about.
fn reminded(answer: &Value) -> Vec<u64> {
    answer["effects"]
        .as_array()
        .expect("effects")
        .iter()
        .filter(|e| e["kind"] == "send-mail" && e["exchange"] == "relance")
        .map(|e| e["request"].as_u64().expect("request"))
        .collect()
}

fn exchanges(setup: &Setup, request: u64) -> Value {
    let run = setup.relais(&["exchanges", &request.to_string(), "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    serde_json::from_str(&run.stdout).expect("json")
}

/// Jeanne writes to the support address with `subject`; her mail's
/// Message-ID is `NAME@dupont.example`.
fn jeanne_writes(setup: &Setup, name: &str, subject: &str, extra: &[(&str, &str)]) {
    writes(
        setup,
        "Jeanne Martin <jeanne@dupont.example>",
        name,
        subject,
        extra,
    );
}

/// `from` writes to the support address, ingested on the support account.
fn writes(setup: &Setup, from: &str, name: &str, subject: &str, extra: &[(&str, &str)]) {
    let id = format!("<{name}@dupont.example>");
    let mut headers = vec![
        ("From", from),
        ("To", "support@acme.example"),
        ("Subject", subject),
        ("Message-ID", id.as_str()),
    ];
    headers.extend_from_slice(extra);
    let path = write_mail(
        setup.dir.path(),
        &format!("{name}.eml"),
        &headers,
        "Voici.\r\n",
    );
    setup.ingest_support(&path);
}

#[test]
fn waiting_requests_are_reminded_until_the_customer_answers() {
    let setup = setup();
    // Jeanne already answered on 502: the next move is staff's.
    jeanne_writes(&setup, "answer-502", "Re: [#502] Mot de passe perdu", &[]);
    let on_502 = exchanges(&setup, 502);
    assert_eq!(on_502["summary"]["last-side"], "customer", "{on_502}");
    assert_eq!(on_502["exchanges"][0]["contact"], "ct-jeanne");
    assert_eq!(on_502["exchanges"][0]["direction"], "received");

    // Nothing is idle for 7 days yet.
    assert!(reminded(&fire(&setup, 0)).is_empty());

    // A week later: 501 only (502 answered, 503 is not waiting).
    let answer = fire(&setup, 8);
    assert_eq!(answer["outcome"], "applied", "{answer}");
    assert_eq!(reminded(&answer), [501]);
    let outbox = setup.relais(&["outbox", "--json"]);
    let mails: Vec<Value> = outbox
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("json"))
        .collect();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = &mails[0];
    assert_eq!(mail["to"][0], "jeanne@dupont.example", "{mail}");
    assert_eq!(mail["subject"], "Relance : [#501] Licence à renouveler");
    assert!(
        mail["body"]
            .as_str()
            .expect("body")
            .contains("Bonjour Jeanne Martin"),
        "{mail}"
    );
    let on_501 = exchanges(&setup, 501);
    assert_eq!(on_501["summary"]["count"], 1);
    assert_eq!(on_501["summary"]["last-side"], "staff");
    assert_eq!(on_501["summary"]["reminders"], 1);
    let sent = &on_501["exchanges"][0];
    assert_eq!(sent["direction"], "sent");
    assert_eq!(sent["type"], "relance");
    assert_eq!(sent["contact"], "ct-jeanne");
    assert_eq!(sent["message-id"], mail["message-id"]);
    let text = setup.relais(&["exchanges", "501"]);
    assert!(
        text.stdout
            .contains("request 501: 1 exchange, staff spoke last, 1 reminder since"),
        "{text:?}"
    );

    // Two more, then the request is left to staff (max-reminders: 3).
    assert_eq!(reminded(&fire(&setup, 16)), [501]);
    assert_eq!(reminded(&fire(&setup, 24)), [501]);
    let fourth = fire(&setup, 32);
    assert!(reminded(&fourth).is_empty(), "{fourth}");
    let run = setup.relais(&["runs", "show", &fourth["run"].to_string(), "--json"]);
    assert!(
        run.stdout.contains("already reminded 3 time(s)"),
        "{}",
        run.stdout
    );
    assert!(
        exchanges(&setup, 501)["exchanges"][2]["body"]
            .as_str()
            .expect("body")
            .contains("C'est notre dernière relance")
    );

    // Jeanne answers the last reminder (her mail program keeps only the
    // thread): it lands on 501 as a received exchange; no more reminders.
    let last = exchanges(&setup, 501)["exchanges"][2]["message-id"]
        .as_str()
        .expect("id")
        .to_string();
    let reply_to = format!("<{last}>");
    jeanne_writes(
        &setup,
        "answer-501",
        "Re: Licence",
        &[("In-Reply-To", reply_to.as_str())],
    );
    let on_501 = exchanges(&setup, 501);
    assert_eq!(on_501["summary"]["count"], 4);
    assert_eq!(on_501["summary"]["last-side"], "customer");
    assert_eq!(on_501["summary"]["reminders"], 0);
    assert!(reminded(&fire(&setup, 40)).is_empty());
}

#[test]
fn automatic_mail_and_staff_mail_are_no_exchange() {
    let setup = setup();
    jeanne_writes(
        &setup,
        "away",
        "Absence : [#501] Licence à renouveler",
        &[("Auto-Submitted", "auto-replied")],
    );
    writes(
        &setup,
        "Paul Durand <paul@acme.example>",
        "paul-1",
        "[#501] note interne",
        &[],
    );
    let store = setup.store();
    assert_eq!(
        store
            .mail("away@dupont.example")
            .expect("mail")
            .expect("stored")
            .ticket,
        Some(501)
    );
    assert_eq!(
        store
            .mail("paul-1@dupont.example")
            .expect("mail")
            .expect("stored")
            .ticket,
        Some(501)
    );
    assert_eq!(exchanges(&setup, 501)["summary"]["count"], 0);
    // So 501 is still waiting on Jeanne (as 502 is).
    assert_eq!(reminded(&fire(&setup, 8)), [501, 502]);
}

#[test]
fn a_rule_that_is_not_scheduled_or_does_not_exist_is_not_fired() {
    let setup = setup();
    let run = setup.relais(&["fire", "ticket-linking"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("runs on `mail-received`, not on a schedule"),
        "{run:?}"
    );
    let run = setup.relais(&["fire", "no-such-rule"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("no rule `no-such-rule`"), "{run:?}");
    let run = setup.relais(&["fire", RULE, "--at", "tomorrow"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("`tomorrow` is not an RFC 3339 time"),
        "{run:?}"
    );
    let run = setup.relais(&["exchanges", "999"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("no request 999"), "{run:?}");
    assert!(
        setup
            .store()
            .runs(10)
            .expect("runs")
            .iter()
            .all(|r| r.trigger != "schedule")
    );
}

#[test]
fn a_store_from_before_exchanges_counts_linked_mail_as_received() {
    // The directory fixture of the thread tests links mails by tag; the
    // migration's back-fill is checked on a store whose exchanges were
    // emptied and schema version set back, as an older Relais left it.
    let setup = setup();
    jeanne_writes(&setup, "old-answer", "Re: [#502] Mot de passe perdu", &[]);
    {
        let conn = rusqlite::Connection::open(setup.db()).expect("open");
        conn.execute_batch(
            "DROP TABLE exchanges; DROP INDEX requests_state;
             ALTER TABLE mails DROP COLUMN automatic;
             ALTER TABLE mails DROP COLUMN fingerprint;
             ALTER TABLE schedule_state DROP COLUMN schedule;
             ALTER TABLE mail_attachments DROP COLUMN raw_at;
             ALTER TABLE mail_attachments DROP COLUMN layout;
             DROP TABLE mail_search; DROP TABLE mail_search_pending;
             PRAGMA user_version = 5;",
        )
        .expect("downgrade");
    }
    let on_502 = exchanges(&setup, 502);
    assert_eq!(on_502["summary"]["count"], 1, "{on_502}");
    assert_eq!(on_502["exchanges"][0]["direction"], "received");
    assert_eq!(on_502["exchanges"][0]["address"], "jeanne@dupont.example");
    // Its mail, stored before the store was searchable, is found by text.
    let found = setup.relais(&["mails", "--text", "mot passe", "--json"]);
    assert_eq!(found.code, 0, "{found:?}");
    assert_eq!(found.stdout.lines().count(), 1, "{found:?}");
}
