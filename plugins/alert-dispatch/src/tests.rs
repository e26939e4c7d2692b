//! Decisions on whole request saves, against an in-memory directory.

use std::cell::RefCell;

use relais_sdk::{
    AddressOwner, AlertFormat, ChangeKind, Contract, ContractDetails, ContractEvent, Customer,
    Effect, Event, Host, HostError, Level, PartyKind, PluginError, Reception, Recipient,
    RecipientGroup, Rendered, Request, RequestSaved, RequestType, Settings, ThreadMail,
};
use serde_json::{Value, json};

use crate::decide;

/// The host's store, in memory. Rendering gives the subject
/// `TEMPLATE.LANGUAGE` (none for the templates in `no_subject`) and the
/// context as JSON for body, so that tests see what was rendered and how.
struct FakeHost {
    contracts: Vec<ContractDetails>,
    customers: Vec<Customer>,
    no_subject: Vec<&'static str>,
    fail_render: bool,
    logs: RefCell<Vec<(Level, String)>>,
}

impl FakeHost {
    fn logged(&self, level: Level, needle: &str) -> bool {
        self.logs
            .borrow()
            .iter()
            .any(|(l, message)| *l == level && message.contains(needle))
    }

    fn customer_mut(&mut self) -> &mut Customer {
        &mut self.customers[0]
    }

    fn contract_mut(&mut self) -> &mut ContractDetails {
        &mut self.contracts[0]
    }
}

impl Host for FakeHost {
    fn find_requests(
        &self,
        query: &relais_sdk::RequestQuery,
    ) -> Result<Vec<relais_sdk::RequestActivity>, HostError> {
        panic!(
            "alert-dispatch asked for requests in states {:?}",
            query.states
        )
    }

    fn contact(&self, id: &str) -> Result<Option<relais_sdk::Recipient>, HostError> {
        panic!("alert-dispatch asked for contact {id}")
    }

    fn contract(&self, code: &str) -> Result<Option<ContractDetails>, HostError> {
        Ok(self.contracts.iter().find(|c| c.code == code).cloned())
    }

    fn customer(&self, code: &str) -> Result<Option<Customer>, HostError> {
        Ok(self.customers.iter().find(|c| c.code == code).cloned())
    }

    fn render(
        &self,
        name: &str,
        language: Option<&str>,
        context: &Value,
    ) -> Result<Rendered, HostError> {
        if self.fail_render {
            return Err(HostError(format!("template {name}: undefined value")));
        }
        let language = language.unwrap_or("-");
        Ok(Rendered {
            subject: (!self.no_subject.contains(&name)).then(|| format!("{name}.{language}")),
            body: context.to_string(),
        })
    }

    // Alert dispatch declares only `contracts` and `templates`: asking for
    // more would make its component import an undeclared capability.
    fn request(&self, number: u64) -> Result<Option<Request>, HostError> {
        panic!("alert-dispatch asked for request {number} without the `requests` capability")
    }

    fn request_type(&self, code: &str) -> Result<Option<RequestType>, HostError> {
        panic!("alert-dispatch asked for type {code} without the `requests` capability")
    }

    fn address_owners(&self, email: &str) -> Result<Vec<AddressOwner>, HostError> {
        panic!("alert-dispatch asked who owns {email} without the `directory` capability")
    }

    fn settings(&self) -> Result<Settings, HostError> {
        panic!("alert-dispatch asked for settings without the `settings` capability")
    }

    fn thread(&self, message_id: &str) -> Result<Vec<ThreadMail>, HostError> {
        panic!("alert-dispatch asked for thread {message_id} without the `mail` capability")
    }

    fn linked_ticket(&self, message_id: &str) -> Result<Option<u64>, HostError> {
        panic!("alert-dispatch asked for the ticket of {message_id} without the `mail` capability")
    }

    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_string()));
    }
}

const REQ: u64 = 23010203;
const CONTRACT: &str = "K-2026-001";

