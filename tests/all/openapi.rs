//! The HTTP API answers what its OpenAPI document says: every route is
//! called, for its successes and its failures, on a running daemon, and
//! each answer's status, content type and body are checked against the
//! document the daemon serves. A route, status or field the document does
//! not name fails, and so does a documented route no call reached.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::api::{Answer, Api, TOKEN, ingest_support_mail, request};

/// The document, and which operations and statuses were seen.
struct Contract {
    document: Value,
    seen: BTreeSet<(String, String, String)>,
}

impl Contract {
    fn new(document: Value) -> Contract {
        Contract {
            document,
            seen: BTreeSet::new(),
        }
    }

    /// Checks `answer` to `method template`, the documented path the
    /// concrete call was made to.
    fn check(&mut self, method: &str, template: &str, answer: &Answer) {
        let what = format!("{method} {template} answered {}", answer.status);
        let operation = &self.document["paths"][template][method.to_lowercase()];
        assert!(operation.is_object(), "{what}: not in the document");
        let status = answer.status.to_string();
        let response = &operation["responses"][&status];
        assert!(
            response.is_object(),
            "{what}: status not documented; body {}",
            answer.body
        );
        self.seen
            .insert((template.to_string(), method.to_lowercase(), status));
        let content = response["content"].as_object().expect("content");
        let content_type = answer
            .headers
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-type")
                    .then(|| value.trim().to_string())
            })
            .unwrap_or_default();
        let (documented, media) = content
            .iter()
            .find(|(name, _)| content_type.starts_with(name.as_str()))
            .unwrap_or_else(|| panic!("{what}: content type {content_type} not documented"));
        if documented != "application/json" {
            return;
        }
        let body: Value = serde_json::from_str(&answer.body)
            .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", answer.body));
        let mut components = self.document["components"].clone();
        close_objects(&mut components);
        let mut schema = media["schema"].clone();
        close_objects(&mut schema);
        let root = json!({ "components": components, "allOf": [schema] });
        let validator = jsonschema::validator_for(&root).expect("a valid schema");
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what}: the body does not match the document:\n{}\nbody: {body:#}",
            errors.join("\n")
        );
    }

    /// Every documented operation was called.
    fn all_called(&self) {
        let mut missing = Vec::new();
        for (path, item) in self.document["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("item").keys() {
                if !self.seen.iter().any(|(p, m, _)| p == path && m == method) {
                    missing.push(format!("{method} {path}"));
                }
            }
        }
        assert!(missing.is_empty(), "never called: {missing:?}");
    }
}

/// Closes every object schema with properties: a field the document does
/// not name is a difference too.
fn close_objects(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".to_string(), Value::Bool(false));
            }
            map.values_mut().for_each(close_objects);
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

