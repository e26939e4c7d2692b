//! A request's whole story in one place: opened (its alerts), a mail of
//! the requester landing on it, a direct message, an exchange recorded by
//! hand, in the order they happened; over the HTTP API and the command
//! line.

use serde_json::{Value, json};

use crate::api::{Api, ingest_support_mail, request};

fn kinds(activity: &Value) -> Vec<String> {
    activity["activity"]
        .as_array()
        .expect("activity")
        .iter()
        .map(|entry| entry["kind"].as_str().expect("kind").to_string())
        .collect()
}

#[test]
fn a_requests_activity_tells_its_story_in_order() {
    let api = Api::start("");
    let path = "/requests/23020001";
    let opened = api.send("PUT", path, Some(&request("open")));
    assert_eq!(opened.status, 201, "{opened:?}");
    ingest_support_mail(
        &api.setup,
        "answer.eml",
        "jeanne@dupont.example",
        "answer-1@dupont.example",
        "RE: [#23020001] Imprimante en panne",
    );
    let posted = api.send(
        "POST",
        &format!("{path}/messages"),
        Some(&json!({
            "author": { "kind": "collaborator", "id": "co-paul" },
            "body": "Le technicien passe demain.\nMerci.",
            "notify-by-email": false,
        })),
    );
    assert_eq!(posted.status, 201, "{posted:?}");
    let called = api.send(
        "POST",
        &format!("{path}/exchanges"),
        Some(&json!({ "direction": "sent", "type": "phone-call", "collaborator": "co-paul", "body": "Rappel" })),
    );
    assert_eq!(called.status, 201, "{called:?}");

    let answer = api.send("GET", &format!("{path}/activity"), None);
    assert_eq!(answer.status, 200, "{answer:?}");
    let activity = answer.json();
    assert_eq!(activity["request"]["number"], 23020001);
    assert_eq!(activity["request"]["subject"], "Imprimante en panne");
    assert_eq!(
        kinds(&activity),
        [
            // The two alerts of its opening.
            "mail-sent",
            "mail-sent",
            // Jeanne's answer: an exchange received, and the mail.
            "exchange",
            "mail-received",
            "message",
            "exchange",
        ],
        "{activity:#}"
    );
    let entries = activity["activity"].as_array().expect("entries");
    let at: Vec<&str> = entries
        .iter()
        .map(|e| e["at"].as_str().expect("at"))
        .collect();
    assert!(at.windows(2).all(|w| w[0] <= w[1]), "in order: {at:?}");
    assert_eq!(entries[0]["mail"]["kind"], "mail", "{}", entries[0]);
    assert!(
        entries[0]["mail"]["subject"]
            .as_str()
            .is_some_and(|s| s.starts_with("[OUVERTURE]")),
        "{}",
        entries[0]
    );
    assert_eq!(entries[3]["mail"]["message-id"], "answer-1@dupont.example");
    assert!(entries[3]["mail"]["run"].as_i64().is_some());
    assert_eq!(entries[4]["message"]["author-id"], "co-paul");
    assert_eq!(entries[5]["exchange"]["type"], "phone-call");

    let missing = api.send("GET", "/requests/99999999/activity", None);
    assert_eq!(missing.status, 404, "{missing:?}");
    assert_eq!(api.send("GET", "/requests/abc/activity", None).status, 400);

    // The command line tells the same story.
    let shown = api.setup.relais(&["request", "show", "23020001"]);
    assert_eq!(shown.code, 0, "{shown:?}");
    let lines: Vec<&str> = shown.stdout.lines().collect();
    assert!(
        lines[0].starts_with("request 23020001: Imprimante en panne [open]"),
        "{}",
        shown.stdout
    );
    assert_eq!(lines.len(), 7, "{}", shown.stdout);
    assert!(lines[1].contains("sent      mail to "), "{}", lines[1]);
    assert!(
        lines[4].contains("received  <answer-1@dupont.example> from jeanne@dupont.example"),
        "{}",
        lines[4]
    );
    assert!(
        lines[5].ends_with(
            "message   collaborator co-paul (staff, desktop) unread: Le technicien passe demain."
        ),
        "{}",
        lines[5]
    );
    let json = api.setup.relais(&["request", "show", "23020001", "--json"]);
    let parsed: Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(kinds(&parsed), kinds(&activity));
    let unknown = api.setup.relais(&["request", "show", "99999999"]);
    assert_eq!(unknown.code, 1, "{unknown:?}");
    assert!(
        unknown.stderr.contains("no request 99999999"),
        "{unknown:?}"
    );
}