fn contact(id: &str, customer: &str, site: &str) -> Recipient {
    Recipient {
        kind: PartyKind::Contact,
        id: id.to_string(),
        name: id.to_string(),
        customer: Some(customer.to_string()),
        site: Some(site.to_string()),
        email: Some(format!("{}@dupont.example", &id[3..])),
        reception: Reception::Email,
        fax: None,
        alerts: ChangeKind::ALL.to_vec(),
    }
}

fn collaborator(id: &str) -> Recipient {
    Recipient {
        kind: PartyKind::Collaborator,
        id: id.to_string(),
        name: id.to_string(),
        customer: None,
        site: None,
        email: Some(format!("{}@acme.example", &id[3..])),
        reception: Reception::Email,
        fax: None,
        alerts: ChangeKind::ALL.to_vec(),
    }
}

fn subscribed(mut member: Recipient, alerts: &[ChangeKind]) -> Recipient {
    member.alerts = alerts.to_vec();
    member
}

fn group(name: &str, members: Vec<Recipient>) -> RecipientGroup {
    RecipientGroup {
        group: name.to_string(),
        members,
    }
}

/// Contract K-2026-001 of customer C001 (Dupont SA, main site PARIS, no
/// language, its own format for `closed` only), enabling every kind, with
/// these recipient groups.
fn directory(groups: Vec<RecipientGroup>) -> FakeHost {
    FakeHost {
        contracts: vec![ContractDetails {
            code: CONTRACT.to_string(),
            customer: "C001".to_string(),
            alerts: ChangeKind::ALL.to_vec(),
            recipients: groups,
        }],
        customers: vec![Customer {
            code: "C001".to_string(),
            name: "Dupont SA".to_string(),
            company: "ACME-FR".to_string(),
            main_site: Some("PARIS".to_string()),
            language: None,
            alert_formats: vec![AlertFormat {
                kind: ChangeKind::Closed,
                keyword: "[CLOS]".to_string(),
                template: "dupont-closed".to_string(),
            }],
        }],
        no_subject: vec![],
        fail_render: false,
        logs: RefCell::new(Vec::new()),
    }
}

fn request(state: &str) -> Request {
    Request {
        number: REQ,
        company: "ACME-FR".to_string(),
        customer: "C001".to_string(),
        request_type: "INCIDENT".to_string(),
        requester: Some("ct-jeanne".to_string()),
        state: state.to_string(),
        publishable: true,
        conversation_locked: false,
        contract: Some(CONTRACT.to_string()),
        subject: Some("Printer on fire".to_string()),
    }
}

/// A save of request 23010203 from `open` to `state` with these kinds.
fn save(state: &str, changes: &[ChangeKind]) -> RequestSaved {
    RequestSaved {
        before: Some(request("open")),
        after: request(state),
        changes: changes.to_vec(),
    }
}

/// The creation of request 23010203.
fn opening() -> RequestSaved {
    RequestSaved {
        before: None,
        after: request("open"),
        changes: vec![ChangeKind::Opened],
    }
}

fn closing() -> RequestSaved {
    save("closed", &[ChangeKind::Closed, ChangeKind::StateChanged])
}

fn run_with(host: &FakeHost, saved: RequestSaved, config: Value) -> Vec<Effect> {
    decide(&Event::RequestSaved(saved), &config, host).unwrap()
}

fn run(host: &FakeHost, saved: RequestSaved) -> Vec<Effect> {
    run_with(host, saved, Value::Null)
}

/// Each mail as (its one address, its subject).
fn mails(effects: &[Effect]) -> Vec<(String, String)> {
    effects
        .iter()
        .map(|effect| match effect {
            Effect::SendMail {
                to,
                subject,
                request,
                ..
            } => {
                assert_eq!(to.len(), 1, "{effect:?}");
                assert_eq!(*request, Some(REQ));
                (to[0].clone(), subject.clone())
            }
            other => panic!("expected send-mail, got {other:?}"),
        })
        .collect()
}

fn mail(to: &str, subject: &str) -> (String, String) {
    (to.to_string(), subject.to_string())
}

/// The context the one mail was rendered with.
fn context_of(effects: &[Effect]) -> Value {
    match effects {
        [Effect::SendMail { body, .. }] => serde_json::from_str(body).unwrap(),
        other => panic!("expected one send-mail, got {other:?}"),
    }
}