#[test]
fn every_route_answers_what_its_document_says() {
    let api = Api::start("");
    let document = api
        .call("GET", "/openapi.json", None, None)
        .expect("answer");
    assert_eq!(document.status, 200, "public: {document:?}");
    let mut contract = Contract::new(document.json());
    contract.check("GET", "/openapi.json", &document);
    let mut call = |method: &str, template: &str, path: &str, body: Option<Value>| {
        let answer = api.send(method, path, body.as_ref());
        contract.check(method, template, &answer);
        answer
    };

    call("GET", "/health", "/health", None);
    call("GET", "/metrics", "/metrics", None);
    call("GET", "/status", "/status", None);

    // A request as GET gives it goes back whole as a PUT.
    let read = call("GET", "/requests/{number}", "/requests/23010203", None);
    let saved = call(
        "PUT",
        "/requests/{number}",
        "/requests/23010203",
        Some(read.json()),
    );
    assert_eq!(saved.status, 200, "{saved:?}");
    call("GET", "/requests/{number}", "/requests/999", None);
    call("GET", "/requests/{number}", "/requests/nine", None);
    let opened = call(
        "PUT",
        "/requests/{number}",
        "/requests/23050001",
        Some(request("open")),
    );
    assert_eq!(opened.status, 201, "{opened:?}");
    call(
        "PUT",
        "/requests/{number}",
        "/requests/23050002?dry-run=true",
        Some(request("open")),
    );
    call(
        "PUT",
        "/requests/{number}",
        "/requests/23050003",
        Some(json!({ "state": "open" })),
    );

    let messages = "/requests/{number}/messages";
    call("GET", messages, "/requests/23010203/messages", None);
    call("GET", messages, "/requests/999/messages", None);
    let paul = json!({
        "author": { "kind": "collaborator", "id": "co-paul" },
        "body": "Le technicien passe demain.",
        "notify-by-email": true,
    });
    let posted = call(
        "POST",
        messages,
        "/requests/23010203/messages",
        Some(paul.clone()),
    );
    assert_eq!(posted.status, 201, "{posted:?}");
    call(
        "POST",
        messages,
        "/requests/23010203/messages",
        Some(json!({ "author": { "kind": "contact", "id": "nobody" }, "body": "x" })),
    );
    call(
        "POST",
        messages,
        "/requests/999/messages",
        Some(paul.clone()),
    );
    let mut locked = read.json();
    locked["conversation-locked"] = json!(true);
    locked["number"] = json!(23050004);
    call(
        "PUT",
        "/requests/{number}",
        "/requests/23050004",
        Some(locked),
    );
    let refused = call("POST", messages, "/requests/23050004/messages", Some(paul));
    assert_eq!(refused.status, 409, "{refused:?}");

    let id = posted.json()["message"]["id"].as_i64().expect("an id");
    let mark = "/messages/{id}/read";
    call(
        "PUT",
        mark,
        &format!("/messages/{id}/read"),
        Some(json!({ "read": true })),
    );
    call(
        "PUT",
        mark,
        "/messages/99999/read",
        Some(json!({ "read": true })),
    );
    call(
        "PUT",
        mark,
        "/messages/x/read",
        Some(json!({ "read": true })),
    );

    let exchanges = "/requests/{number}/exchanges";
    call("GET", exchanges, "/requests/23010203/exchanges", None);
    call("GET", exchanges, "/requests/999/exchanges", None);
    let phoned = json!({ "direction": "received", "type": "appel", "subject": "Au téléphone" });
    call(
        "POST",
        exchanges,
        "/requests/23010203/exchanges",
        Some(phoned.clone()),
    );
    call(
        "POST",
        exchanges,
        "/requests/23010203/exchanges",
        Some(json!({ "direction": "sideways" })),
    );
    call("POST", exchanges, "/requests/999/exchanges", Some(phoned));

    let events = "/contract-events";
    let expiring = json!({ "contract": "K-2026-001", "kind": "expiring" });
    call("POST", events, events, Some(expiring.clone()));
    call(
        "POST",
        events,
        "/contract-events?dry-run=true",
        Some(expiring),
    );
    call(
        "POST",
        events,
        events,
        Some(json!({ "contract": "K-404", "kind": "expiring" })),
    );

    let fire = "/rules/{id}/fire";
    call("POST", fire, "/rules/waiting-customer-reminders/fire", None);
    call(
        "POST",
        fire,
        "/rules/waiting-customer-reminders/fire?dry-run=true",
        Some(json!({ "at": "2026-11-23T09:00:00+01:00" })),
    );
    call("POST", fire, "/rules/catchmail/fire", None);
    call("POST", fire, "/rules/no-such-rule/fire", None);

    // The import takes YAML, which a JSON body is.
    let import = api
        .call(
            "POST",
            "/import",
            Some(TOKEN),
            Some("customers:\n  - { code: C002, name: Martin SARL, company: ACME-FR }\n"),
        )
        .expect("answer");
    contract.check("POST", "/import", &import);
    let bad = api
        .call(
            "POST",
            "/import",
            Some(TOKEN),
            Some("contacts: [{ id: x }]\n"),
        )
        .expect("answer");
    contract.check("POST", "/import", &bad);

    ingest_support_mail(
        &api.setup,
        "j1.eml",
        "jeanne@dupont.example",
        "j1@dupont.example",
        "RE: Imprimante du 2e étage en panne",
    );
    ingest_support_mail(
        &api.setup,
        "q1.eml",
        "prospect@elsewhere.example",
        "q1@elsewhere.example",
        "Devis",
    );
    let mut call = |method: &str, template: &str, path: &str, body: Option<Value>| {
        let answer = api.send(method, path, body.as_ref());
        contract.check(method, template, &answer);
        answer
    };
    call(
        "GET",
        "/mails/{message_id}/thread",
        "/mails/j1@dupont.example/thread",
        None,
    );
    call(
        "GET",
        "/mails/{message_id}/thread",
        "/mails/none@x/thread",
        None,
    );
    call(
        "GET",
        "/mails/{message_id}/candidates",
        "/mails/j1@dupont.example/candidates",
        None,
    );
    call(
        "GET",
        "/mails/{message_id}/candidates",
        "/mails/none@x/candidates",
        None,
    );
    let ticket = "/mails/{message_id}/ticket";
    let stranger = "/mails/q1@elsewhere.example/ticket";
    call("PUT", ticket, stranger, Some(json!({ "ticket": 23010203 })));
    call("PUT", ticket, stranger, Some(json!({ "ticket": 23010204 })));
    call("PUT", ticket, stranger, Some(json!({})));
    call(
        "PUT",
        ticket,
        "/mails/none@x/ticket",
        Some(json!({ "ticket": 23010203 })),
    );
    let created = call(
        "PUT",
        ticket,
        stranger,
        Some(json!({ "new": { "requester": "ct-jeanne", "type": "INCIDENT" }, "move": true })),
    );
    assert_eq!(created.status, 201, "{created:?}");
    call("GET", "/mails", "/mails?linked=true&limit=1", None);
    let activity = "/requests/{number}/activity";
    call("GET", activity, "/requests/23010203/activity", None);
    call("GET", activity, "/requests/99999999/activity", None);
    call("GET", activity, "/requests/abc/activity", None);
    call("GET", "/mails", "/mails?since=soon", None);
    let attachments = "/mails/{message_id}/attachments";
    call(
        "GET",
        attachments,
        "/mails/q1@elsewhere.example/attachments",
        None,
    );
    call("GET", attachments, "/mails/none@x/attachments", None);
    let attachment = "/mails/{message_id}/attachments/{n}";
    call(
        "GET",
        attachment,
        "/mails/q1@elsewhere.example/attachments/0",
        None,
    );
    call("GET", "/outbox", "/outbox?limit=3", None);
    call("GET", "/outbox", "/outbox?status=lost", None);
    let outbox_retry = "/outbox/{id}/retry";
    call("POST", outbox_retry, "/outbox/999999/retry", None);
    call("GET", "/runs", "/runs?limit=2", None);
    call("GET", "/runs", "/runs?trigger=manual&outcome=applied", None);
    call("GET", "/runs", "/runs?outcome=broken", None);
    let run = "/runs/{id}";
    let listed = call("GET", "/runs", "/runs?limit=1", None);
    let newest = listed.json()["runs"][0]["id"].as_i64().expect("a run");
    call("GET", run, &format!("/runs/{newest}"), None);
    call("GET", run, "/runs/999999", None);
    let retry = "/runs/{id}/retry";
    // The newest run did not fail: 409.
    call("POST", retry, &format!("/runs/{newest}/retry"), None);
    call("POST", retry, "/runs/999999/retry", None);

    let without = api.call("GET", "/status", None, None).expect("answer");
    contract.check("GET", "/status", &without);
    contract.all_called();
}
