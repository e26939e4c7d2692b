//! The HTTP API of `relais run`, over loopback, in the default set-up: the
//! demo directory, the shipped rules and templates, outbound mail written
//! to the pickup folder. Each test runs its own daemon on its own port.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Engine, Setup, root, wait_for};
use relais::store::prelude::*;

pub const TOKEN: &str = "test-token-0123456789abcdef";

/// A running daemon with its HTTP API.
pub struct Api {
    pub setup: Setup,
    pub engine: Engine,
    pub port: u16,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

impl Api {
    /// The demo directory imported, and `relais run` with the API on a
    /// free port; `extra` is appended to the config.
    pub fn start(extra: &str) -> Api {
        Api::start_with(Setup::new(), false, extra)
    }

    /// The same on `setup` (its rules, its plugins), with the spool folder
    /// `spool/` watched when `spool` is set.
    pub fn start_with(setup: Setup, spool: bool, extra: &str) -> Api {
        let import = setup.relais(&[
            "import",
            root().join("demo/directory.yaml").to_str().expect("utf-8"),
        ]);
        assert_eq!(import.code, 0, "{import:?}");
        std::fs::write(setup.dir.path().join("api-token"), TOKEN).expect("token file");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let config = format!(
            "database: relais.db
rules: {rules}
templates: {templates}
plugins: plugins
spool: {spool}
outbox: {{ pickup: outbox }}
http: {{ listen: 127.0.0.1:{port}, token: {{ file: api-token }} }}
{extra}",
            rules = setup.rules.display(),
            templates = root().join("templates").display(),
            spool = if spool { "spool" } else { "~" },
        );
        let path = setup.dir.path().join("relais.yaml");
        std::fs::write(&path, config).expect("config");
        let mut engine = Engine::start(&setup, &path);
        wait_for(&mut engine, Duration::from_secs(30), "the API", || {
            call(port, "GET", "/health", None, None).is_some_and(|a| a.status == 200)
        });
        Api {
            setup,
            engine,
            port,
        }
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Option<Answer> {
        call(self.port, method, path, token, body)
    }

    /// With the token.
    pub fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Answer {
        let body = body.map(Value::to_string);
        self.call(method, path, Some(TOKEN), body.as_deref())
            .unwrap_or_else(|| panic!("{method} {path}: no answer; log:\n{}", self.engine.log()))
    }

    fn pickup(&self) -> PathBuf {
        self.setup.dir.path().join("outbox")
    }

    /// Waits until the pickup folder holds `count` mails; returns them
    /// parsed: (to, subject, text body), sorted.
    fn delivered(&mut self, count: usize) -> Vec<(String, String, String)> {
        let pickup = self.pickup();
        wait_for(
            &mut self.engine,
            Duration::from_secs(30),
            &format!("{count} mails in the pickup folder"),
            || eml_files(&pickup).len() >= count,
        );
        let mut mails: Vec<_> = eml_files(&pickup).iter().map(|p| read_mail(p)).collect();
        mails.sort();
        assert_eq!(mails.len(), count, "{mails:#?}");
        mails
    }
}

/// One HTTP/1.1 request on loopback; `None` when nothing listens yet.
pub fn call(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Option<Answer> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let body = body.unwrap_or("");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some(Answer {
        status,
        headers: head.to_string(),
        body: body.to_string(),
    })
}

fn eml_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                .collect()
        })
        .unwrap_or_default()
}

fn read_mail(path: &Path) -> (String, String, String) {
    parse_mail(&std::fs::read(path).expect("read mail"))
}

/// (to, subject, text body) of a raw mail.
pub fn parse_mail(raw: &[u8]) -> (String, String, String) {
    let mail = mail_parser::MessageParser::default()
        .parse(raw)
        .expect("a mail");
    let to = mail
        .to()
        .and_then(|to| to.first())
        .and_then(|a| a.address())
        .unwrap_or_default()
        .to_string();
    let subject = mail.subject().unwrap_or_default().to_string();
    let body = mail.body_text(0).unwrap_or_default().replace("\r\n", "\n");
    (to, subject, body)
}

pub fn request(state: &str) -> Value {
    json!({
        "company": "ACME-FR",
        "customer": "C001",
        "type": "INCIDENT",
        "requester": "ct-jeanne",
        "state": state,
        "contract": "K-2026-001",
        "subject": "Imprimante en panne",
    })
}