// ------------------------------------------------------- each group

/// A save opening the request sends one mail to `member`, alone in `name`.
fn one_group_sends(name: &str, member: Recipient, to: &str) {
    let host = directory(vec![group(name, vec![member.clone()])]);
    let effects = run(&host, opening());
    assert_eq!(mails(&effects), [mail(to, "[OUVERTURE] alert-opened.fr")]);
    assert!(host.logged(
        Level::Info,
        &format!("alert `opened` to {} <{to}> ({name})", member.id)
    ));
}

#[test]
fn contract_contacts_are_alerted() {
    one_group_sends(
        "contract-contacts",
        contact("ct-jeanne", "C001", "PARIS"),
        "jeanne@dupont.example",
    );
}

#[test]
fn site_contacts_are_alerted() {
    one_group_sends(
        "site-contacts",
        contact("ct-jeanne", "C001", "PARIS"),
        "jeanne@dupont.example",
    );
}

#[test]
fn customer_contacts_are_alerted() {
    one_group_sends(
        "customer-contacts",
        contact("ct-jeanne", "C001", "PARIS"),
        "jeanne@dupont.example",
    );
}

#[test]
fn product_contacts_are_alerted() {
    one_group_sends(
        "product-contacts",
        contact("ct-jeanne", "C001", "PARIS"),
        "jeanne@dupont.example",
    );
}

#[test]
fn product_collaborators_are_alerted() {
    one_group_sends(
        "product-collaborators",
        collaborator("co-paul"),
        "paul@acme.example",
    );
}

#[test]
fn service_contacts_are_alerted() {
    one_group_sends(
        "service-contacts",
        contact("ct-jeanne", "C001", "PARIS"),
        "jeanne@dupont.example",
    );
}

#[test]
fn effect_is_a_mail_about_the_request() {
    let host = directory(vec![group(
        "contract-contacts",
        vec![contact("ct-jeanne", "C001", "PARIS")],
    )]);
    let effects = run(&host, opening());
    let body = context_of(&effects).to_string();
    assert_eq!(
        effects,
        [Effect::SendMail {
            to: vec!["jeanne@dupont.example".to_string()],
            subject: "[OUVERTURE] alert-opened.fr".to_string(),
            body,
            request: Some(REQ),
            exchange: None,
        }]
    );
}

#[test]
fn recipients_are_mailed_in_the_order_first_found() {
    let host = directory(vec![
        group(
            "contract-contacts",
            vec![
                contact("ct-luc", "C001", "LYON"),
                contact("ct-jeanne", "C001", "PARIS"),
            ],
        ),
        group("product-collaborators", vec![collaborator("co-paul")]),
        group("service-contacts", vec![contact("ct-luc", "C001", "LYON")]),
    ]);
    let effects = run(&host, opening());
    assert_eq!(
        mails(&effects),
        [
            mail("luc@dupont.example", "[OUVERTURE] alert-opened.fr"),
            mail("jeanne@dupont.example", "[OUVERTURE] alert-opened.fr"),
            mail("paul@acme.example", "[OUVERTURE] alert-opened.fr"),
        ]
    );
}

// ------------------------------------------------ who is left out, why

#[test]
fn member_not_subscribed_to_the_kind_gets_nothing() {
    let host = directory(vec![group(
        "contract-contacts",
        vec![
            subscribed(contact("ct-jeanne", "C001", "PARIS"), &[ChangeKind::Opened]),
            contact("ct-luc", "C001", "PARIS"),
        ],
    )]);
    let effects = run(&host, closing());
    assert_eq!(
        mails(&effects),
        [mail("luc@dupont.example", "[CLOS] dupont-closed.fr")]
    );
    assert!(host.logged(
        Level::Info,
        "ct-jeanne left out of contract-contacts: subscribed to none of `closed`, `state-changed`"
    ));
}

#[test]
fn member_with_reception_none_gets_nothing() {
    let mut jeanne = contact("ct-jeanne", "C001", "PARIS");
    jeanne.reception = Reception::None;
    let host = directory(vec![group("contract-contacts", vec![jeanne])]);
    assert_eq!(run(&host, opening()), []);
    assert!(host.logged(
        Level::Info,
        "ct-jeanne left out of contract-contacts: reception mode none"
    ));
}

