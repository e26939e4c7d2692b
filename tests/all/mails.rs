//! Searching the mail store, as a support agent does: the mail left to
//! link by hand, a sender's, a ticket's, the mail naming words or carrying
//! a file, a sender the directory does not know, a time range; a page at
//! a time, each row with its ticket and the run that processed it. Over
//! the command line and the HTTP API alike.

use serde_json::{Value, json};

use crate::api::Api;
use crate::support::Setup;

/// Ingests one mail on account `support`, with a PDF attached when
/// `attachment` names one.
fn receive(setup: &Setup, name: &str, from: &str, id: &str, subject: &str, text: &str) {
    receive_with(setup, name, from, id, subject, text, None);
}

fn receive_with(
    setup: &Setup,
    name: &str,
    from: &str,
    id: &str,
    subject: &str,
    text: &str,
    attachment: Option<&str>,
) {
    let head = format!(
        "From: {from}\r\nTo: support@acme.example\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\nMIME-Version: 1.0\r\n"
    );
    let mail = match attachment {
        None => format!("{head}Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"),
        Some(file) => format!(
            "{head}Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n--b\r\n\
             Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"{file}\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n"
        ),
    };
    let path = setup.dir.path().join(name);
    std::fs::write(&path, mail).expect("write");
    setup.ingest_support(&path);
}

/// The Message-IDs `relais mails ARGS --json` lists, in order, and the rows.
fn mails(setup: &Setup, args: &[&str]) -> (Vec<String>, Vec<Value>) {
    let mut all = vec!["mails", "--json"];
    all.extend_from_slice(args);
    let run = setup.relais(&all);
    assert_eq!(run.code, 0, "{run:?}");
    let rows: Vec<Value> = run
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("json"))
        .collect();
    let ids = rows
        .iter()
        .map(|row| row["message-id"].as_str().expect("id").to_string())
        .collect();
    (ids, rows)
}

/// A desk's morning: Jeanne's mail opens a ticket; a prospect's and an
/// unknown sender's wait to be linked by hand, one with a quote attached.
fn morning(setup: &Setup) {
    receive(
        setup,
        "1.eml",
        "jeanne@dupont.example",
        "j1@dupont.example",
        "Imprimante en panne",
        "Bonjour, l'imprimante du 2e étage est en panne.",
    );
    receive_with(
        setup,
        "2.eml",
        "prospect@elsewhere.example",
        "p1@elsewhere.example",
        "Demande de devis",
        "Voici notre échéancier pour le contrat.",
        Some("Devis-2026.pdf"),
    );
    receive(
        setup,
        "3.eml",
        "someone@unknown.example",
        "u1@unknown.example",
        "Question",
        "Pouvez-vous nous rappeler ?",
    );
}