/// `to` and `subject` of the send-mail effects of an answer.
fn sent(answer: &Value) -> Vec<(String, String)> {
    answer["effects"]
        .as_array()
        .expect("effects")
        .iter()
        .filter(|e| e["kind"] == "send-mail")
        .map(|e| {
            (
                e["to"][0].as_str().expect("to").to_string(),
                e["subject"].as_str().expect("subject").to_string(),
            )
        })
        .collect()
}

#[test]
fn every_route_but_health_needs_the_token() {
    let api = Api::start("");
    let health = api.call("GET", "/health", None, None).expect("answer");
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
    // The API's description is public.
    let openapi = api
        .call("GET", "/openapi.json", None, None)
        .expect("answer");
    assert_eq!(openapi.status, 200, "{openapi:?}");
    let before = api.setup.store().runs(10).expect("runs").len();
    for (method, path) in [
        ("GET", "/metrics"),
        ("GET", "/requests/23010203"),
        ("GET", "/mails?linked=false"),
        ("GET", "/requests/23010203/activity"),
        ("PUT", "/requests/23010203"),
        ("GET", "/requests/23010203/messages"),
        ("POST", "/requests/23010203/messages"),
        ("PUT", "/messages/1/read"),
        ("POST", "/contract-events"),
        ("POST", "/import"),
    ] {
        let missing = api.call(method, path, None, Some("{}")).expect("answer");
        assert_eq!(missing.status, 401, "{method} {path} without token");
        assert!(
            missing.headers.contains("www-authenticate: Bearer"),
            "{missing:?}"
        );
        assert!(
            missing.json()["error"]
                .as_str()
                .expect("error")
                .contains("missing token")
        );
        let wrong = api
            .call(method, path, Some("not-the-token-at-all"), Some("{}"))
            .expect("answer");
        assert_eq!(wrong.status, 401, "{method} {path} with a wrong token");
    }
    assert_eq!(
        api.setup.store().runs(10).expect("runs").len(),
        before,
        "nothing ran"
    );
    let openapi = api.send("GET", "/openapi.json", None);
    assert_eq!(openapi.status, 200);
    assert_eq!(openapi.json()["openapi"], "3.1.0");
    let request = api.send("GET", "/requests/23010203", None);
    assert_eq!(request.json()["subject"], "Imprimante du 2e étage en panne");
    assert_eq!(api.send("GET", "/requests/999", None).status, 404);
}