#[test]
fn customer_contacts_must_be_on_the_customers_main_site() {
    let host = directory(vec![group(
        "customer-contacts",
        vec![
            contact("ct-luc", "C001", "LYON"),
            contact("ct-marc", "C002", "PARIS"),
            contact("ct-jeanne", "C001", "PARIS"),
        ],
    )]);
    let effects = run(&host, opening());
    assert_eq!(
        mails(&effects),
        [mail("jeanne@dupont.example", "[OUVERTURE] alert-opened.fr")]
    );
    assert!(host.logged(
        Level::Info,
        "ct-luc left out of customer-contacts: not on the customer's main site (site LYON, main site PARIS)"
    ));
    assert!(host.logged(
        Level::Info,
        "ct-marc left out of customer-contacts: not on the customer's main site (a contact of customer C002, not C001)"
    ));
}

#[test]
fn customer_without_main_site_has_no_customer_contact_alerted() {
    let mut host = directory(vec![group(
        "customer-contacts",
        vec![contact("ct-jeanne", "C001", "PARIS")],
    )]);
    host.customer_mut().main_site = None;
    assert_eq!(run(&host, opening()), []);
    assert!(host.logged(Level::Info, "customer C001 has no main site"));
}

#[test]
fn site_contacts_are_not_filtered_by_main_site() {
    let host = directory(vec![group(
        "site-contacts",
        vec![contact("ct-luc", "C001", "LYON")],
    )]);
    let effects = run(&host, opening());
    assert_eq!(
        mails(&effects),
        [mail("luc@dupont.example", "[OUVERTURE] alert-opened.fr")]
    );
}

#[test]
fn left_out_of_customer_contacts_but_kept_in_another_group() {
    let host = directory(vec![
        group("customer-contacts", vec![contact("ct-luc", "C001", "LYON")]),
        group("site-contacts", vec![contact("ct-luc", "C001", "LYON")]),
    ]);
    let effects = run(&host, opening());
    assert_eq!(
        mails(&effects),
        [mail("luc@dupont.example", "[OUVERTURE] alert-opened.fr")]
    );
    assert!(host.logged(
        Level::Info,
        "alert `opened` to ct-luc <luc@dupont.example> (site-contacts)"
    ));
}

// ---------------------------------------------------------- addresses

fn by_fax(number: Option<&str>) -> Recipient {
    let mut jeanne = contact("ct-jeanne", "C001", "PARIS");
    jeanne.reception = Reception::Fax;
    jeanne.fax = number.map(str::to_string);
    jeanne
}

#[test]
fn fax_goes_through_the_gateway_with_the_numbers_digits() {
    let host = directory(vec![group(
        "contract-contacts",
        vec![by_fax(Some("+33 1 23 45 67 89"))],
    )]);
    let config = json!({ "fax-gateway": " {fax}@Fax.Acme.example " });
    let effects = run_with(&host, opening(), config);
    assert_eq!(
        mails(&effects),
        [mail(
            "33123456789@Fax.Acme.example",
            "[OUVERTURE] alert-opened.fr"
        )]
    );
}

#[test]
fn fax_without_gateway_is_undeliverable() {
    let host = directory(vec![group(
        "contract-contacts",
        vec![by_fax(Some("+33 1 23 45 67 89"))],
    )]);
    assert_eq!(run(&host, opening()), []);
    assert!(host.logged(
        Level::Warn,
        "ct-jeanne receives alerts by fax and no fax-gateway is configured: undeliverable"
    ));
}

#[test]
fn fax_without_number_is_undeliverable() {
    let host = directory(vec![group("contract-contacts", vec![by_fax(None)])]);
    let config = json!({ "fax-gateway": "{fax}@fax.acme.example" });
    assert_eq!(run_with(&host, opening(), config), []);
    assert!(host.logged(
        Level::Warn,
        "ct-jeanne receives alerts by fax and has no fax number: undeliverable"
    ));
}

