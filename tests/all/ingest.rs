//! `relais ingest`: JSON output, effects, dedupe, dry runs, and bad input
//! that gets a clear per-mail error while the batch goes on.

use std::path::Path;

use crate::support::{Setup, fixture, write_mail};
use relais::store::prelude::*;

#[test]
fn json_line_per_mail_with_rules_effects_and_outcome() {
    let setup = Setup::with_directory();
    let (run, lines) = setup.ingest_json(&[], &[&fixture("mails/catchmail-jeanne.eml")]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(lines.len(), 1);
    let line = &lines[0];
    assert_eq!(line["message-id"], "fixture-jeanne-1@dupont.example");
    assert_eq!(line["rules"], serde_json::json!(["catchmail"]));
    assert_eq!(line["outcome"], "applied");
    assert_eq!(
        line["effects"],
        serde_json::json!([{
            "kind": "post-message",
            "request": 23010203,
            "author": { "kind": "contact", "id": "ct-jeanne" },
            "side": "customer",
            "source": "catchmail",
            "body": "L'imprimante fonctionne à nouveau."
        }, {
            "kind": "link-mail",
            "message-id": "fixture-jeanne-1@dupont.example",
            "request": 23010203
        }])
    );
    let messages = setup.store().messages(23010203).expect("messages");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].body, "L'imprimante fonctionne à nouveau.");
    assert_eq!(messages[0].source, "catchmail");
}

#[test]
fn refused_mail_prints_reply_failure_with_its_code_and_queues_it() {
    let setup = Setup::with_directory();
    let (_, lines) = setup.ingest_json(&[], &[&fixture("mails/catchmail-stranger.eml")]);
    let effect = &lines[0]["effects"][0];
    assert_eq!(effect["kind"], "reply-failure");
    assert_eq!(effect["reason"], "unknown-sender");
    assert_eq!(effect["to"], "someone@elsewhere.example");
    let outbox = setup.store().outbox(None, 10).expect("outbox");
    assert_eq!(outbox.len(), 1);
    let headers = &outbox[0].mail.headers;
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("Auto-Submitted"), Some("auto-replied"));
    assert_eq!(
        header("In-Reply-To"),
        Some("<fixture-stranger-1@elsewhere.example>")
    );
    assert_eq!(header("X-Relais-Reason"), Some("unknown-sender"));
}

#[test]
fn a_second_ingest_of_the_same_mail_is_not_processed_again() {
    let setup = Setup::with_directory();
    let mail = fixture("mails/catchmail-jeanne.eml");
    let no_id = fixture("mails/no-message-id.eml");
    let (_, first) = setup.ingest_json(&[], &[&mail, &no_id]);
    assert_eq!(first[0]["outcome"], "applied");
    assert_eq!(first[1]["outcome"], "applied");
    let derived = first[1]["message-id"]
        .as_str()
        .expect("derived id")
        .to_string();
    assert!(derived.ends_with("@content.relais.invalid"), "{derived}");
    let (run, second) = setup.ingest_json(&[], &[&mail, &no_id]);
    assert_eq!(run.code, 0, "duplicates are not failures: {run:?}");
    assert_eq!(second[0]["outcome"], "duplicate");
    assert_eq!(second[1]["outcome"], "duplicate");
    assert_eq!(
        second[1]["message-id"].as_str(),
        Some(derived.as_str()),
        "stable derived id"
    );
    assert_eq!(
        setup.store().messages(23010203).expect("messages").len(),
        2,
        "no message posted twice"
    );
}

#[test]
fn dry_run_shows_effects_and_writes_nothing() {
    let setup = Setup::with_directory();
    let (_, lines) = setup.ingest_json(&["--dry-run"], &[&fixture("mails/catchmail-jeanne.eml")]);
    assert_eq!(lines[0]["outcome"], "dry-run");
    assert_eq!(lines[0]["effects"][0]["kind"], "post-message");
    assert!(lines[0]["run"].is_null());
    let store = setup.store();
    assert!(store.messages(23010203).expect("messages").is_empty());
    assert!(crate::support::event_runs(&store, 10).is_empty());
    assert!(
        !store
            .mail_exists("fixture-jeanne-1@dupont.example")
            .expect("query")
    );
}

#[test]
fn maildir_folders_are_read_new_then_cur() {
    let setup = Setup::with_directory();
    let maildir = setup.dir.path().join("Maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).expect("mkdir");
    }
    std::fs::copy(
        fixture("mails/catchmail-jeanne.eml"),
        maildir.join("cur/1700000000.M1P1.host:2,S"),
    )
    .expect("copy");
    std::fs::copy(
        fixture("mails/catchmail-stranger.eml"),
        maildir.join("new/1700000001.M2P2.host"),
    )
    .expect("copy");
    let (_, lines) = setup.ingest_json(&[], &[&maildir]);
    let ids: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["message-id"].as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "fixture-stranger-1@elsewhere.example",
            "fixture-jeanne-1@dupont.example"
        ]
    );
}