#[test]
fn saves_through_each_change_kind_send_the_exact_alerts() {
    let mut api = Api::start("");
    let path = "/requests/23020001";

    let opened = api.send("PUT", path, Some(&request("open")));
    assert_eq!(opened.status, 201, "{}", opened.body);
    let opened = opened.json();
    assert_eq!(opened["changes"], json!(["opened"]));
    assert_eq!(opened["outcome"], "applied");
    assert_eq!(
        sent(&opened),
        [
            (
                "jeanne@dupont.example".to_string(),
                "[OUVERTURE] [#23020001] Imprimante en panne".to_string()
            ),
            (
                "paul@acme.example".to_string(),
                "[OUVERTURE] [#23020001] Imprimante en panne".to_string()
            ),
        ],
        "jeanne once though in two groups; paul as a product collaborator"
    );

    // The same request again: no change, no alert, but its own event.
    let same = api.send("PUT", path, Some(&request("open")));
    assert_eq!(same.status, 200);
    assert_eq!(same.json()["changes"], json!([]));
    assert_eq!(same.json()["outcome"], "no-match");
    assert!(sent(&same.json()).is_empty());

    // The contract does not enable state-changed alerts.
    let waiting = api.send("PUT", path, Some(&request("waiting"))).json();
    assert_eq!(waiting["changes"], json!(["state-changed"]));
    assert!(sent(&waiting).is_empty(), "{waiting}");
    let run = api
        .setup
        .store()
        .run(waiting["run"].as_i64().expect("run"))
        .expect("store")
        .expect("traced");
    let trace = run.trace.to_string();
    assert!(
        trace.contains("does not enable `state-changed` alerts"),
        "the trace says why: {trace}"
    );

    // Resolved: paul did not subscribe to resolutions.
    let resolved = api.send("PUT", path, Some(&request("resolved"))).json();
    assert_eq!(resolved["changes"], json!(["resolved", "state-changed"]));
    assert_eq!(
        sent(&resolved),
        [(
            "jeanne@dupont.example".to_string(),
            "[RESOLUTION] [#23020001] Imprimante en panne".to_string()
        )]
    );

    let closed = api.send("PUT", path, Some(&request("closed"))).json();
    assert_eq!(closed["changes"], json!(["closed", "state-changed"]));
    assert_eq!(sent(&closed).len(), 2);

    let mails = api.delivered(5);
    let expected_opened = "Bonjour Jeanne Martin,\n\n\
        La demande 23020001 « Imprimante en panne » a été ouverte pour Dupont SA (contrat K-2026-001).\n\n\
        Type : INCIDENT\nÉtat : open\n\n\
        Répondez à ce message pour écrire sur la demande.\n\n-- \nAlerte automatique du support\n";
    let expected_resolved = "Bonjour Jeanne Martin,\n\n\
        La demande 23020001 « Imprimante en panne » de Dupont SA est résolue (état précédent : waiting).\n\n\
        Si le problème persiste, répondez à ce message.\n\n-- \nAlerte automatique du support\n";
    let expected_closed_paul = "Bonjour Paul Durand,\n\n\
        La demande 23020001 « Imprimante en panne » de Dupont SA est clôturée.\n\n-- \nAlerte automatique du support\n";
    let find = |to: &str, keyword: &str| {
        mails
            .iter()
            .find(|(t, s, _)| t == to && s.starts_with(keyword))
            .unwrap_or_else(|| panic!("no {keyword} mail to {to}: {mails:#?}"))
            .2
            .clone()
    };
    assert_eq!(
        find("jeanne@dupont.example", "[OUVERTURE]"),
        expected_opened
    );
    assert_eq!(
        find("jeanne@dupont.example", "[RESOLUTION]"),
        expected_resolved
    );
    assert_eq!(find("paul@acme.example", "[CLOTURE]"), expected_closed_paul);
    assert!(
        mails
            .iter()
            .any(|(t, s, _)| t == "paul@acme.example" && s.starts_with("[OUVERTURE]"))
    );
    assert!(
        mails
            .iter()
            .any(|(t, s, _)| t == "jeanne@dupont.example" && s.starts_with("[CLOTURE]"))
    );
    // Automatic mail: out-of-office robots must not answer it.
    let raw = std::fs::read_to_string(&eml_files(&api.pickup())[0]).expect("read");
    assert!(raw.contains("Auto-Submitted: auto-generated"), "{raw}");
}

#[test]
fn saves_in_quick_succession_are_each_their_own_event() {
    let mut api = Api::start("");
    // Three requests saved from three threads at once, twice each.
    std::thread::scope(|scope| {
        for number in [23030001, 23030002, 23030003] {
            let api = &api;
            scope.spawn(move || {
                let path = format!("/requests/{number}");
                assert_eq!(api.send("PUT", &path, Some(&request("open"))).status, 201);
                let closed = api.send("PUT", &path, Some(&request("closed")));
                assert_eq!(closed.status, 200);
                assert_eq!(closed.json()["changes"], json!(["closed", "state-changed"]));
            });
        }
    });
    let runs = crate::support::event_runs(&api.setup.store(), 100);
    assert_eq!(runs.len(), 6, "one run per save");
    assert!(runs.iter().all(|r| r.outcome == "applied"), "{runs:#?}");
    // opened: jeanne and paul; closed: jeanne and paul; three requests.
    assert_eq!(api.delivered(12).len(), 12);
}