#[test]
fn recipient_without_email_is_undeliverable() {
    let mut jeanne = contact("ct-jeanne", "C001", "PARIS");
    jeanne.email = None;
    let mut luc = contact("ct-luc", "C001", "PARIS");
    luc.email = Some("  ".to_string());
    let host = directory(vec![group(
        "contract-contacts",
        vec![jeanne, luc, collaborator("co-paul")],
    )]);
    let effects = run(&host, opening());
    assert_eq!(
        mails(&effects),
        [mail("paul@acme.example", "[OUVERTURE] alert-opened.fr")]
    );
    assert!(host.logged(Level::Warn, "ct-jeanne has no email address: undeliverable"));
    assert!(host.logged(Level::Warn, "ct-luc has no email address: undeliverable"));
}

#[test]
fn email_is_trimmed_and_never_lowercased() {
    let mut jeanne = contact("ct-jeanne", "C001", "PARIS");
    jeanne.email = Some(" Jeanne.Martin@Dupont.example ".to_string());
    let host = directory(vec![group("contract-contacts", vec![jeanne])]);
    let effects = run(&host, opening());
    assert_eq!(
        mails(&effects),
        [mail(
            "Jeanne.Martin@Dupont.example",
            "[OUVERTURE] alert-opened.fr"
        )]
    );
}

// ------------------------------------------------- once per event

#[test]
fn recipient_in_several_groups_gets_one_mail() {
    let host = directory(vec![
        group(
            "contract-contacts",
            vec![contact("ct-jeanne", "C001", "PARIS")],
        ),
        group("product-collaborators", vec![collaborator("co-paul")]),
        group("site-contacts", vec![contact("ct-jeanne", "C001", "PARIS")]),
    ]);
    let effects = run(&host, closing());
    assert_eq!(
        mails(&effects),
        [
            mail("jeanne@dupont.example", "[CLOS] dupont-closed.fr"),
            mail("paul@acme.example", "[CLOS] dupont-closed.fr"),
        ]
    );
    assert!(host.logged(
        Level::Info,
        "alert `closed` to ct-jeanne <jeanne@dupont.example> (contract-contacts, site-contacts)"
    ));
}

#[test]
fn contact_and_collaborator_sharing_an_id_are_two_recipients() {
    let mut twin = collaborator("co-paul");
    twin.id = "ct-jeanne".to_string();
    let host = directory(vec![group(
        "contract-contacts",
        vec![contact("ct-jeanne", "C001", "PARIS"), twin],
    )]);
    assert_eq!(run(&host, opening()).len(), 2);
}

#[test]
fn one_mail_per_recipient_for_its_most_important_kind() {
    let host = directory(vec![group(
        "contract-contacts",
        vec![
            subscribed(
                contact("ct-jeanne", "C001", "PARIS"),
                &[ChangeKind::StateChanged, ChangeKind::Resolved],
            ),
            subscribed(
                contact("ct-luc", "C001", "PARIS"),
                &[ChangeKind::StateChanged],
            ),
        ],
    )]);
    let effects = run(
        &host,
        save(
            "resolved",
            &[ChangeKind::StateChanged, ChangeKind::Resolved],
        ),
    );
    assert_eq!(
        mails(&effects),
        [
            mail("jeanne@dupont.example", "[RESOLUTION] alert-resolved.fr"),
            mail("luc@dupont.example", "[ETAT] alert-state.fr"),
        ]
    );
    assert!(host.logged(Level::Info, "alert `resolved` to ct-jeanne"));
    assert!(host.logged(Level::Info, "alert `state-changed` to ct-luc"));
}

#[test]
fn closed_comes_before_resolved_and_opened() {
    let host = directory(vec![group(
        "contract-contacts",
        vec![contact("ct-jeanne", "C001", "PARIS")],
    )]);
    let effects = run(
        &host,
        save(
            "closed",
            &[
                ChangeKind::Opened,
                ChangeKind::Resolved,
                ChangeKind::Closed,
                ChangeKind::StateChanged,
            ],
        ),
    );
    assert_eq!(
        mails(&effects),
        [mail("jeanne@dupont.example", "[CLOS] dupont-closed.fr")]
    );
}