#[test]
fn runs_list_and_show_the_trace() {
    let setup = Setup::with_directory();
    let (_, lines) = setup.ingest_json(&[], &[&fixture("mails/catchmail-jeanne.eml")]);
    let run_id = lines[0]["run"].as_i64().expect("run id").to_string();
    let list = setup.relais(&["runs"]);
    assert!(list.stdout.contains("applied"), "{list:?}");
    let show = setup.relais(&["runs", "show", &run_id]);
    assert_eq!(show.code, 0, "{show:?}");
    assert!(show.stdout.contains("rule catchmail ("), "{show:?}");
    assert!(show.stdout.contains("matched, ran catchmail"), "{show:?}");
    assert!(
        show.stdout
            .contains("effect:   post-message on request 23010203 by ct-jeanne"),
        "{show:?}"
    );
    let json = setup.relais(&["runs", "show", &run_id, "--json"]);
    let trace: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(trace["trace"]["rules"][0]["matched"], true);
}

#[test]
fn not_matched_rules_say_which_condition_failed() {
    let setup = Setup::with_directory();
    let mail = setup.dir.path().join("support.eml");
    std::fs::write(&mail, "From: jeanne@dupont.example\r\nTo: support@acme.example\r\nMessage-ID: <s1@d>\r\nSubject: hi\r\n\r\nbody\r\n").expect("write");
    let (_, lines) = setup.ingest_json(&[], &[&mail]);
    // Ticket linking took it (a new ticket for Jeanne); CatchMail did not.
    assert_eq!(lines[0]["rules"], serde_json::json!(["ticket-linking"]));
    let run_id = lines[0]["run"].as_i64().expect("recorded");
    // The run counts the rules that did not match; `runs show` says why
    // each did not, recomputed from the stored mail.
    let stored = setup.store().run(run_id).expect("query").expect("run");
    assert_eq!(stored.trace["not-matched"], 1, "{}", stored.trace);
    let trace = setup.explained_trace(run_id);
    let catchmail = trace["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .find(|rule| rule["id"] == "catchmail")
        .expect("catchmail's trace");
    assert_eq!(catchmail["matched"], false);
    let reason = catchmail["reason"].as_str().expect("reason");
    assert!(
        reason.starts_with("any: none held (account: \"cli\""),
        "{reason}"
    );
    assert!(
        reason.contains("recipient: \"support@acme.example\""),
        "{reason}"
    );
    let text = setup.relais(&["runs", "show", &run_id.to_string()]);
    assert!(
        text.stdout.contains("rule catchmail (")
            && text.stdout.contains("not matched: any: none held"),
        "{}",
        text.stdout
    );
}

/// Writes a mail with this header block and body.
fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write");
    path
}

