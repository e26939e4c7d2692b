//! `relais import`: the DESIGN.md format, idempotent upserts, dangling
//! references reported with file:line:col and nothing written.

use crate::support::{Setup, fixture};
use relais::store::prelude::*;

#[test]
fn design_example_imports_and_reimports_unchanged() {
    let setup = Setup::new();
    let file = fixture("design-example.yaml");
    let run = setup.relais(&["import", file.to_str().expect("utf-8")]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("imported 1 companies, 1 customers, 1 contacts, 1 collaborators, 2 users"),
        "{run:?}"
    );
    let first = setup.store().directory_counts().expect("counts");
    let again = setup.relais(&["import", file.to_str().expect("utf-8")]);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(setup.store().directory_counts().expect("counts"), first);
    let store = setup.store();
    let request = store
        .request(23010203)
        .expect("query")
        .expect("request imported");
    assert_eq!(request.requester.as_deref(), Some("ct-jeanne"));
    assert_eq!(request.contract.as_deref(), Some("K-2026-001"));
    let owners = store
        .address_owners("J.Martin@Dupont.example")
        .expect("query");
    assert_eq!(owners.len(), 1, "email2 is found, case-insensitively");
    assert_eq!(owners[0].users[0].login, "jmartin");
}

#[test]
fn dangling_references_are_reported_and_nothing_is_written() {
    let setup = Setup::new();
    let file = fixture("dangling.yaml");
    let run = setup.relais(&["import", file.to_str().expect("utf-8")]);
    assert_eq!(run.code, 1, "{run:?}");
    let shown = file.display().to_string();
    let expected = [
        format!(
            "{shown}:8:15: contacts[0].customer: unknown customer `C009` (not in this file nor in the stored directory)"
        ),
        format!(
            "{shown}:13:19: users[0].collaborator: unknown collaborator `co-nobody` (not in this file nor in the stored directory)"
        ),
        format!(
            "{shown}:15:26: users[0].companies[1]: unknown company `ACME-XX` (not in this file nor in the stored directory)"
        ),
    ];
    for line in &expected {
        assert!(
            run.stderr.contains(line.as_str()),
            "missing {line}\nin:\n{}",
            run.stderr
        );
    }
    assert!(run.stderr.contains("nothing imported"), "{run:?}");
    let counts = setup.store().directory_counts().expect("counts");
    assert_eq!(
        counts.companies, 0,
        "one transaction: the valid company is not written either"
    );
}

#[test]
fn a_later_file_can_name_records_already_stored() {
    let setup = Setup::with_directory();
    let extra = setup.dir.path().join("more.yaml");
    std::fs::write(
        &extra,
        "requests:\n  - { number: 23010299, company: ACME-FR, customer: C001, type: INCIDENT, requester: ct-jeanne, state: open }\n",
    )
    .expect("write");
    let run = setup.relais(&["import", extra.to_str().expect("utf-8")]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(setup.store().request(23010299).expect("query").is_some());
}

#[test]
fn broken_yaml_and_unknown_sections_are_located() {
    let setup = Setup::new();
    let file = setup.dir.path().join("bad.yaml");
    std::fs::write(&file, "companys:\n  - { code: A, name: A }\n").expect("write");
    let run = setup.relais(&["import", file.to_str().expect("utf-8")]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("bad.yaml:1:1: unknown section `companys`; did you mean `companies`?"),
        "{run:?}"
    );
    std::fs::write(&file, "companies: [ { code: A, name: A }\n").expect("write");
    let run = setup.relais(&["import", file.to_str().expect("utf-8")]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("bad.yaml:2:1: invalid YAML"), "{run:?}");
}
