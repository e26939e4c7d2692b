//! Alert dispatch from the command line (`relais request save`,
//! `relais contract-event`), on the shipped rules and templates: the
//! recipients of each group, and the ones that cannot be reached.

use serde_json::Value;

use crate::support::{Setup, root};
use relais::store::prelude::*;

/// The demo directory, plus a contract whose groups hold a contact
/// without an email address, a contact alerted by fax, a contact of
/// another site in `customer-contacts` and one on the main site.
fn setup() -> Setup {
    let setup = Setup::new();
    let demo = root().join("demo/directory.yaml");
    let extra = setup.dir.path().join("extra.yaml");
    std::fs::write(
        &extra,
        "contacts:
  - { id: ct-nomail, name: Sans Adresse, customer: C001, site: MAIN, reception: email, alerts: [opened] }
  - { id: ct-fax, name: Par Fax, customer: C001, site: MAIN, reception: fax, fax: \"+33 1 98 76 54 32\", alerts: [opened] }
  - { id: ct-lyon, name: Site Lyon, customer: C001, site: LYON, email: lyon@dupont.example, alerts: [opened] }
  - { id: ct-main, name: Site Principal, customer: C001, site: MAIN, email: main@dupont.example, alerts: [opened] }
contracts:
  - code: K-2026-002
    customer: C001
    alerts: { opened: true }
    recipients:
      contract-contacts: [ct-nomail]
      service-contacts: [ct-fax]
      customer-contacts: [ct-lyon, ct-main]
",
    )
    .expect("write");
    for file in [&demo, &extra] {
        let run = setup.relais(&["import", file.to_str().expect("utf-8")]);
        assert_eq!(run.code, 0, "{run:?}");
    }
    setup
}

fn save(setup: &Setup, yaml: &str) -> Vec<Value> {
    let file = setup.dir.path().join("save.yaml");
    std::fs::write(&file, yaml).expect("write");
    let run = setup.relais(&["request", "save", file.to_str().expect("utf-8"), "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    run.stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect()
}

#[test]
fn unreachable_recipients_are_in_the_trace_and_others_get_their_mail() {
    let setup = setup();
    let answers = save(
        &setup,
        "{ number: 23060001, company: ACME-FR, customer: C001, type: INCIDENT, state: open, contract: K-2026-002, subject: Panne }\n",
    );
    let effects = answers[0]["effects"].as_array().expect("effects");
    let to: Vec<&str> = effects
        .iter()
        .map(|e| e["to"][0].as_str().expect("to"))
        .collect();
    assert_eq!(to, ["main@dupont.example", "33198765432@fax.acme.example"]);
    let run = answers[0]["run"].as_i64().expect("run").to_string();
    let shown = setup.relais(&["runs", "show", &run, "--json"]);
    let trace = shown.stdout;
    assert!(
        trace.contains("ct-nomail has no email address: undeliverable"),
        "{trace}"
    );
    assert!(
        trace.contains("ct-lyon left out of customer-contacts: not on the customer's main site"),
        "{trace}"
    );
}

#[test]
fn a_request_without_contract_sends_nothing_and_says_why() {
    let setup = setup();
    let answers = save(
        &setup,
        "- { number: 23060002, company: ACME-FR, customer: C001, type: INCIDENT, state: open }\n",
    );
    assert_eq!(answers[0]["outcome"], "applied");
    assert_eq!(answers[0]["effects"], serde_json::json!([]));
    let run = answers[0]["run"].as_i64().expect("run").to_string();
    let trace = setup.relais(&["runs", "show", &run, "--json"]).stdout;
    assert!(trace.contains("has no contract"), "{trace}");
}

#[test]
fn a_bad_request_file_saves_nothing() {
    let setup = setup();
    let file = setup.dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "{ number: 23060003, company: ACME-FR, customer: C001, type: INCIDENT, state: open, contract: K-OTHER }\n",
    )
    .expect("write");
    let run = setup.relais(&["request", "save", file.to_str().expect("utf-8")]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        run.stderr.trim(),
        "request 23060003: contract: unknown contract `K-OTHER`: not saved"
    );
    assert_eq!(setup.store().request(23060003).expect("store"), None);

    let event = setup.relais(&["contract-event", "K-2026-002", "expiring"]);
    assert_eq!(event.code, 0, "{event:?}");
    assert!(
        event
            .stdout
            .starts_with("contract K-2026-002 expiring: no-match"),
        "{event:?}"
    );
}