#[test]
fn bad_input_gets_a_clear_error_and_the_batch_goes_on() {
    let setup = Setup::with_directory();
    let batch = setup.dir.path().join("batch");
    std::fs::create_dir(&batch).expect("mkdir");
    write(&batch, "01-empty.eml", b"");
    write(
        &batch,
        "02-malformed.eml",
        b"\x00\x01\x02\xff binary junk, not a mail\n\x00",
    );
    write(
        &batch,
        "03-no-text.eml",
        b"Authentication-Results: mx.acme.example; dmarc=pass header.from=dupont.example\r\nFrom: jeanne@dupont.example\r\nTo: catchmail@acme.example\r\nSubject: #23010203 *message*\r\nMessage-ID: <notext@d>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: application/pdf; name=\"scan.pdf\"\r\nContent-Disposition: attachment; filename=\"scan.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n",
    );
    write(
        &batch,
        "04-unknown-charset.eml",
        b"Authentication-Results: mx.acme.example; dmarc=pass header.from=dupont.example\r\nFrom: jeanne@dupont.example\r\nTo: catchmail@acme.example\r\nSubject: #23010203 *message*\r\nMessage-ID: <charset@d>\r\nContent-Type: text/plain; charset=x-klingon-42\r\n\r\nQapla\xe9 \xff\r\n",
    );
    // 30 MB: over the 25 MiB default limit.
    let mut huge = b"Authentication-Results: mx.acme.example; dmarc=pass header.from=dupont.example\r\nFrom: jeanne@dupont.example\r\nTo: catchmail@acme.example\r\nSubject: #23010203 *message*\r\nMessage-ID: <huge@d>\r\n\r\n".to_vec();
    huge.extend(
        std::iter::repeat_n(
            b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuv\r\n".as_slice(),
            30 * 1024 * 1024 / 72,
        )
        .flatten(),
    );
    write(&batch, "05-huge.eml", &huge);
    // Unreadable: a link to nothing, and a folder named like a mail (root
    // reads any file, so permissions alone would not do).
    std::os::unix::fs::symlink(batch.join("missing-target"), batch.join("06-dangling.eml"))
        .expect("symlink");
    std::fs::create_dir(batch.join("07-folder.eml")).expect("mkdir");
    std::fs::copy(
        fixture("mails/catchmail-jeanne.eml"),
        batch.join("08-good.eml"),
    )
    .expect("copy");

    let (run, lines) = setup.ingest_json(&[], &[&batch]);
    assert_eq!(run.code, 1, "a batch with rejected mail exits 1: {run:?}");
    assert_eq!(lines.len(), 8, "{}", run.stdout);
    let by_file = |name: &str| {
        lines
            .iter()
            .find(|l| l["source"].as_str().is_some_and(|s| s.ends_with(name)))
            .unwrap_or_else(|| panic!("no line for {name}"))
    };
    let empty = by_file("01-empty.eml");
    assert_eq!(empty["outcome"], "rejected");
    assert_eq!(empty["error"], "empty file: not a mail");

    let malformed = by_file("02-malformed.eml");
    assert_eq!(malformed["outcome"], "rejected");
    assert!(
        malformed["error"]
            .as_str()
            .expect("error")
            .starts_with("malformed MIME: no header fields found")
    );
    let kept = malformed["message-id"]
        .as_str()
        .expect("kept under a derived id");
    assert_eq!(
        setup
            .store()
            .mail(kept)
            .expect("query")
            .expect("kept")
            .status,
        "malformed"
    );

    let no_text = by_file("03-no-text.eml");
    assert_eq!(no_text["outcome"], "applied");
    assert_eq!(
        no_text["warnings"][0],
        "no text body: neither a text nor an HTML part"
    );
    assert_eq!(no_text["effects"][0]["reason"], "body-empty");

    let charset = by_file("04-unknown-charset.eml");
    assert_eq!(charset["outcome"], "applied");
    assert!(
        charset["warnings"]
            .as_array()
            .expect("warnings")
            .iter()
            .any(|w| w
                .as_str()
                .is_some_and(|w| w.contains("unknown charset `x-klingon-42`"))),
        "{charset}"
    );
    assert_eq!(charset["effects"][0]["kind"], "post-message");

    let huge = by_file("05-huge.eml");
    assert_eq!(huge["outcome"], "rejected");
    assert!(
        huge["error"]
            .as_str()
            .expect("error")
            .contains("larger than the 25.0 MiB limit"),
        "{huge}"
    );
    assert_eq!(
        setup
            .store()
            .mail("huge@d")
            .expect("query")
            .expect("kept")
            .status,
        "too-large"
    );

    for name in ["06-dangling.eml", "07-folder.eml"] {
        let line = by_file(name);
        assert_eq!(line["outcome"], "rejected");
        assert!(
            line["error"]
                .as_str()
                .expect("error")
                .starts_with("cannot read "),
            "{line}"
        );
        assert!(line["run"].is_i64(), "traced: {line}");
    }

    assert_eq!(
        by_file("08-good.eml")["outcome"],
        "applied",
        "the batch went on"
    );
    assert_eq!(
        crate::support::event_runs(&setup.store(), 20).len(),
        8,
        "every mail, even unreadable, has a trace"
    );
}

/// More mails than one commit takes: `relais ingest` commits them in
/// batches, as the daemon does, and each mail still sees what the one
/// before it wrote (here, the ticket its thread is on), in order, once.
#[test]
fn a_long_ingest_commits_in_batches_and_each_mail_sees_the_one_before() {
    let setup = Setup::with_directory();
    let dir = setup.dir.path().join("thread");
    std::fs::create_dir_all(&dir).expect("dir");
    let count = 300;
    let paths: Vec<_> = (0..count)
        .map(|n| {
            let id = format!("<t{n}@dupont.example>");
            let previous = format!("<t{}@dupont.example>", n.max(1) - 1);
            let mut headers = vec![
                ("From", "jeanne@dupont.example"),
                ("To", "support@acme.example"),
                ("Subject", "Imprimante toujours en panne"),
                ("Message-ID", id.as_str()),
            ];
            if n > 0 {
                headers.push(("In-Reply-To", previous.as_str()));
            }
            write_mail(&dir, &format!("{n:04}.eml"), &headers, "Bonjour\r\n")
        })
        .collect();
    let refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    let (run, lines) = setup.ingest_json(&["--account", "support"], &refs);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(lines.len(), count, "a line per mail");
    assert_eq!(
        lines[0]["effects"][0]["kind"], "create-ticket",
        "{}",
        lines[0]
    );
    let store = setup.store();
    let ticket = store
        .mail("t0@dupont.example")
        .expect("query")
        .and_then(|m| m.ticket)
        .expect("the first mail opened a ticket");
    for (n, line) in lines.iter().enumerate().skip(1) {
        assert_eq!(line["outcome"], "applied", "{n}: {line}");
        assert_eq!(
            line["effects"],
            serde_json::json!([{ "kind": "link-mail", "message-id": format!("t{n}@dupont.example"), "request": ticket }]),
            "mail {n} lands on its thread's ticket"
        );
    }
    assert_eq!(
        crate::support::event_runs(&store, count + 10).len(),
        count,
        "each once"
    );

    // A dry run of as many writes nothing at all.
    let fresh = Setup::with_directory();
    let (run, lines) = fresh.ingest_json(&["--account", "support", "--dry-run"], &refs);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(lines.iter().all(|l| l["outcome"] == "dry-run"));
    let store = fresh.store();
    assert!(crate::support::event_runs(&store, 10).is_empty());
    assert!(!store.mail_exists("t0@dupont.example").expect("query"));
}