#[test]
fn the_command_line_finds_the_mail_left_to_link_and_searches_the_store() {
    let setup = Setup::with_directory();
    morning(&setup);

    let (all, rows) = mails(&setup, &[]);
    assert_eq!(
        all,
        [
            "u1@unknown.example",
            "p1@elsewhere.example",
            "j1@dupont.example"
        ],
        "newest first"
    );
    // Each row with its ticket (or none) and the run that processed it.
    let jeanne = &rows[2];
    assert!(jeanne["ticket"].as_u64().is_some(), "{jeanne}");
    assert_eq!(jeanne["linked-by"], "rule");
    assert!(jeanne["run"].as_i64().is_some(), "{jeanne}");
    assert_eq!(jeanne["outcome"], "applied");
    assert_eq!(rows[1]["ticket"], Value::Null);
    assert_eq!(rows[1]["attachments"], json!(["Devis-2026.pdf"]));

    let (unlinked, _) = mails(&setup, &["--unlinked"]);
    assert_eq!(unlinked, ["u1@unknown.example", "p1@elsewhere.example"]);
    let (linked, _) = mails(&setup, &["--linked"]);
    assert_eq!(linked, ["j1@dupont.example"]);
    let ticket = jeanne["ticket"].to_string();
    assert_eq!(
        mails(&setup, &["--ticket", &ticket]).0,
        ["j1@dupont.example"]
    );
    // Words of the text, whatever their case and accents, or their start.
    assert_eq!(
        mails(&setup, &["--text", "ECHEANCIER"]).0,
        ["p1@elsewhere.example"]
    );
    assert_eq!(
        mails(&setup, &["--text", "imprim etage"]).0,
        ["j1@dupont.example"]
    );
    assert!(
        mails(&setup, &["--text", "imprimante rappeler"])
            .0
            .is_empty()
    );
    assert_eq!(
        mails(&setup, &["--attachment", "devis"]).0,
        ["p1@elsewhere.example"]
    );
    assert_eq!(
        mails(&setup, &["--from", "DUPONT.example"]).0,
        ["j1@dupont.example"]
    );
    assert_eq!(
        mails(&setup, &["--subject", "devis"]).0,
        ["p1@elsewhere.example"]
    );
    assert_eq!(
        mails(&setup, &["--unknown-sender"]).0,
        ["u1@unknown.example", "p1@elsewhere.example"]
    );
    assert_eq!(
        mails(
            &setup,
            &["--unknown-sender", "--unlinked", "--text", "rappeler"]
        )
        .0,
        ["u1@unknown.example"]
    );
    assert!(mails(&setup, &["--account", "other"]).0.is_empty());
    assert!(mails(&setup, &["--since", "2999-01-01"]).0.is_empty());
    assert_eq!(mails(&setup, &["--until", "2999-01-01"]).0.len(), 3);
    // A wildcard of SQL is a character like another.
    assert!(mails(&setup, &["--subject", "%"]).0.is_empty());

    // A page at a time.
    let (first, page) = mails(&setup, &["--limit", "2"]);
    assert_eq!(first.len(), 2);
    let last = page[1]["id"].to_string();
    assert_eq!(
        mails(&setup, &["--limit", "2", "--before", &last]).0,
        ["j1@dupont.example"]
    );
    let text = setup.relais(&["mails", "--limit", "2"]);
    assert!(text.stdout.contains(" none "), "{}", text.stdout);
    assert!(
        text.stdout.contains(&format!("more: --before {last}")),
        "{}",
        text.stdout
    );

    // Linked by hand, it leaves the queue and says how it got there.
    let link = setup.relais(&["link", "p1@elsewhere.example", &ticket]);
    assert_eq!(link.code, 0, "{link:?}");
    let (unlinked, _) = mails(&setup, &["--unlinked"]);
    assert_eq!(unlinked, ["u1@unknown.example"]);
    let (_, rows) = mails(&setup, &["--ticket", &ticket]);
    assert_eq!(rows[0]["linked-by"], "manual");
    assert!(rows[0]["link-run"].as_i64().is_some(), "{}", rows[0]);

    // An out-of-office is on no ticket either; the queue can leave it out.
    let away = setup.dir.path().join("away.eml");
    std::fs::write(
        &away,
        "From: someone@unknown.example\r\nTo: support@acme.example\r\nSubject: Absent\r\n\
         Message-ID: <away@unknown.example>\r\nAuto-Submitted: auto-replied\r\n\r\nDe retour lundi.\r\n",
    )
    .expect("write");
    setup.ingest_support(&away);
    let (unlinked, rows) = mails(&setup, &["--unlinked"]);
    assert_eq!(unlinked, ["away@unknown.example", "u1@unknown.example"]);
    assert!(rows[0]["automatic"].is_string(), "{}", rows[0]);
    assert_eq!(
        mails(&setup, &["--unlinked", "--no-automatic"]).0,
        ["u1@unknown.example"]
    );

    let bad = setup.relais(&["mails", "--since", "yesterday"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("since"), "{}", bad.stderr);
}

#[test]
fn the_api_searches_the_store_with_the_same_filters() {
    let api = Api::start("");
    morning(&api.setup);
    let get = |query: &str| {
        let answer = api.send("GET", &format!("/mails{query}"), None);
        assert_eq!(answer.status, 200, "{query}: {answer:?}");
        answer.json()
    };
    let ids = |page: &Value| -> Vec<String> {
        page["mails"]
            .as_array()
            .expect("mails")
            .iter()
            .map(|m| m["message-id"].as_str().expect("id").to_string())
            .collect()
    };
    let all = get("");
    assert_eq!(ids(&all).len(), 3);
    assert_eq!(all["next-before"], Value::Null);
    assert_eq!(
        ids(&get("?linked=false")),
        ["u1@unknown.example", "p1@elsewhere.example"]
    );
    assert_eq!(
        ids(&get("?text=%C3%A9ch%C3%A9ancier&attachment=pdf")),
        ["p1@elsewhere.example"]
    );
    assert_eq!(
        ids(&get("?unknown-sender=true&sender=unknown")),
        ["u1@unknown.example"]
    );
    let page = get("?limit=1");
    assert_eq!(ids(&page), ["u1@unknown.example"]);
    let next = page["next-before"].as_i64().expect("a next page");
    assert_eq!(
        ids(&get(&format!("?limit=1&before={next}"))),
        ["p1@elsewhere.example"]
    );

    for (query, field) in [
        ("?since=soon", Some("since")),
        ("?limit=0", Some("limit")),
        ("?colour=red", None),
        ("?linked=maybe", None),
    ] {
        let answer = api.send("GET", &format!("/mails{query}"), None);
        assert_eq!(answer.status, 400, "{query}: {answer:?}");
        let body = answer.json();
        assert!(body["error"].is_string(), "{query}: {body}");
        if let Some(field) = field {
            assert_eq!(body["field"], field, "{query}: {body}");
        }
    }
    assert_eq!(
        api.call("GET", "/mails", None, None)
            .expect("answer")
            .status,
        401
    );
}

#[test]
fn attachments_are_listed_and_downloaded_as_files_never_rendered() {
    let api = Api::start("");
    let head = "From: jeanne@dupont.example\r\nTo: support@acme.example\r\nSubject: Rapport\r\n\
        Message-ID: <att1@dupont.example>\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/mixed; boundary=b\r\n\r\n";
    let mail = format!(
        "{head}--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nCi-joint.\r\n--b\r\n\
         Content-Type: text/html; charset=utf-8\r\n\
         Content-Disposition: attachment; filename*=UTF-8''rapport%20%C3%A9t%C3%A9%22.html\r\n\r\n\
         <html><script>alert(1)</script></html>\r\n--b\r\n\
         Content-Type: text/plain\r\nContent-Disposition: attachment\r\n\r\nsans nom\r\n--b--\r\n"
    );
    let path = api.setup.dir.path().join("att.eml");
    std::fs::write(&path, mail).expect("write");
    api.setup.ingest_support(&path);

    let listed = api.send("GET", "/mails/att1@dupont.example/attachments", None);
    assert_eq!(listed.status, 200, "{listed:?}");
    let listed = listed.json();
    assert_eq!(listed[0]["position"], 0, "{listed}");
    assert_eq!(listed[0]["filename"], "rapport été\".html", "{listed}");
    assert_eq!(listed[0]["content-type"], "text/html", "{listed}");
    assert_eq!(listed[1]["filename"], Value::Null, "{listed}");

    let file = api.send(
        "GET",
        "/mails/%3Catt1@dupont.example%3E/attachments/0",
        None,
    );
    assert_eq!(file.status, 200, "{file:?}");
    assert_eq!(
        file.body.trim_end(),
        "<html><script>alert(1)</script></html>"
    );
    let headers = file.headers.to_lowercase();
    assert!(
        headers.contains("content-type: application/octet-stream"),
        "{}",
        file.headers
    );
    assert!(
        headers.contains("x-content-type-options: nosniff"),
        "{}",
        file.headers
    );
    assert!(
        file.headers.contains(
            "attachment; filename=\"rapport _t__.html\"; filename*=UTF-8''rapport%20%C3%A9t%C3%A9%22.html"
        ),
        "{}",
        file.headers
    );
    let unnamed = api.send("GET", "/mails/att1@dupont.example/attachments/1", None);
    assert!(
        unnamed.headers.contains("filename=\"attachment-1\""),
        "{}",
        unnamed.headers
    );
    assert_eq!(
        api.send("GET", "/mails/att1@dupont.example/attachments/7", None)
            .status,
        404
    );
    assert_eq!(
        api.send("GET", "/mails/none@x/attachments", None).status,
        404
    );
    assert_eq!(
        api.send("GET", "/mails/none@x/attachments/0", None).status,
        404
    );
    // Without the token, nothing.
    let anonymous = api
        .call(
            "GET",
            "/mails/att1@dupont.example/attachments/0",
            None,
            None,
        )
        .expect("answer");
    assert_eq!(anonymous.status, 401);
}
