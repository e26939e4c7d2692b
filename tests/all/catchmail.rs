//! The bundled CatchMail component on a corpus: every failure code and
//! every success path, each mail saying in its `X-Expect` header what must
//! come of it (`post-message AUTHOR SIDE`, `reply-failure CODE` or `none`).

use crate::support::{Setup, fixture};
use relais::store::prelude::*;

fn corpus_setup() -> Setup {
    let setup = Setup::new();
    let directory = fixture("catchmail/directory.yaml");
    let run = setup.relais(&["import", directory.to_str().expect("utf-8")]);
    assert_eq!(run.code, 0, "{run:?}");
    setup
}

fn expectation(path: &str) -> String {
    let text = std::fs::read_to_string(path).expect("read mail");
    text.lines()
        .find_map(|line| line.strip_prefix("X-Expect: "))
        .unwrap_or_else(|| panic!("{path} has no X-Expect header"))
        .trim()
        .to_string()
}

#[test]
fn every_code_and_every_success_path() {
    let setup = corpus_setup();
    let (run, lines) = setup.ingest_json(&[], &[&fixture("catchmail/mails")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(lines.len(), 28);
    let mut failures = Vec::new();
    for line in &lines {
        let source = line["source"].as_str().expect("source");
        let expected = expectation(source);
        let effects = line["effects"].as_array().expect("effects");
        let actual = match effects.as_slice() {
            [] => "none".to_string(),
            // A posted mail also lands on the request it was posted to.
            [effect, link]
                if effect["kind"] == "post-message"
                    && link["kind"] == "link-mail"
                    && link["request"] == effect["request"]
                    && link["message-id"] == line["message-id"] =>
            {
                format!(
                    "post-message {} {}",
                    effect["author"]["id"].as_str().unwrap_or("?"),
                    effect["side"].as_str().unwrap_or("?")
                )
            }
            [effect] if effect["kind"] == "reply-failure" => {
                assert_eq!(effect["in-reply-to"], line["message-id"], "{source}");
                format!("reply-failure {}", effect["reason"].as_str().unwrap_or("?"))
            }
            more => format!("{} effects", more.len()),
        };
        if actual != expected {
            failures.push(format!("{source}: expected `{expected}`, got `{actual}`"));
        }
        assert_eq!(line["outcome"], "applied", "{source}: {line}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn posted_messages_hold_the_body_not_the_subject() {
    let setup = corpus_setup();
    setup.ingest_json(
        &[],
        &[&fixture(
            "catchmail/mails/23-encoded-subject-tabs-zeros.eml",
        )],
    );
    setup.ingest_json(&[], &[&fixture("catchmail/mails/28-html-only.eml")]);
    let messages = setup.store().messages(23010203).expect("messages");
    let bodies: Vec<&str> = messages.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["Vu.", "Bonjour équipe"]);
    assert!(
        messages
            .iter()
            .all(|m| m.source == "catchmail" && m.side == "customer")
    );
}

#[test]
fn refused_mail_gets_one_reply_and_posts_nothing() {
    let setup = corpus_setup();
    let (_, lines) = setup.ingest_json(
        &[],
        &[&fixture("catchmail/mails/05-extranet-without-147001.eml")],
    );
    assert_eq!(lines[0]["effects"][0]["reason"], "not-requester");
    let store = setup.store();
    assert!(store.messages(23010203).expect("messages").is_empty());
    let outbox = store.outbox(None, 10).expect("outbox");
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].mail.to, ["marc@dupont.example"]);
    assert!(
        outbox[0].mail.body.contains("not-requester"),
        "{}",
        outbox[0].mail.body
    );
}

#[test]
fn messages_disabled_globally() {
    let setup = corpus_setup();
    let off = setup.dir.path().join("off.yaml");
    std::fs::write(&off, "settings: { direct-messages-enabled: false }\n").expect("write");
    assert_eq!(
        setup.relais(&["import", off.to_str().expect("utf-8")]).code,
        0
    );
    let (_, lines) =
        setup.ingest_json(&[], &[&fixture("catchmail/mails/01-contact-requester.eml")]);
    assert_eq!(lines[0]["effects"][0]["kind"], "reply-failure");
    assert_eq!(lines[0]["effects"][0]["reason"], "messages-disabled");
}
