//! What the engine did, over the API and the CLI: runs listed with their
//! filters, one shown with its trace, a failed event (a mail, a contract
//! event) retried through the rule set running now, the failed run kept;
//! the outbox by status, and a failed mail queued again.

use std::time::Duration;

use serde_json::{Value, json};

use crate::api::Api;
use crate::support::{Setup, test_plugin, wait_for, write_mail};

/// Two rules whose plugin traps on every event, or, fixed, returns
/// nothing.
fn rules(action: &str) -> String {
    format!(
        "rules:
  - id: flaky-mail
    on: mail-received
    run: {{ plugin: misbehave, config: {{ do: {action} }} }}
  - id: flaky-contract
    on: contract-event
    run: {{ plugin: misbehave, config: {{ do: {action} }} }}
"
    )
}

fn runs(api: &Api, query: &str) -> Value {
    let answer = api.send("GET", &format!("/runs{query}"), None);
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.json()
}

fn ids(page: &Value) -> Vec<i64> {
    page["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|run| run["id"].as_i64().expect("id"))
        .collect()
}

#[test]
fn failed_events_are_listed_and_retried_once_their_rule_is_fixed() {
    let setup = Setup::new().with_rules(&[("flaky.yaml", &rules("trap"))]);
    setup.install_plugin(&test_plugin("misbehave"), "misbehave.wasm");
    let spool = setup.dir.path().join("spool");
    std::fs::create_dir_all(&spool).expect("spool");
    let mut api = Api::start_with(setup, true, "");

    // A mail and a contract event fail: their plugin traps.
    let hidden = write_mail(
        &spool,
        ".m.eml",
        &[
            ("From", "jeanne.martin@dupont.example"),
            ("To", "support@acme.example"),
            ("Subject", "Imprimante en panne"),
            ("Message-ID", "<flaky-1@dupont.example>"),
        ],
        "Bonjour\n",
    );
    std::fs::rename(&hidden, spool.join("m.eml")).expect("rename");
    let port = api.port;
    wait_for(
        &mut api.engine,
        Duration::from_secs(30),
        "the mail's failed run",
        || {
            crate::api::call(
                port,
                "GET",
                "/runs?outcome=failed",
                Some(crate::api::TOKEN),
                None,
            )
            .is_some_and(|a| {
                a.status == 200 && a.json()["runs"].as_array().is_some_and(|r| !r.is_empty())
            })
        },
    );
    let event = api.send(
        "POST",
        "/contract-events",
        Some(&json!({ "contract": "K-2026-001", "kind": "expiring" })),
    );
    assert_eq!(event.status, 200, "{event:?}");
    assert_eq!(event.json()["outcome"], "failed", "{event:?}");
    let contract_run = event.json()["run"].as_i64().expect("a run");

    // The filters: outcome, trigger, rule, plugin, time, pages.
    let failed = runs(&api, "?outcome=failed");
    assert_eq!(ids(&failed).len(), 2, "{failed}");
    let mail_run = ids(&runs(&api, "?outcome=failed&trigger=mail-received"))[0];
    assert_eq!(ids(&runs(&api, "?trigger=contract-event")), [contract_run]);
    assert_eq!(
        ids(&runs(&api, "?rule=flaky-mail&outcome=failed")),
        [mail_run]
    );
    assert_eq!(ids(&runs(&api, "?plugin=misbehave")).len(), 2);
    assert!(ids(&runs(&api, "?plugin=catchmail")).is_empty());
    assert!(ids(&runs(&api, "?since=2999-01-01")).is_empty());
    let first = runs(&api, "?outcome=failed&limit=1");
    assert_eq!(ids(&first), [contract_run]);
    let next = first["next-before"].as_i64().expect("a next page");
    assert_eq!(
        ids(&runs(&api, &format!("?outcome=failed&before={next}"))),
        [mail_run]
    );
    for (query, field) in [
        ("?outcome=broken", "outcome"),
        ("?trigger=mail", "trigger"),
        ("?limit=0", "limit"),
    ] {
        let bad = api.send("GET", &format!("/runs{query}"), None);
        assert_eq!(bad.status, 400, "{query}: {bad:?}");
        assert_eq!(bad.json()["field"], field, "{query}: {bad:?}");
    }

    // One run, whole.
    let shown = api.send("GET", &format!("/runs/{mail_run}"), None);
    assert_eq!(shown.status, 200, "{shown:?}");
    let shown = shown.json();
    assert_eq!(shown["message-id"], "flaky-1@dupont.example");
    assert_eq!(shown["trace"]["rules"][0]["id"], "flaky-mail");
    assert!(
        shown["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{shown}"
    );
    assert_eq!(api.send("GET", "/runs/999999", None).status, 404);

    // Retried while the rule still traps: a second failed run.
    let again = api.send("POST", &format!("/runs/{mail_run}/retry"), None);
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.json()["outcome"], "failed", "{again:?}");

    // The rule fixed, and the rule set reloaded.
    std::fs::write(api.setup.rules.join("flaky.yaml"), rules("nothing")).expect("fix");
    wait_for(
        &mut api.engine,
        Duration::from_secs(30),
        "the fixed rules",
        || {
            crate::api::call(
                port,
                "POST",
                "/contract-events?dry-run=true",
                Some(crate::api::TOKEN),
                Some(r#"{"contract": "K-2026-001", "kind": "expiring"}"#),
            )
            .is_some_and(|a| a.status == 200 && a.json()["outcome"] != "failed")
        },
    );

    for (failed, trigger) in [
        (mail_run, "mail-received"),
        (contract_run, "contract-event"),
    ] {
        let retried = api.send("POST", &format!("/runs/{failed}/retry"), None);
        assert_eq!(retried.status, 200, "{retried:?}");
        let retried = retried.json();
        assert_eq!(retried["outcome"], "applied", "{retried}");
        let run = retried["run"].as_i64().expect("a new run");
        assert!(run > failed);
        let trace = api.send("GET", &format!("/runs/{run}"), None).json();
        assert_eq!(trace["trigger"], trigger);
        assert_eq!(trace["trace"]["retry-of"], failed, "{trace}");
        // The failed run is kept as it was.
        let kept = api.send("GET", &format!("/runs/{failed}"), None).json();
        assert_eq!(kept["outcome"], "failed");
        // Only a failed run is retried.
        let twice = api.send("POST", &format!("/runs/{run}/retry"), None);
        assert_eq!(twice.status, 409, "{twice:?}");
    }
    // The mail is processed now, and its row names the retry's run.
    let mails = api.send("GET", "/mails?sender=jeanne", None).json();
    let row = &mails["mails"][0];
    assert_eq!(row["status"], "processed", "{mails}");
    assert_eq!(row["outcome"], "applied", "{mails}");
    assert_eq!(api.send("POST", "/runs/999999/retry", None).status, 404);
}

#[test]
fn the_cli_lists_failed_runs_and_retries_one_whose_effect_was_refused() {
    // A message posted on a request that does not exist: the host refuses
    // the effect, the mail's run fails.
    let ghost = "rules:\n  - id: ghost\n    on: mail-received\n    run: { plugin: misbehave, config: { do: ghost } }\n";
    let setup = Setup::with_directory().with_rules(&[("ghost.yaml", ghost)]);
    setup.install_plugin(&test_plugin("misbehave"), "misbehave.wasm");
    let mail = crate::support::fixture("mails/catchmail-jeanne.eml");
    let (_, ingested) = setup.ingest_json(&[], &[&mail]);
    assert_eq!(ingested[0]["outcome"], "failed", "{}", ingested[0]);
    let failed = ingested[0]["run"].as_i64().expect("a run");

    let listed = setup.relais(&["runs", "--outcome", "failed", "--rule", "ghost", "--json"]);
    assert_eq!(listed.code, 0, "{listed:?}");
    let rows: Vec<Value> = listed
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(rows.len(), 1, "{listed:?}");
    assert_eq!(rows[0]["id"], failed);
    let bad = setup.relais(&["runs", "--outcome", "broken"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("outcome"), "{bad:?}");

    // Still refused: the retry fails too, and exits 1.
    let again = setup.relais(&["runs", "retry", &failed.to_string(), "--json"]);
    assert_eq!(again.code, 1, "{again:?}");

    // The rule fixed: the retry applies, and names the run it retries.
    let fixed = ghost.replace("do: ghost", "do: nothing");
    std::fs::write(setup.rules.join("ghost.yaml"), fixed).expect("fix");
    let retried = setup.relais(&["runs", "retry", &failed.to_string(), "--json"]);
    assert_eq!(retried.code, 0, "{retried:?}");
    let answer: Value = serde_json::from_str(&retried.stdout).expect("JSON");
    assert_eq!(answer["outcome"], "applied", "{answer}");
    let run = answer["run"].as_i64().expect("a run");
    assert_eq!(setup.explained_trace(run)["retry-of"], failed);
    let twice = setup.relais(&["runs", "retry", &run.to_string()]);
    assert_eq!(twice.code, 1, "{twice:?}");
    assert!(twice.stderr.contains("did not fail"), "{twice:?}");
}

#[test]
fn the_outbox_is_listed_by_status_and_a_failed_mail_is_queued_again() {
    let mut api = Api::start("");
    let saved = api.send(
        "PUT",
        "/requests/23010299",
        Some(&json!({
            "company": "ACME-FR", "customer": "C001", "type": "INCIDENT",
            "requester": "ct-jeanne", "state": "open", "contract": "K-2026-001",
            "subject": "Messagerie lente"
        })),
    );
    assert_eq!(saved.status, 201, "{saved:?}");
    let port = api.port;
    let sent = |port: u16| -> Vec<Value> {
        crate::api::call(
            port,
            "GET",
            "/outbox?status=sent",
            Some(crate::api::TOKEN),
            None,
        )
        .filter(|a| a.status == 200)
        .and_then(|a| a.json().as_array().cloned())
        .unwrap_or_default()
    };
    wait_for(
        &mut api.engine,
        Duration::from_secs(30),
        "the alerts sent",
        || !sent(port).is_empty(),
    );
    let mail = sent(port)[0].clone();
    let id = mail["id"].as_i64().expect("an id");
    assert!(
        mail["subject"]
            .as_str()
            .is_some_and(|s| s.contains("[#23010299]")),
        "{mail}"
    );

    // A sent mail is not queued again.
    let refused = api.send("POST", &format!("/outbox/{id}/retry"), None);
    assert_eq!(refused.status, 409, "{refused:?}");
    assert_eq!(api.send("POST", "/outbox/999999/retry", None).status, 404);

    // Say its server refused it for good, as a permanent failure leaves it.
    let conn = rusqlite::Connection::open(api.setup.db()).expect("open");
    conn.execute(
        "UPDATE outbox SET status = 'failed', last_error = '550 5.1.1 no such user' WHERE id = ?1",
        [id],
    )
    .expect("fail it");
    drop(conn);
    let failed = api.send("GET", "/outbox?status=failed", None).json();
    assert_eq!(failed[0]["id"], id, "{failed}");
    assert_eq!(failed[0]["last-error"], "550 5.1.1 no such user");

    let queued = api.send("POST", &format!("/outbox/{id}/retry"), None);
    assert_eq!(queued.status, 200, "{queued:?}");
    assert_eq!(queued.json()["status"], "queued", "{queued:?}");
    wait_for(
        &mut api.engine,
        Duration::from_secs(30),
        "the mail sent again",
        || sent(port).iter().any(|m| m["id"] == id),
    );
    assert_eq!(api.send("GET", "/outbox?status=lost", None).status, 400);
    assert_eq!(api.send("GET", "/outbox?limit=0", None).status, 400);
}
