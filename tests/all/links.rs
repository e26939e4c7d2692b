//! `relais link` and `relais thread` on the command line.

use crate::support::Setup;
use relais::store::prelude::*;

fn ingest(setup: &Setup, name: &str, headers: &str) {
    let path = setup.dir.path().join(name);
    std::fs::write(&path, format!("{headers}\r\n\r\nBonjour\r\n")).expect("write");
    setup.ingest_support(&path);
}

#[test]
fn a_mail_is_linked_moved_or_put_on_a_new_ticket_by_hand() {
    let setup = Setup::with_directory();
    ingest(
        &setup,
        "a.eml",
        "From: someone@elsewhere.example\r\nSubject: Re: [EXT] Devis\r\nMessage-ID: <a@elsewhere.example>",
    );
    ingest(
        &setup,
        "b.eml",
        "From: someone@elsewhere.example\r\nSubject: Re: Devis\r\nMessage-ID: <b@elsewhere.example>\r\n\
         In-Reply-To: <a@elsewhere.example>",
    );
    let store = setup.store();
    assert_eq!(
        store
            .mail("a@elsewhere.example")
            .expect("q")
            .expect("a")
            .ticket,
        None
    );

    // No target: a usage error.
    assert_eq!(setup.relais(&["link", "a@elsewhere.example"]).code, 2);
    let candidates = setup.relais(&["link", "<a@elsewhere.example>", "--candidates", "--json"]);
    assert_eq!(candidates.code, 0, "{candidates:?}");
    assert_eq!(candidates.stdout.trim(), "[]");

    let linked = setup.relais(&["link", "<a@elsewhere.example>", "23010203"]);
    assert_eq!(linked.code, 0, "{linked:?}");
    assert_eq!(
        linked.stdout,
        "<a@elsewhere.example> is on ticket 23010203\n"
    );
    // The thread view shows the reply under it; the reply itself was
    // processed before the link, and stays unlinked.
    let thread = setup.relais(&["thread", "b@elsewhere.example"]);
    assert_eq!(thread.code, 0, "{thread:?}");
    let lines: Vec<&str> = thread.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", thread.stdout);
    assert!(
        lines[0].starts_with("  <a@elsewhere.example>"),
        "{}",
        thread.stdout
    );
    assert!(lines[0].contains("ticket 23010203"), "{}", thread.stdout);
    assert!(
        lines[1].starts_with("* └─ <b@elsewhere.example>"),
        "{}",
        thread.stdout
    );
    assert!(lines[1].contains("no ticket"), "{}", thread.stdout);

    let again = setup.relais(&["link", "a@elsewhere.example", "23010203"]);
    assert_eq!(again.code, 0, "the same ticket again: {again:?}");
    let new = setup.relais(&[
        "link",
        "a@elsewhere.example",
        "--new",
        "--requester",
        "ct-jeanne",
    ]);
    assert_eq!(new.code, 1, "{new:?}");
    assert!(new.stderr.contains("already on ticket 23010203"), "{new:?}");
    let unknown = setup.relais(&["link", "a@elsewhere.example", "--new", "--move"]);
    assert_eq!(unknown.code, 1);
    assert!(
        unknown
            .stderr
            .contains("requester: the sender <someone@elsewhere.example> is no known contact"),
        "{unknown:?}"
    );
    let created = setup.relais(&[
        "link",
        "a@elsewhere.example",
        "--new",
        "--requester",
        "ct-jeanne",
        "--move",
        "--json",
    ]);
    assert_eq!(created.code, 0, "{created:?}");
    let created: serde_json::Value = serde_json::from_str(&created.stdout).expect("json");
    assert_eq!(created["created"], true);
    assert_eq!(created["previous"], 23010203);
    let number = created["ticket"].as_u64().expect("number");
    let request = setup.store().request(number).expect("q").expect("created");
    // Prefixes and the gateway marker stripped; the only request type.
    assert_eq!(request.subject.as_deref(), Some("Devis"));
    assert_eq!(request.request_type, "INCIDENT");
    assert_eq!(request.requester.as_deref(), Some("ct-jeanne"));

    let missing = setup.relais(&["link", "none@x", "23010203"]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("no stored mail <none@x>"),
        "{missing:?}"
    );
    let no_ticket = setup.relais(&["link", "b@elsewhere.example", "99"]);
    assert_eq!(no_ticket.code, 1);
    assert!(no_ticket.stderr.contains("no request 99"), "{no_ticket:?}");
    assert_eq!(setup.relais(&["thread", "none@x"]).code, 1);
}