/// A mail from Jeanne with these attachment bodies (name, already encoded
/// body, Content-Transfer-Encoding).
fn with_attachments(id: &str, parts: &[(&str, &str, &str)]) -> String {
    let mut mail = format!(
        "From: jeanne@dupont.example\r\nTo: support@acme.example\r\nSubject: Journaux\r\n\
         Message-ID: <{id}>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"sep\"\r\n\r\n\
         --sep\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nVoici les journaux.\r\n"
    );
    for (name, body, encoding) in parts {
        mail.push_str(&format!(
            "--sep\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\n\
             Content-Disposition: attachment; filename=\"{name}\"\r\n\
             Content-Transfer-Encoding: {encoding}\r\n\r\n{body}\r\n"
        ));
    }
    mail.push_str("--sep--\r\n");
    mail
}

/// `text` in lines of `width`, CRLF between them.
fn lines_of(text: &str, width: usize) -> String {
    text.as_bytes()
        .chunks(width)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect::<Vec<_>>()
        .join("\r\n")
}

#[test]
fn attachments_are_stored_once_apart_and_the_raw_mail_comes_back_byte_for_byte() {
    use base64::Engine;
    let setup = Setup::with_directory();
    let pdf: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&pdf);
    let log = "ligne de journal\r\n".repeat(2_000);
    let first = with_attachments(
        "apart-1@dupont.example",
        &[
            ("rapport.pdf", &lines_of(&encoded, 76), "base64"),
            ("journal.txt", &log, "8bit"),
        ],
    );
    // The same report again, and a body in lines of uneven length, which
    // cannot be written again exactly: it stays in the raw message.
    let uneven = format!("{}\r\n{}", &encoded[..70], lines_of(&encoded[70..], 76));
    let second = with_attachments(
        "apart-2@dupont.example",
        &[
            ("rapport.pdf", &lines_of(&encoded, 76), "base64"),
            ("copie.pdf", &uneven, "base64"),
        ],
    );
    let dir = setup.dir.path();
    let paths = [dir.join("first.eml"), dir.join("second.eml")];
    std::fs::write(&paths[0], &first).expect("write");
    std::fs::write(&paths[1], &second).expect("write");
    let blob_bytes = || -> i64 {
        let conn = rusqlite::Connection::open(setup.db()).expect("open");
        conn.query_row("SELECT coalesce(sum(size), 0) FROM blobs", [], |r| r.get(0))
            .expect("sum")
    };
    let (run, _) = setup.ingest_json(&[], &[&paths[0]]);
    assert_eq!(run.code, 0, "{run:?}");
    let after_first = blob_bytes();
    // Stored once: the decoded report (200,000 bytes) and the log apart,
    // the rest of the mail; not the encoded report (270,000 more) as well.
    assert!(
        after_first < first.len() as i64,
        "{after_first} bytes of blobs for a mail of {}",
        first.len()
    );
    let (run, _) = setup.ingest_json(&[], &[&paths[1]]);
    assert_eq!(run.code, 0, "{run:?}");
    let added = blob_bytes() - after_first;
    // The shared report is not stored again; the uneven copy stays in the
    // second mail's raw message.
    assert!(
        added < uneven.len() as i64 + 4_000,
        "{added} bytes added for the second mail"
    );
    let store = setup.store();
    for (id, text) in [
        ("apart-1@dupont.example", &first),
        ("apart-2@dupont.example", &second),
    ] {
        let raw = store.raw_mail(id).expect("query").expect("stored");
        assert!(raw == text.as_bytes(), "{id} comes back byte for byte");
    }
}