// ------------------------------------------------------ no alert at all

#[test]
fn kind_the_contract_does_not_enable_sends_nothing() {
    let mut host = directory(vec![group(
        "contract-contacts",
        vec![contact("ct-jeanne", "C001", "PARIS")],
    )]);
    host.contract_mut().alerts = vec![ChangeKind::Opened];
    assert_eq!(run(&host, save("closed", &[ChangeKind::Closed])), []);
    assert!(host.logged(
        Level::Info,
        "contract K-2026-001 does not enable `closed` alerts"
    ));
    // The enabled kind still goes out.
    assert_eq!(run(&host, opening()).len(), 1);
}

#[test]
fn only_the_enabled_kinds_of_a_save_count() {
    let mut host = directory(vec![group(
        "contract-contacts",
        vec![contact("ct-jeanne", "C001", "PARIS")],
    )]);
    host.contract_mut().alerts = vec![ChangeKind::StateChanged];
    let effects = run(&host, closing());
    assert_eq!(
        mails(&effects),
        [mail("jeanne@dupont.example", "[ETAT] alert-state.fr")]
    );
    assert!(host.logged(
        Level::Info,
        "contract K-2026-001 does not enable `closed` alerts"
    ));
}

#[test]
fn request_without_contract_sends_nothing() {
    let host = directory(vec![group(
        "contract-contacts",
        vec![contact("ct-jeanne", "C001", "PARIS")],
    )]);
    let mut saved = opening();
    saved.after.contract = None;
    assert_eq!(run(&host, saved), []);
    assert!(host.logged(Level::Info, "request 23010203 has no contract: no alert"));
}

#[test]
fn contract_not_found_sends_nothing() {
    let host = directory(vec![]);
    let mut saved = opening();
    saved.after.contract = Some("K-GONE".to_string());
    assert_eq!(run(&host, saved), []);
    assert!(host.logged(Level::Warn, "contract K-GONE not found"));
}

#[test]
fn customer_not_found_sends_nothing() {
    let mut host = directory(vec![group(
        "contract-contacts",
        vec![contact("ct-jeanne", "C001", "PARIS")],
    )]);
    host.customers.clear();
    assert_eq!(run(&host, opening()), []);
    assert!(host.logged(Level::Warn, "customer C001 not found"));
}

#[test]
fn save_without_change_kind_sends_nothing() {
    let host = directory(vec![group(
        "contract-contacts",
        vec![contact("ct-jeanne", "C001", "PARIS")],
    )]);
    assert_eq!(run(&host, save("open", &[])), []);
    assert!(host.logged(Level::Info, "no change kind: no alert"));
}

#[test]
fn other_events_give_no_effect() {
    let host = directory(vec![]);
    let event = Event::ContractEvent(ContractEvent {
        kind: "expiring".to_string(),
        contract: Contract {
            code: CONTRACT.to_string(),
            customer: "C001".to_string(),
        },
    });
    assert_eq!(decide(&event, &Value::Null, &host).unwrap(), vec![]);
    assert!(host.logged(Level::Debug, "ignored a contract-event event"));
}

// ------------------------------------------------------ what the mail says

#[test]
fn customers_alert_format_comes_before_the_config_default() {
    let host = directory(vec![group(
        "contract-contacts",
        vec![contact("ct-jeanne", "C001", "PARIS")],
    )]);
    let config = json!({
        "defaults": {
            "closed": { "keyword": "[FERME]", "template": "closed-default" },
            "opened": { "keyword": "[NEW]", "template": "opened-default" },
        }
    });
    // C001 has its own format for `closed`, none for `opened` nor `resolved`.
    let closed = run_with(&host, closing(), config.clone());
    assert_eq!(
        mails(&closed),
        [mail("jeanne@dupont.example", "[CLOS] dupont-closed.fr")]
    );
    let opened = run_with(&host, opening(), config.clone());
    assert_eq!(
        mails(&opened),
        [mail("jeanne@dupont.example", "[NEW] opened-default.fr")]
    );
    let resolved = run_with(&host, save("resolved", &[ChangeKind::Resolved]), config);
    assert_eq!(
        mails(&resolved),
        [mail(
            "jeanne@dupont.example",
            "[RESOLUTION] alert-resolved.fr"
        )]
    );
}