#[test]
fn bad_input_is_refused_with_the_field_named_and_nothing_written() {
    let api = Api::start("");
    let put = |body: &str| {
        api.call("PUT", "/requests/23040001", Some(TOKEN), Some(body))
            .expect("answer")
    };
    let malformed = put("{\"company\": \"ACME-FR\",");
    assert_eq!(malformed.status, 400);
    let error = malformed.json()["error"]
        .as_str()
        .expect("error")
        .to_string();
    assert!(error.starts_with("malformed JSON"), "{error}");

    let with = |field: &str, value: Value| {
        let mut body = request("open");
        body[field] = value;
        put(&body.to_string())
    };
    for (field, value, message) in [
        ("customer", json!("C999"), "unknown customer `C999`"),
        ("contract", json!("K-404"), "unknown contract `K-404`"),
        (
            "requester",
            json!("ct-nobody"),
            "unknown contact `ct-nobody`",
        ),
        ("company", json!("NOPE"), "unknown company `NOPE`"),
        ("type", json!("BUG"), "unknown request type `BUG`"),
        (
            "number",
            json!(1),
            "1 differs from the number in the path (23040001)",
        ),
        (
            "state",
            json!(7),
            "invalid type: integer `7`, expected a string",
        ),
    ] {
        let answer = with(field, value);
        assert_eq!(answer.status, 400, "{field}: {}", answer.body);
        let body = answer.json();
        assert_eq!(body["field"], field, "{body}");
        assert!(
            body["error"].as_str().expect("error").contains(message),
            "{field}: {body}"
        );
    }
    let unknown = with("colour", json!("red"));
    assert_eq!(unknown.status, 400);
    assert!(
        unknown.body.contains("unknown field `colour`"),
        "{}",
        unknown.body
    );

    let event = api
        .call(
            "POST",
            "/contract-events",
            Some(TOKEN),
            Some(r#"{"contract": "K-404", "kind": "expiring"}"#),
        )
        .expect("answer");
    assert_eq!(event.status, 400);
    assert_eq!(event.json()["field"], "contract");

    let message = api
        .call(
            "POST",
            "/requests/23010203/messages",
            Some(TOKEN),
            Some(r#"{"author": {"kind": "contact", "id": "ct-ghost"}, "body": "hello"}"#),
        )
        .expect("answer");
    assert_eq!(message.status, 400);
    assert_eq!(message.json()["field"], "author.id");

    let store = api.setup.store();
    assert_eq!(
        store.request(23040001).expect("store"),
        None,
        "nothing written"
    );
    assert!(
        crate::support::event_runs(&store, 10).is_empty(),
        "no event ran"
    );
    assert!(store.outbox(None, 10).expect("outbox").is_empty());
    assert!(store.messages(23010203).expect("messages").is_empty());
}

#[test]
fn direct_messages_are_read_posted_and_marked_read_over_the_api() {
    let mut api = Api::start("");
    let path = "/requests/23010203/messages";
    assert_eq!(api.send("GET", path, None).json()["messages"], json!([]));

    let staff = api.send(
        "POST",
        path,
        Some(&json!({
            "author": { "kind": "collaborator", "id": "co-paul" },
            "body": "Le technicien passe demain matin.",
            "notify-by-email": true,
        })),
    );
    assert_eq!(staff.status, 201, "{}", staff.body);
    let staff = staff.json();
    assert_eq!(staff["message"]["side"], "staff");
    assert_eq!(staff["message"]["source"], "desktop");
    assert_eq!(staff["notified"], "jeanne@dupont.example");

    let customer = api.send(
        "POST",
        path,
        Some(&json!({
            "author": { "kind": "contact", "id": "ct-jeanne" },
            "body": "Merci, je serai là.",
        })),
    );
    assert_eq!(customer.status, 201);
    let customer = customer.json();
    assert_eq!(customer["message"]["side"], "customer");
    assert_eq!(customer["message"]["source"], "portal");
    assert_eq!(
        customer["message"]["notify-by-email"], false,
        "the desk's default setting"
    );

    let id = customer["message"]["id"].as_i64().expect("id");
    let read = api.send(
        "PUT",
        &format!("/messages/{id}/read"),
        Some(&json!({ "read": true })),
    );
    assert_eq!(read.json()["read"], true);
    let unread = api.send(
        "PUT",
        &format!("/messages/{id}/read"),
        Some(&json!({ "read": false })),
    );
    assert_eq!(unread.json()["read"], false);
    assert_eq!(
        api.send(
            "PUT",
            "/messages/99999/read",
            Some(&json!({ "read": true }))
        )
        .status,
        404
    );

    let thread = api.send("GET", path, None).json();
    let bodies: Vec<&str> = thread["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["body"].as_str().expect("body"))
        .collect();
    assert_eq!(
        bodies,
        ["Le technicien passe demain matin.", "Merci, je serai là."]
    );

    // A locked conversation keeps its messages and accepts no new one.
    let locked = api.send(
        "POST",
        "/requests/23010204/messages",
        Some(&json!({ "author": { "kind": "collaborator", "id": "co-paul" }, "body": "?" })),
    );
    assert_eq!(locked.status, 409, "{}", locked.body);
    assert!(
        locked.body.contains("conversation is locked"),
        "{}",
        locked.body
    );

    // A contact writes on the customer side only.
    let wrong_side = api.send(
        "POST",
        path,
        Some(&json!({ "author": { "kind": "contact", "id": "ct-jeanne" }, "side": "staff", "body": "x" })),
    );
    assert_eq!(wrong_side.status, 400);
    assert_eq!(wrong_side.json()["field"], "side");

    let mails = api.delivered(1);
    assert_eq!(mails[0].0, "jeanne@dupont.example");
    assert_eq!(mails[0].1, "[#23010203] Imprimante du 2e étage en panne");
    assert!(
        mails[0].2.contains("Le technicien passe demain matin."),
        "{mails:?}"
    );
}

#[test]
fn import_contract_events_and_metrics() {
    let api = Api::start("");
    let import = api.call(
        "POST",
        "/import",
        Some(TOKEN),
        Some("customers:\n  - { code: C002, name: Martin SARL, company: ACME-FR, alert-formats: { opened: { keyword: \"[NEW]\", template: alert-nouveau } } }\n"),
    )
    .expect("answer");
    assert_eq!(import.status, 200, "{}", import.body);
    let import = import.json();
    assert_eq!(import["imported"]["customers"], 1);
    assert_eq!(
        import["warnings"],
        json!(["customer `C002`: alert template `alert-nouveau` does not exist"])
    );

    let bad = api
        .call(
            "POST",
            "/import",
            Some(TOKEN),
            Some("contacts:\n  - { id: x, name: X, customer: C404 }\n"),
        )
        .expect("answer");
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("unknown customer `C404`"), "{}", bad.body);

    let event = api.send(
        "POST",
        "/contract-events",
        Some(&json!({ "contract": "K-2026-001", "kind": "expiring" })),
    );
    assert_eq!(event.status, 200);
    assert_eq!(event.json()["summary"], "contract K-2026-001 expiring");
    assert_eq!(event.json()["outcome"], "no-match");

    api.send("PUT", "/requests/23050001", Some(&request("open")));
    let metrics = api.send("GET", "/metrics", None).body;
    for line in [
        "relais_events_total{trigger=\"request-saved\",outcome=\"applied\"} 1",
        "relais_events_total{trigger=\"contract-event\",outcome=\"no-match\"} 1",
        "relais_reload_success 1",
        "relais_outbox_mails{status=\"failed\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    assert!(
        metrics.contains("relais_outbox_mails{status=\"queued\"}"),
        "{metrics}"
    );
}

/// Writes a mail into the set-up's directory and ingests it as received on
/// the `support` account (the CLI and the daemon share the store).
pub fn ingest_support_mail(setup: &Setup, name: &str, from: &str, message_id: &str, subject: &str) {
    let path = setup.dir.path().join(name);
    std::fs::write(
        &path,
        format!(
            "From: {from}\r\nTo: support@acme.example\r\nSubject: {subject}\r\n\
             Message-ID: <{message_id}>\r\n\r\nBonjour\r\n"
        ),
    )
    .expect("write");
    setup.ingest_support(&path);
}

#[test]
fn mails_are_linked_by_hand_and_their_thread_and_candidates_read() {
    let api = Api::start("");
    // A stranger's mail stays unlinked; Jeanne's opens a ticket.
    let stranger = "q1%odd_id@elsewhere.example";
    let path = "/mails/q1%25odd_id@elsewhere.example";
    ingest_support_mail(
        &api.setup,
        "q1.eml",
        "prospect@elsewhere.example",
        stranger,
        "Devis",
    );
    ingest_support_mail(
        &api.setup,
        "j1.eml",
        "jeanne@dupont.example",
        "j1@dupont.example",
        "RE: Imprimante du 2e étage en panne",
    );

    let thread = api.send("GET", &format!("{path}/thread"), None);
    assert_eq!(thread.status, 200, "{thread:?}");
    let tree = thread.json();
    assert_eq!(tree["thread"][0]["message-id"], stranger);
    assert_eq!(tree["thread"][0]["direction"], "received");
    assert!(tree["thread"][0].get("ticket").is_none(), "{tree}");
    assert_eq!(api.send("GET", "/mails/none@x/thread", None).status, 404);

    let none = api.send("GET", &format!("{path}/candidates"), None).json();
    assert_eq!(none["candidates"], json!([]));
    let jeanne = api
        .send("GET", "/mails/j1@dupont.example/candidates", None)
        .json();
    let first = &jeanne["candidates"][0];
    // The ticket her mail opened comes first: she requested it, and its
    // subject is the mail's.
    assert_eq!(first["why"], "requester");
    assert_eq!(first["same-subject"], true);
    assert_eq!(
        api.send("GET", "/mails/none@x/candidates", None).status,
        404
    );

    let link = |body: Value| api.send("PUT", &format!("{path}/ticket"), Some(&body));
    let linked = link(json!({ "ticket": 23010203 }));
    assert_eq!(linked.status, 200, "{linked:?}");
    assert_eq!(
        linked.json(),
        json!({ "message-id": stranger, "ticket": 23010203, "created": false })
    );
    assert_eq!(
        link(json!({ "ticket": 23010203 })).status,
        200,
        "same ticket again"
    );
    let conflict = link(json!({ "ticket": 23010204 }));
    assert_eq!(conflict.status, 409, "{conflict:?}");
    assert!(
        conflict.body.contains("already on ticket 23010203"),
        "{conflict:?}"
    );
    let moved = link(json!({ "ticket": 23010204, "move": true }));
    assert_eq!(moved.json()["previous"], 23010203);
    assert_eq!(link(json!({ "ticket": 99, "move": true })).status, 404);
    let neither = link(json!({}));
    assert_eq!(neither.status, 400);
    assert_eq!(neither.json()["field"], "ticket");
    assert_eq!(link(json!({ "ticket": 1, "colour": "red" })).status, 400);
    // A new ticket: the stranger is no contact, so a requester is needed.
    let unknown = link(json!({ "new": {}, "move": true }));
    assert_eq!(unknown.status, 400, "{unknown:?}");
    assert_eq!(unknown.json()["field"], "requester");
    let no_type = link(json!({ "new": { "requester": "ct-jeanne" }, "move": true }));
    assert_eq!(
        no_type.json()["field"],
        "type",
        "two request types: name one"
    );
    let created = link(json!({
        "new": { "requester": "ct-jeanne", "type": "INCIDENT" },
        "move": true
    }));
    assert_eq!(created.status, 201, "{created:?}");
    let created = created.json();
    assert_eq!(created["created"], true);
    assert_eq!(created["previous"], 23010204);
    let number = created["ticket"].as_u64().expect("number");
    let request = api.send("GET", &format!("/requests/{number}"), None).json();
    assert_eq!(request["subject"], "Devis");
    assert_eq!(request["requester"], "ct-jeanne");
    assert_eq!(
        api.call(
            "PUT",
            &format!("{path}/ticket"),
            None,
            Some("{\"ticket\":1}")
        )
        .expect("answer")
        .status,
        401
    );
}

#[test]
fn exchanges_are_recorded_and_read_and_a_scheduled_rule_fired_over_the_api() {
    let mut api = Api::start("");
    // 23010190 waits on Jeanne (demo directory); nothing exchanged yet.
    let path = "/requests/23010190/exchanges";
    let empty = api.send("GET", path, None);
    assert_eq!(empty.status, 200, "{empty:?}");
    assert_eq!(empty.json()["summary"]["count"], 0);

    // Jeanne called: the customer spoke last, so no reminder goes.
    let call = api.send(
        "POST",
        path,
        Some(&json!({ "direction": "received", "type": "phone-call", "body": "Jeanne a appelé" })),
    );
    assert_eq!(call.status, 201, "{call:?}");
    let recorded = call.json();
    assert_eq!(recorded["exchange"]["contact"], "ct-jeanne");
    assert_eq!(recorded["exchange"]["type"], "phone-call");
    assert_eq!(recorded["summary"]["last-side"], "customer");
    let week_later = (chrono::Utc::now() + chrono::TimeDelta::days(8)).to_rfc3339();
    let fire = "/rules/waiting-customer-reminders/fire";
    let quiet = api.send("POST", fire, Some(&json!({ "at": week_later })));
    assert_eq!(quiet.status, 200, "{quiet:?}");
    assert_eq!(quiet.json()["outcome"], "applied");
    assert_eq!(quiet.json()["effects"], json!([]));

    // Paul answered her by phone: now the customer owes the next move.
    let answered = api.send(
        "POST",
        path,
        Some(&json!({ "direction": "sent", "collaborator": "co-paul", "body": "Devis envoyé" })),
    );
    assert_eq!(answered.status, 201, "{answered:?}");
    let reminded = api.send("POST", fire, Some(&json!({ "at": week_later })));
    let effects = reminded.json()["effects"].clone();
    assert_eq!(effects[0]["exchange"], "relance", "{effects}");
    assert_eq!(effects[0]["to"][0], "jeanne@dupont.example");
    let mails = api.delivered(1);
    assert!(mails[0].1.contains("[#23010190]"), "{mails:?}");
    let after = api.send("GET", path, None).json();
    assert_eq!(after["summary"]["count"], 3);
    assert_eq!(after["summary"]["reminders"], 1);
    assert_eq!(after["exchanges"][2]["type"], "relance");

    // Bad input: the field or the reason named, nothing written.
    for (body, status, needle) in [
        (
            json!({ "direction": "out", "body": "x" }),
            400,
            "direction `out`",
        ),
        (
            json!({ "direction": "sent", "body": "" }),
            400,
            "needs its text",
        ),
        (
            json!({ "direction": "sent", "body": "x", "contact": "ct-nobody" }),
            400,
            "ct-nobody",
        ),
        (
            json!({ "direction": "sent", "body": "x", "typo": 1 }),
            400,
            "typo",
        ),
    ] {
        let answer = api.send("POST", path, Some(&body));
        assert_eq!(answer.status, status, "{body}: {answer:?}");
        assert!(answer.body.contains(needle), "{body}: {answer:?}");
    }
    assert_eq!(api.send("GET", path, None).json()["summary"]["count"], 3);
    assert_eq!(api.send("GET", "/requests/999/exchanges", None).status, 404);
    assert_eq!(
        api.send(
            "POST",
            "/requests/999/exchanges",
            Some(&json!({ "direction": "sent", "body": "x" }))
        )
        .status,
        404
    );
    let not_scheduled = api.send("POST", "/rules/ticket-linking/fire", None);
    assert_eq!(not_scheduled.status, 400, "{not_scheduled:?}");
    assert_eq!(api.send("POST", "/rules/nope/fire", None).status, 404);
    for route in [path, fire] {
        let missing = api.call("POST", route, None, Some("{}")).expect("answer");
        assert_eq!(missing.status, 401, "{route}");
    }
}

#[test]
fn every_failure_answers_json_even_without_a_route() {
    let api = Api::start("");
    for (method, path, status, says) in [
        ("GET", "/nowhere", 404, "no route GET /nowhere"),
        (
            "DELETE",
            "/requests/23010203",
            405,
            "/requests/23010203 does not take DELETE",
        ),
        ("GET", "/requests/not-a-number", 400, "not-a-number"),
        ("PUT", "/messages/x/read", 400, "x"),
    ] {
        let answer = api.send(method, path, None);
        assert_eq!(answer.status, status, "{method} {path}: {answer:?}");
        assert!(answer.headers.contains("application/json"), "{answer:?}");
        let error = answer.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(error.contains(says), "{method} {path}: {error}");
    }
    let broken = api.call("PUT", "/requests/23010203", Some(TOKEN), Some("{ not json"));
    let broken = broken.expect("answer");
    assert_eq!(broken.status, 400, "{broken:?}");
    assert!(broken.json()["error"].is_string(), "{broken:?}");
}

#[test]
fn a_dry_run_over_the_api_writes_nothing() {
    let api = Api::start("");
    let dry = api.send(
        "PUT",
        "/requests/23050009?dry-run=true",
        Some(&request("open")),
    );
    assert_eq!(dry.status, 200, "{dry:?}");
    assert_eq!(dry.json()["outcome"], "dry-run", "{}", dry.body);
    assert_eq!(
        api.send("GET", "/requests/23050009", None).status,
        404,
        "not saved"
    );
    let event = api.send(
        "POST",
        "/contract-events?dry-run=true",
        Some(&json!({ "contract": "K-2026-001", "kind": "expiring" })),
    );
    assert_eq!(event.status, 200, "{event:?}");
    let fired = api.send(
        "POST",
        "/rules/waiting-customer-reminders/fire?dry-run=true",
        None,
    );
    assert_eq!(fired.status, 200, "{fired:?}");
    assert!(
        crate::support::event_runs(&api.setup.store(), 10).is_empty(),
        "nothing written"
    );
}
