//! The writes a person asks for (a message posted, an exchange recorded, a
//! message marked read, a mail linked by hand, an import) go through the
//! effects path and each leaves a run of its own, marked manual, with
//! through what it was asked and what it wrote; a refused one leaves none.

use serde_json::{Value, json};

use crate::api::{Api, ingest_support_mail};
use crate::support::{Setup, fixture};
use relais::store::prelude::*;

/// The manual runs of the store, oldest first, each with its trace.
fn manual_runs(setup: &Setup) -> Vec<(String, Value)> {
    let store = setup.store();
    let mut runs: Vec<(String, Value)> = store
        .runs(100)
        .expect("runs")
        .into_iter()
        .filter(|run| run.trigger == "manual")
        .map(|run| {
            let full = store.run(run.id).expect("run").expect("stored");
            assert_eq!(full.outcome, "applied", "{full:?}");
            (full.summary, full.trace)
        })
        .collect();
    runs.reverse();
    runs
}

fn written(trace: &Value) -> (&str, &str, &Value) {
    (
        trace["manual"]["write"].as_str().expect("write"),
        trace["manual"]["via"].as_str().expect("via"),
        &trace["effects"][0],
    )
}

#[test]
fn each_write_over_the_api_is_a_manual_run_with_its_effect() {
    let api = Api::start("");
    // The set-up's import, through the command line.
    let before = manual_runs(&api.setup);
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(written(&before[0].1).0, "import");
    assert_eq!(written(&before[0].1).1, "cli");

    let posted = api.send(
        "POST",
        "/requests/23010203/messages",
        Some(&json!({
            "author": { "kind": "collaborator", "id": "co-paul" },
            "body": "Le technicien passe demain.",
        })),
    );
    assert_eq!(posted.status, 201, "{posted:?}");
    let message = posted.json()["message"]["id"].as_i64().expect("id");
    let read = api.send(
        "PUT",
        &format!("/messages/{message}/read"),
        Some(&json!({ "read": true })),
    );
    assert_eq!(read.status, 200, "{read:?}");
    let exchange = api.send(
        "POST",
        "/requests/23010190/exchanges",
        Some(&json!({ "direction": "received", "type": "phone-call", "body": "Jeanne a appelé" })),
    );
    assert_eq!(exchange.status, 201, "{exchange:?}");
    ingest_support_mail(
        &api.setup,
        "q1.eml",
        "prospect@elsewhere.example",
        "q1@elsewhere.example",
        "Devis",
    );
    let linked = api.send(
        "PUT",
        "/mails/q1@elsewhere.example/ticket",
        Some(&json!({ "ticket": 23010203 })),
    );
    assert_eq!(linked.status, 200, "{linked:?}");
    // Already there: nothing to write, no run.
    let again = api.send(
        "PUT",
        "/mails/q1@elsewhere.example/ticket",
        Some(&json!({ "ticket": 23010203 })),
    );
    assert_eq!(again.status, 200, "{again:?}");
    let import = api.call(
        "POST",
        "/import",
        Some(crate::api::TOKEN),
        Some("companies:\n  - { code: ACME-NORD, name: ACME Nord }\n"),
    );
    assert_eq!(import.expect("answer").status, 200);

    // Refused writes leave no run: an unknown author, a message posted by
    // a contact of another customer, a link to no ticket, a bad import.
    let refused = [
        api.send(
            "POST",
            "/requests/23010203/messages",
            Some(&json!({ "author": { "kind": "collaborator", "id": "co-nobody" }, "body": "x" })),
        ),
        api.send(
            "PUT",
            "/mails/q1@elsewhere.example/ticket",
            Some(&json!({ "ticket": 99999999, "move": true })),
        ),
        api.send(
            "PUT",
            "/messages/999999/read",
            Some(&json!({ "read": true })),
        ),
        api.call(
            "POST",
            "/import",
            Some(crate::api::TOKEN),
            Some("contacts:\n  - { id: ct-x, name: X, customer: NOBODY }\n"),
        )
        .expect("answer"),
    ];
    for answer in &refused {
        assert!(answer.status >= 400, "{answer:?}");
    }

    let runs = manual_runs(&api.setup);
    let kinds: Vec<(&str, &str)> = runs[1..]
        .iter()
        .map(|(_, trace)| {
            let (write, via, _) = written(trace);
            (write, via)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("post-message", "api"),
            ("mark-read", "api"),
            ("record-exchange", "api"),
            ("link-mail-by-hand", "api"),
            ("import", "api"),
        ],
        "{runs:#?}"
    );
    let effect = |index: usize| written(&runs[index].1).2.clone();
    assert_eq!(effect(1)["kind"], "post-message");
    assert_eq!(effect(1)["author"]["id"], "co-paul");
    assert_eq!(effect(1)["request"], 23010203);
    assert_eq!(
        effect(2),
        json!({ "kind": "mark-read", "message": message, "read": true })
    );
    assert_eq!(effect(3)["request"], 23010190);
    assert_eq!(effect(3)["type"], "phone-call");
    assert_eq!(
        effect(4),
        json!({
            "kind": "link-mail-by-hand",
            "message-id": "q1@elsewhere.example",
            "ticket": 23010203,
            "move": false,
        })
    );
    assert_eq!(effect(5)["companies"], 1);
    assert_eq!(runs[4].0, "mail <q1@elsewhere.example> linked to 23010203");

    // What the writes made points at their runs: the message, the link.
    let store = api.setup.store();
    let ids: Vec<i64> = store
        .runs(100)
        .expect("runs")
        .into_iter()
        .filter(|run| run.trigger == "manual")
        .map(|run| run.id)
        .collect();
    let post_run = ids[ids.len() - 2];
    let link_run = ids[1];
    let conn = rusqlite::Connection::open(api.setup.db()).expect("open");
    let message_run: Option<i64> = conn
        .query_row("SELECT run FROM messages WHERE id = ?1", [message], |r| {
            r.get(0)
        })
        .expect("message");
    assert_eq!(message_run, Some(post_run));
    let link: (Option<i64>, String) = conn
        .query_row(
            "SELECT l.run, l.how FROM mail_links AS l JOIN mails AS m ON m.id = l.mail
             WHERE m.message_id = 'q1@elsewhere.example'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("link");
    assert_eq!(link, (Some(link_run), "manual".to_string()));

    // `relais runs show` says what it was.
    let shown = api.setup.relais(&["runs", "show", &link_run.to_string()]);
    assert_eq!(shown.code, 0, "{shown:?}");
    assert!(
        shown.stdout.contains("  trigger:  manual"),
        "{}",
        shown.stdout
    );
    assert!(
        shown
            .stdout
            .contains("  manual:   link-mail-by-hand, through the api"),
        "{}",
        shown.stdout
    );
    assert!(
        shown.stdout.contains("\"ticket\":23010203"),
        "{}",
        shown.stdout
    );
}

#[test]
fn a_link_by_hand_on_the_command_line_is_a_manual_run_and_a_refused_one_is_none() {
    let setup = Setup::with_directory();
    let mail = fixture("mails/catchmail-stranger.eml");
    let run = setup.relais(&["ingest", mail.to_str().expect("utf-8")]);
    assert_eq!(run.code, 0, "{run:?}");
    let id = setup
        .store()
        .runs(1)
        .expect("runs")
        .pop()
        .and_then(|run| setup.store().run(run.id).ok().flatten())
        .and_then(|run| run.message_id)
        .expect("the mail's id");
    let refused = setup.relais(&["link", &id, "99999999"]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert_eq!(manual_runs(&setup).len(), 1, "only the set-up's import");

    let linked = setup.relais(&["link", &id, "23010203", "--move"]);
    assert_eq!(linked.code, 0, "{linked:?}");
    let runs = manual_runs(&setup);
    assert_eq!(runs.len(), 2, "{runs:#?}");
    let (write, via, effect) = written(&runs[1].1);
    assert_eq!((write, via), ("link-mail-by-hand", "cli"));
    assert_eq!(effect["ticket"], 23010203);
    assert_eq!(effect["move"], true);
}