#[test]
fn language_is_the_customers_else_the_configs() {
    let mut host = directory(vec![group(
        "contract-contacts",
        vec![contact("ct-jeanne", "C001", "PARIS")],
    )]);
    let english = json!({ "language": "en" });
    assert_eq!(
        mails(&run(&host, opening())),
        [mail("jeanne@dupont.example", "[OUVERTURE] alert-opened.fr")]
    );
    assert_eq!(
        mails(&run_with(&host, opening(), english.clone())),
        [mail("jeanne@dupont.example", "[OUVERTURE] alert-opened.en")]
    );
    host.customer_mut().language = Some("de".to_string());
    assert_eq!(
        mails(&run_with(&host, opening(), english)),
        [mail("jeanne@dupont.example", "[OUVERTURE] alert-opened.de")]
    );
}

#[test]
fn without_a_template_subject_the_subject_names_the_request() {
    let mut host = directory(vec![group(
        "contract-contacts",
        vec![contact("ct-jeanne", "C001", "PARIS")],
    )]);
    host.no_subject = vec!["alert-opened"];
    let effects = run(&host, opening());
    assert_eq!(
        mails(&effects),
        [mail(
            "jeanne@dupont.example",
            "[OUVERTURE] [#23010203] Printer on fire"
        )]
    );
    // The template's subject is used when it has one.
    let effects = run(&host, closing());
    assert_eq!(
        mails(&effects),
        [mail("jeanne@dupont.example", "[CLOS] dupont-closed.fr")]
    );
    let mut untitled = opening();
    untitled.after.subject = None;
    let effects = run(&host, untitled);
    assert_eq!(
        mails(&effects),
        [mail("jeanne@dupont.example", "[OUVERTURE] [#23010203]")]
    );
}

#[test]
fn template_sees_the_change_and_the_recipient() {
    let host = directory(vec![group(
        "contract-contacts",
        vec![contact("ct-jeanne", "C001", "PARIS")],
    )]);
    let context = context_of(&run(&host, save("resolved", &[ChangeKind::Resolved])));
    assert_eq!(
        context["change"],
        json!({
            "kind": "resolved",
            "keyword": "[RESOLUTION]",
            "previous_state": "open",
            "state": "resolved",
        })
    );
    assert_eq!(context["request"]["number"], json!(REQ));
    assert_eq!(context["customer"]["code"], json!("C001"));
    assert_eq!(
        context["contract"],
        json!({ "code": CONTRACT, "customer": "C001" })
    );
    assert_eq!(context["recipient"]["id"], json!("ct-jeanne"));
    // A request just opened had no previous state.
    let context = context_of(&run(&host, opening()));
    assert_eq!(context["change"]["previous_state"], Value::Null);
    assert_eq!(context["change"]["state"], json!("open"));
}

// ------------------------------------------------------------ failures

#[test]
fn bad_config_is_a_plugin_error_naming_the_key() {
    let host = directory(vec![]);
    let event = Event::RequestSaved(opening());
    match decide(&event, &json!({ "langage": "en" }), &host) {
        Err(PluginError::Plugin(message)) => assert!(message.contains("`langage`"), "{message}"),
        other => panic!("expected a config error, got {other:?}"),
    }
    match decide(&event, &json!({ "fax-gateway": "fax@acme.example" }), &host) {
        Err(PluginError::Plugin(message)) => {
            assert!(message.contains("`fax-gateway`"), "{message}")
        }
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn template_errors_fail_the_event() {
    let mut host = directory(vec![group(
        "contract-contacts",
        vec![contact("ct-jeanne", "C001", "PARIS")],
    )]);
    host.fail_render = true;
    let result = decide(&Event::RequestSaved(opening()), &Value::Null, &host);
    assert_eq!(
        result,
        Err(PluginError::Host(HostError(
            "template alert-opened: undefined value".to_string()
        )))
    );
}
