//! Decisions on whole mails, against an in-memory directory.

use std::cell::RefCell;

use relais_sdk::{
    Address, AddressOwner, AuthResult, Author, Contract, ContractDetails, ContractEvent, Effect,
    Event, Host, HostError, Level, Mail, MessageSource, PartyKind, PluginError, Request,
    RequestType, SenderAuthentication, Settings, Side, ThreadMail, User, UserKind,
};
use serde_json::{Value, json};

use crate::{Reason, decide};

/// A collaborator or contact with the addresses it owns.
struct Party {
    emails: Vec<&'static str>,
    owner: AddressOwner,
}

/// The host's store, in memory; `fail` makes every query fail.
struct FakeHost {
    settings: Settings,
    requests: Vec<Request>,
    types: Vec<RequestType>,
    parties: Vec<Party>,
    fail: bool,
    logs: RefCell<Vec<(Level, String)>>,
}

impl FakeHost {
    fn check(&self) -> Result<(), HostError> {
        if self.fail {
            Err(HostError("store unreachable".to_string()))
        } else {
            Ok(())
        }
    }

    fn logged(&self, level: Level, needle: &str) -> bool {
        self.logs
            .borrow()
            .iter()
            .any(|(l, message)| *l == level && message.contains(needle))
    }

    fn party(&mut self, id: &str) -> &mut AddressOwner {
        &mut self
            .parties
            .iter_mut()
            .find(|party| party.owner.id == id)
            .unwrap()
            .owner
    }

    fn request_mut(&mut self, number: u64) -> &mut Request {
        self.requests
            .iter_mut()
            .find(|request| request.number == number)
            .unwrap()
    }
}

impl Host for FakeHost {
    fn find_requests(
        &self,
        query: &relais_sdk::RequestQuery,
    ) -> Result<Vec<relais_sdk::RequestActivity>, HostError> {
        panic!("catchmail asked for requests in states {:?}", query.states)
    }

    fn contact(&self, id: &str) -> Result<Option<relais_sdk::Recipient>, HostError> {
        panic!("catchmail asked for contact {id}")
    }

    fn request(&self, number: u64) -> Result<Option<Request>, HostError> {
        self.check()?;
        Ok(self
            .requests
            .iter()
            .find(|request| request.number == number)
            .cloned())
    }

    fn request_type(&self, code: &str) -> Result<Option<RequestType>, HostError> {
        self.check()?;
        Ok(self.types.iter().find(|t| t.code == code).cloned())
    }

    fn address_owners(&self, email: &str) -> Result<Vec<AddressOwner>, HostError> {
        self.check()?;
        Ok(self
            .parties
            .iter()
            .filter(|party| {
                party
                    .emails
                    .iter()
                    .any(|own| own.eq_ignore_ascii_case(email))
            })
            .map(|party| party.owner.clone())
            .collect())
    }

    fn settings(&self) -> Result<Settings, HostError> {
        self.check()?;
        Ok(self.settings.clone())
    }

    // CatchMail declares neither `contracts`, `templates` nor `mail`: asking would make
    // its component import an undeclared capability, so a call is a bug.
    fn contract(&self, code: &str) -> Result<Option<ContractDetails>, HostError> {
        panic!("CatchMail asked for contract {code} without the `contracts` capability")
    }

    fn customer(&self, code: &str) -> Result<Option<relais_sdk::Customer>, HostError> {
        panic!("CatchMail asked for customer {code} without the `contracts` capability")
    }

    fn render(
        &self,
        name: &str,
        _: Option<&str>,
        _: &serde_json::Value,
    ) -> Result<relais_sdk::Rendered, HostError> {
        panic!("CatchMail asked to render {name} without the `templates` capability")
    }

    fn thread(&self, message_id: &str) -> Result<Vec<ThreadMail>, HostError> {
        panic!("CatchMail asked for thread {message_id} without the `mail` capability")
    }

    fn linked_ticket(&self, message_id: &str) -> Result<Option<u64>, HostError> {
        panic!("CatchMail asked for the ticket of {message_id} without the `mail` capability")
    }

    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_string()));
    }
}

fn internal(login: &str, rights: &[u32], catchmail: bool, companies: &[&str]) -> User {
    User {
        login: login.to_string(),
        kind: UserKind::Internal,
        rights: rights.to_vec(),
        catchmail,
        companies: companies.iter().map(|c| c.to_string()).collect(),
    }
}

fn extranet(login: &str, rights: &[u32], catchmail: bool) -> User {
    User {
        login: login.to_string(),
        kind: UserKind::Extranet,
        rights: rights.to_vec(),
        catchmail,
        companies: vec![],
    }
}

fn collaborator(id: &str, emails: Vec<&'static str>, users: Vec<User>) -> Party {
    let owner = AddressOwner {
        kind: PartyKind::Collaborator,
        id: id.to_string(),
        name: id.to_string(),
        customer: None,
        users,
    };
    Party { emails, owner }
}

fn contact(id: &str, customer: &str, emails: Vec<&'static str>, users: Vec<User>) -> Party {
    let owner = AddressOwner {
        kind: PartyKind::Contact,
        id: id.to_string(),
        name: id.to_string(),
        customer: Some(customer.to_string()),
        users,
    };
    Party { emails, owner }
}

fn request(number: u64, request_type: &str, requester: Option<&str>) -> Request {
    Request {
        number,
        company: "ACME-FR".to_string(),
        customer: "C001".to_string(),
        request_type: request_type.to_string(),
        requester: requester.map(str::to_string),
        state: "open".to_string(),
        publishable: true,
        conversation_locked: false,
        contract: Some("K-2026-001".to_string()),
        subject: Some("Printer on fire".to_string()),
    }
}

const REQ: u64 = 23010203;
/// Requested by ct-luc, another contact of C001.
const LUC_REQ: u64 = 23010208;
/// Of type QUESTION, not set up for CatchMail.
const QUESTION_REQ: u64 = 23010204;
/// Of a type the host does not know.
const ORPHAN_REQ: u64 = 23010207;

/// Company ACME-FR, customer C001 (contacts Jeanne and Luc) and C002
/// (contact Marc), collaborators of the support company.
fn directory() -> FakeHost {
    FakeHost {
        settings: Settings::default(),
        requests: vec![
            request(REQ, "INCIDENT", Some("ct-jeanne")),
            request(LUC_REQ, "INCIDENT", Some("ct-luc")),
            request(QUESTION_REQ, "QUESTION", Some("ct-jeanne")),
            request(ORPHAN_REQ, "GONE", Some("ct-jeanne")),
        ],
        types: vec![
            RequestType {
                code: "INCIDENT".to_string(),
                catchmail: true,
            },
            RequestType {
                code: "QUESTION".to_string(),
                catchmail: false,
            },
        ],
        parties: vec![
            collaborator(
                "co-paul",
                vec!["paul@acme.example", "support@acme.example"],
                vec![internal("pdurand", &[141341], true, &["ACME-FR"])],
            ),
            collaborator(
                "co-anne",
                vec!["anne@acme.example"],
                vec![internal("adupuis", &[260107], true, &["ACME-BE"])],
            ),
            // Two collaborators share the team address; only Lea's user
            // has both the rights and the flag.
            collaborator(
                "co-team-a",
                vec!["team@acme.example"],
                vec![internal("teama", &[141341], false, &["ACME-FR"])],
            ),
            collaborator(
                "co-team-b",
                vec!["team@acme.example"],
                vec![
                    internal("lea", &[141341, 260107], true, &["ACME-FR"]),
                    internal("lea-admin", &[1], true, &["ACME-FR"]),
                ],
            ),
            // Two collaborators share the help address, both qualify.
            collaborator(
                "co-help-a",
                vec!["help@acme.example"],
                vec![internal("helpa", &[141341], true, &["ACME-FR"])],
            ),
            collaborator(
                "co-help-b",
                vec!["help@acme.example"],
                vec![internal("helpb", &[260107], true, &["ACME-FR"])],
            ),
            collaborator(
                "co-nora",
                vec!["nora@acme.example"],
                vec![internal("nora", &[141341], false, &["ACME-FR"])],
            ),
            contact(
                "ct-jeanne",
                "C001",
                vec!["jeanne@dupont.example", "j.martin@dupont.example"],
                vec![extranet("jmartin", &[147012], true)],
            ),
            contact(
                "ct-luc",
                "C001",
                vec!["luc@dupont.example"],
                vec![extranet("lbernard", &[147012, 147001], true)],
            ),
            contact(
                "ct-marc",
                "C002",
                vec!["marc@other.example"],
                vec![extranet("mroux", &[147012, 147001], true)],
            ),
        ],
        fail: false,
        logs: RefCell::new(Vec::new()),
    }
}

fn mail(from: &str, subject: &str, text: &str) -> Mail {
    Mail {
        account: "catchmail".to_string(),
        message_id: "m1@dupont.example".to_string(),
        subject: subject.to_string(),
        from: Some(Address {
            name: None,
            email: from.to_string(),
        }),
        to: vec![Address {
            name: None,
            email: "catchmail@acme.example".to_string(),
        }],
        text: text.to_string(),
        size: 512,
        authentication: passed(from),
        ..Mail::default()
    }
}

/// What the host says of a mail whose sender's domain passed DMARC at the
/// receiving server.
fn passed(from: &str) -> SenderAuthentication {
    SenderAuthentication {
        result: AuthResult::Pass,
        domain: from.rsplit('@').next().map(str::to_string),
        method: Some("dmarc".to_string()),
        authority: Some("mx.acme.example".to_string()),
        reason: "mx.acme.example: dmarc=pass".to_string(),
    }
}

fn on_request(from: &str, number: u64) -> Mail {
    mail(
        from,
        &format!("#{number} *message*"),
        "The printer is on fire again.",
    )
}

fn run_with(host: &FakeHost, mail: Mail, config: Value) -> Vec<Effect> {
    decide(&Event::MailReceived(mail), &config, host).unwrap()
}

fn run(host: &FakeHost, mail: Mail) -> Vec<Effect> {
    run_with(host, mail, Value::Null)
}

fn posted(number: u64, kind: PartyKind, id: &str, side: Side, body: &str) -> Vec<Effect> {
    vec![
        Effect::PostMessage {
            request: number,
            author: Author {
                kind,
                id: id.to_string(),
            },
            side,
            source: MessageSource::Catchmail,
            body: body.to_string(),
            notify_by_email: None,
        },
        Effect::LinkMail {
            message_id: "m1@dupont.example".to_string(),
            request: number,
        },
    ]
}

/// Asserts one failure notice with this code to this address, and returns
/// its message.
fn assert_refused(effects: &[Effect], code: &str, to: &str) -> String {
    match effects {
        [
            Effect::ReplyFailure {
                to: actual_to,
                reason,
                message,
                in_reply_to,
                ..
            },
        ] => {
            assert_eq!(reason, code);
            assert_eq!(actual_to, to);
            assert_eq!(in_reply_to, "m1@dupont.example");
            message.clone()
        }
        other => panic!("expected one reply-failure {code}, got {other:?}"),
    }
}

// ---------------------------------------------------------------- success

#[test]
fn collaborator_posts_on_the_staff_side() {
    let host = directory();
    let effects = run(&host, on_request("paul@acme.example", REQ));
    let body = "The printer is on fire again.";
    assert_eq!(
        effects,
        posted(REQ, PartyKind::Collaborator, "co-paul", Side::Staff, body)
    );
    assert!(host.logged(
        Level::Info,
        "posted mail m1@dupont.example on request 23010203"
    ));
    assert!(host.logged(Level::Info, "user pdurand"));
}

#[test]
fn requester_contact_posts_on_the_customer_side() {
    let host = directory();
    let effects = run(&host, on_request("jeanne@dupont.example", REQ));
    let body = "The printer is on fire again.";
    assert_eq!(
        effects,
        posted(REQ, PartyKind::Contact, "ct-jeanne", Side::Customer, body)
    );
}

#[test]
fn second_address_and_letter_case_are_matched_by_the_host() {
    let host = directory();
    let effects = run(&host, on_request("J.Martin@Dupont.EXAMPLE", REQ));
    assert!(
        matches!(&effects[..], [Effect::PostMessage { author, .. }, Effect::LinkMail { .. }] if author.id == "ct-jeanne")
    );
    let effects = run(&host, on_request("support@acme.example", REQ));
    assert!(
        matches!(&effects[..], [Effect::PostMessage { author, .. }, Effect::LinkMail { .. }] if author.id == "co-paul")
    );
}

#[test]
fn extranet_user_with_147001_posts_on_another_requesters_request() {
    let host = directory();
    // Luc holds 147001 and posts on Jeanne's request, same customer.
    let effects = run(&host, on_request("luc@dupont.example", REQ));
    let body = "The printer is on fire again.";
    assert_eq!(
        effects,
        posted(REQ, PartyKind::Contact, "ct-luc", Side::Customer, body)
    );
}

#[test]
fn extranet_user_with_147001_posts_on_a_request_without_requester() {
    let mut host = directory();
    host.request_mut(REQ).requester = None;
    assert!(matches!(
        &run(&host, on_request("luc@dupont.example", REQ))[..],
        [Effect::PostMessage { .. }, Effect::LinkMail { .. }]
    ));
}

#[test]
fn shared_address_is_accepted_when_exactly_one_user_qualifies() {
    let host = directory();
    let effects = run(&host, on_request("team@acme.example", REQ));
    let body = "The printer is on fire again.";
    assert_eq!(
        effects,
        posted(REQ, PartyKind::Collaborator, "co-team-b", Side::Staff, body)
    );
    assert!(host.logged(Level::Info, "user lea)"));
}

#[test]
fn owner_listed_twice_is_one_person() {
    let mut host = directory();
    let paul = host
        .parties
        .iter()
        .find(|p| p.owner.id == "co-paul")
        .unwrap()
        .owner
        .clone();
    host.parties.push(Party {
        emails: vec!["paul@acme.example"],
        owner: paul,
    });
    assert!(matches!(
        &run(&host, on_request("paul@acme.example", REQ))[..],
        [Effect::PostMessage { .. }, Effect::LinkMail { .. }]
    ));
}

#[test]
fn subject_variants_of_the_seed_are_accepted_and_never_posted() {
    let host = directory();
    for subject in [
        "#23010203 *message*",
        "*message* #23010203",
        "Validation qualité #23010203 *message*",
        "#23010203 *MESSAGE* Retour",
        "#23010203\t*message*",
        "Re:   #23010203     *Message*",
        "#0023010203 *message*",
        "#23010203 *message* #23010203",
    ] {
        let effects = run(&host, mail("paul@acme.example", subject, "Done."));
        assert_eq!(
            effects,
            posted(
                REQ,
                PartyKind::Collaborator,
                "co-paul",
                Side::Staff,
                "Done."
            ),
            "{subject}"
        );
    }
}

#[test]
fn signature_and_quoted_history_are_not_posted() {
    let host = directory();
    let text = "Bonjour,\r\n\r\nC'est réparé.\r\n\r\n-- \r\nPaul Durand\r\nAcme\r\n\r\nLe lun. 3 \
                janv. 2026 à 10:00, Jeanne a écrit :\r\n> L'imprimante brûle.\r\n";
    let effects = run(
        &host,
        mail("paul@acme.example", "#23010203 *message*", text),
    );
    let body = "Bonjour,\n\nC'est réparé.";
    assert_eq!(
        effects,
        posted(REQ, PartyKind::Collaborator, "co-paul", Side::Staff, body)
    );
}

#[test]
fn body_of_exactly_the_limit_in_multibyte_characters_is_accepted() {
    let host = directory();
    let text = "é".repeat(3999) + "€";
    assert_eq!(text.len(), 3999 * 2 + 3);
    let effects = run(
        &host,
        mail("paul@acme.example", "#23010203 *message*", &text),
    );
    assert_eq!(
        effects,
        posted(REQ, PartyKind::Collaborator, "co-paul", Side::Staff, &text)
    );
}

#[test]
fn configured_limit_is_used() {
    let host = directory();
    let config = json!({ "max-body-chars": 5 });
    let accepted = run_with(
        &host,
        mail("paul@acme.example", "#23010203 *message*", "12345"),
        config.clone(),
    );
    assert!(matches!(
        &accepted[..],
        [Effect::PostMessage { .. }, Effect::LinkMail { .. }]
    ));
    let refused = run_with(
        &host,
        mail("paul@acme.example", "#23010203 *message*", "123456"),
        config,
    );
    assert_refused(&refused, "body-too-long", "paul@acme.example");
}

// -------------------------------------------------------- one per reason

#[test]
fn subject_missing_number() {
    let host = directory();
    let effects = run(
        &host,
        mail("paul@acme.example", "About 23010203 *message*", "Hi"),
    );
    let message = assert_refused(&effects, "subject-missing-number", "paul@acme.example");
    assert_eq!(
        message,
        format!(
            "Votre message n'a pas été publié. {}",
            Reason::SubjectMissingNumber.sentence(crate::Language::Fr)
        )
    );
    assert!(host.logged(
        Level::Info,
        "refused mail m1@dupont.example: subject-missing-number"
    ));
}

#[test]
fn subject_missing_keyword() {
    let host = directory();
    let effects = run(&host, mail("paul@acme.example", "#23010203 message", "Hi"));
    assert_refused(&effects, "subject-missing-keyword", "paul@acme.example");
}

#[test]
fn subject_several_numbers() {
    let host = directory();
    let effects = run(
        &host,
        mail("paul@acme.example", "#23010203 #23010208 *message*", "Hi"),
    );
    assert_refused(&effects, "subject-several-numbers", "paul@acme.example");
}

#[test]
fn request_not_found() {
    let host = directory();
    let effects = run(&host, on_request("paul@acme.example", 99));
    let message = assert_refused(&effects, "request-not-found", "paul@acme.example");
    assert_eq!(
        message,
        "Votre message n'a pas été publié sur la demande #99. Aucune demande ne porte ce numéro."
    );
}

#[test]
fn messages_disabled() {
    let mut host = directory();
    host.settings.direct_messages_enabled = false;
    let effects = run(&host, on_request("paul@acme.example", REQ));
    assert_refused(&effects, "messages-disabled", "paul@acme.example");
}

#[test]
fn request_type_not_enabled() {
    let host = directory();
    let effects = run(&host, on_request("paul@acme.example", QUESTION_REQ));
    assert_refused(&effects, "request-type-not-enabled", "paul@acme.example");
    let effects = run(&host, on_request("paul@acme.example", ORPHAN_REQ));
    assert_refused(&effects, "request-type-not-enabled", "paul@acme.example");
}

#[test]
fn request_not_publishable() {
    let mut host = directory();
    host.request_mut(REQ).publishable = false;
    let effects = run(&host, on_request("paul@acme.example", REQ));
    assert_refused(&effects, "request-not-publishable", "paul@acme.example");
}

#[test]
fn conversation_locked() {
    let mut host = directory();
    host.request_mut(REQ).conversation_locked = true;
    let effects = run(&host, on_request("paul@acme.example", REQ));
    assert_refused(&effects, "conversation-locked", "paul@acme.example");
}

#[test]
fn body_empty() {
    let host = directory();
    for text in [
        "",
        "  \r\n ",
        "-- \nPaul",
        "On Mon, Jeanne wrote:\n> Broken.",
    ] {
        let effects = run(
            &host,
            mail("paul@acme.example", "#23010203 *message*", text),
        );
        assert_refused(&effects, "body-empty", "paul@acme.example");
    }
}

#[test]
fn body_too_long() {
    let host = directory();
    let text = "é".repeat(4001);
    let effects = run(
        &host,
        mail("paul@acme.example", "#23010203 *message*", &text),
    );
    let message = assert_refused(&effects, "body-too-long", "paul@acme.example");
    assert!(
        message.ends_with("Il compte 4001 caractères pour 4000 au plus."),
        "{message}"
    );
}

#[test]
fn unknown_sender() {
    let host = directory();
    let effects = run(&host, on_request("stranger@elsewhere.example", REQ));
    assert_refused(&effects, "unknown-sender", "stranger@elsewhere.example");
}

#[test]
fn unknown_sender_without_from_is_answered_at_the_return_path() {
    let host = directory();
    let mut no_from = on_request("", REQ);
    no_from.from = None;
    no_from.return_path = Some("bounce@elsewhere.example".to_string());
    assert_refused(
        &run(&host, no_from),
        "unknown-sender",
        "bounce@elsewhere.example",
    );
}

#[test]
fn sender_not_authorized() {
    let mut host = directory();
    // The flag is missing.
    let effects = run(&host, on_request("nora@acme.example", REQ));
    assert_refused(&effects, "sender-not-authorized", "nora@acme.example");
    // The right is missing.
    host.party("ct-jeanne").users[0].rights = vec![147001];
    let effects = run(&host, on_request("jeanne@dupont.example", REQ));
    assert_refused(&effects, "sender-not-authorized", "jeanne@dupont.example");
    // An extranet right on an internal user does not count, nor the reverse.
    host.party("ct-jeanne").users[0] = internal("jmartin", &[141341], true, &["ACME-FR"]);
    let effects = run(&host, on_request("jeanne@dupont.example", REQ));
    assert_refused(&effects, "sender-not-authorized", "jeanne@dupont.example");
    host.party("co-nora").users[0] = extranet("nora", &[147012], true);
    let effects = run(&host, on_request("nora@acme.example", REQ));
    assert_refused(&effects, "sender-not-authorized", "nora@acme.example");
}

#[test]
fn sender_ambiguous_between_two_collaborators() {
    let host = directory();
    let effects = run(&host, on_request("help@acme.example", REQ));
    assert_refused(&effects, "sender-ambiguous", "help@acme.example");
}

#[test]
fn sender_ambiguous_between_two_users_of_one_collaborator() {
    let mut host = directory();
    host.party("co-paul")
        .users
        .push(internal("pdurand2", &[260107], true, &["ACME-FR"]));
    let effects = run(&host, on_request("paul@acme.example", REQ));
    assert_refused(&effects, "sender-ambiguous", "paul@acme.example");
}

#[test]
fn sender_ambiguous_between_a_collaborator_and_a_contact() {
    let mut host = directory();
    host.parties.push(contact(
        "ct-paul",
        "C001",
        vec!["paul@acme.example"],
        vec![extranet("paul-ext", &[147012], true)],
    ));
    let effects = run(&host, on_request("paul@acme.example", REQ));
    assert_refused(&effects, "sender-ambiguous", "paul@acme.example");
}

#[test]
fn company_not_accessible() {
    let mut host = directory();
    let effects = run(&host, on_request("anne@acme.example", REQ));
    assert_refused(&effects, "company-not-accessible", "anne@acme.example");
    // No partitioning data gives access to no company.
    host.party("co-paul").users[0].companies.clear();
    let effects = run(&host, on_request("paul@acme.example", REQ));
    assert_refused(&effects, "company-not-accessible", "paul@acme.example");
}

#[test]
fn not_requester_without_147001() {
    let host = directory();
    // Jeanne lacks 147001 and Luc requested this one.
    let effects = run(&host, on_request("jeanne@dupont.example", LUC_REQ));
    let message = assert_refused(&effects, "not-requester", "jeanne@dupont.example");
    assert!(message.contains("#23010208"), "{message}");
}

#[test]
fn not_requester_on_a_request_without_requester() {
    let mut host = directory();
    host.request_mut(REQ).requester = None;
    let effects = run(&host, on_request("jeanne@dupont.example", REQ));
    assert_refused(&effects, "not-requester", "jeanne@dupont.example");
}

#[test]
fn not_requester_of_another_customer_even_with_147001() {
    let host = directory();
    let effects = run(&host, on_request("marc@other.example", REQ));
    assert_refused(&effects, "not-requester", "marc@other.example");
}

// ------------------------------------------------- order, routing, config

#[test]
fn first_broken_rule_in_documented_order_is_reported() {
    let mut host = directory();
    host.request_mut(REQ).conversation_locked = true;
    host.request_mut(REQ).publishable = false;
    // A stranger learns nothing of the request: the sender comes first.
    let effects = run(
        &host,
        mail("stranger@elsewhere.example", "#23010203 *message*", ""),
    );
    assert_refused(&effects, "unknown-sender", "stranger@elsewhere.example");
    let effects = run(
        &host,
        mail("stranger@elsewhere.example", "#99999999 *message*", ""),
    );
    assert_refused(&effects, "unknown-sender", "stranger@elsewhere.example");
    // A known sender: empty body, locked, not publishable: publishable first.
    let jeanne = "jeanne@dupont.example";
    let effects = run(&host, mail(jeanne, "#23010203 *message*", ""));
    assert_refused(&effects, "request-not-publishable", jeanne);
    host.request_mut(REQ).publishable = true;
    let effects = run(&host, mail(jeanne, "#23010203 *message*", ""));
    assert_refused(&effects, "conversation-locked", jeanne);
    host.request_mut(REQ).conversation_locked = false;
    let effects = run(&host, mail(jeanne, "#23010203 *message*", ""));
    assert_refused(&effects, "body-empty", jeanne);
}

#[test]
fn failure_goes_to_the_return_path_when_set() {
    let host = directory();
    let mut refused = on_request("stranger@elsewhere.example", REQ);
    refused.return_path = Some("bounces+stranger@elsewhere.example".to_string());
    assert_refused(
        &run(&host, refused),
        "unknown-sender",
        "bounces+stranger@elsewhere.example",
    );
}

#[test]
fn no_address_to_answer_gives_no_effect() {
    let host = directory();
    let mut anonymous = mail("", "no number", "Hi");
    anonymous.from = None;
    assert_eq!(run(&host, anonymous), vec![]);
    assert!(host.logged(Level::Warn, "no failure notice for mail m1@dupont.example"));
    assert!(host.logged(Level::Info, "subject-missing-number"));
}

#[test]
fn failure_to_one_of_our_own_addresses_is_not_sent() {
    let host = directory();
    let config = json!({ "own-addresses": ["catchmail@acme.example"] });
    let effects = run_with(&host, on_request("CatchMail@acme.example", REQ), config);
    assert_eq!(effects, vec![]);
    assert!(host.logged(Level::Warn, "one of our own addresses"));
}

#[test]
fn failure_message_follows_the_configured_language() {
    let host = directory();
    let config = json!({ "language": "en" });
    let effects = run_with(&host, on_request("paul@acme.example", 99), config);
    let message = assert_refused(&effects, "request-not-found", "paul@acme.example");
    assert_eq!(
        message,
        "Your message was not posted on request #99. There is no request with this number."
    );
}

#[test]
fn automatic_mail_is_never_answered() {
    let host = directory();
    let config = json!({ "own-addresses": ["catchmail@acme.example"] });
    let base = mail("stranger@elsewhere.example", "no number", "Hi");
    let cases: Vec<(&str, Mail)> = vec![
        (
            "Auto-Submitted",
            Mail {
                auto_submitted: Some("auto-replied".into()),
                ..base.clone()
            },
        ),
        (
            "Precedence",
            Mail {
                precedence: Some("bulk".into()),
                ..base.clone()
            },
        ),
        (
            "List-Id",
            Mail {
                list_headers: vec!["List-Id".into()],
                ..base.clone()
            },
        ),
        (
            "empty Return-Path",
            Mail {
                return_path: Some(String::new()),
                ..base.clone()
            },
        ),
        (
            "mail system",
            mail("MAILER-DAEMON@elsewhere.example", "no number", "Hi"),
        ),
        (
            "X-Loop",
            Mail {
                x_loop: vec!["catchmail@acme.example".into()],
                ..base.clone()
            },
        ),
    ];
    for (why, automatic) in cases {
        host.logs.borrow_mut().clear();
        let effects = run_with(&host, automatic, config.clone());
        assert_eq!(effects, vec![], "{why}");
        assert!(
            host.logged(Level::Info, "dropped automatic mail m1@dupont.example"),
            "{why}"
        );
        assert!(host.logged(Level::Info, why), "{why}");
    }
    // A valid request from an authorised sender is still dropped when automatic.
    let automatic = Mail {
        auto_submitted: Some("auto-generated".into()),
        ..on_request("paul@acme.example", REQ)
    };
    assert_eq!(run(&host, automatic), vec![]);
    // `Auto-Submitted: no` is a person.
    let person = Mail {
        auto_submitted: Some("no".into()),
        ..on_request("paul@acme.example", REQ)
    };
    assert!(matches!(
        &run(&host, person)[..],
        [Effect::PostMessage { .. }, Effect::LinkMail { .. }]
    ));
}

#[test]
fn other_events_give_no_effect() {
    let host = directory();
    let event = Event::ContractEvent(ContractEvent {
        kind: "expiring".to_string(),
        contract: Contract {
            code: "K-2026-001".to_string(),
            customer: "C001".to_string(),
        },
    });
    assert_eq!(decide(&event, &Value::Null, &host).unwrap(), vec![]);
    assert!(host.logged(Level::Debug, "contract-event"));
}

#[test]
fn host_errors_fail_the_event() {
    let mut host = directory();
    host.fail = true;
    let result = decide(
        &Event::MailReceived(on_request("paul@acme.example", REQ)),
        &Value::Null,
        &host,
    );
    assert_eq!(
        result,
        Err(PluginError::Host(HostError(
            "store unreachable".to_string()
        )))
    );
}

#[test]
fn bad_config_is_a_plugin_error_naming_the_key() {
    let host = directory();
    let event = Event::MailReceived(on_request("paul@acme.example", REQ));
    match decide(&event, &json!({ "max-body": 10 }), &host) {
        Err(PluginError::Plugin(message)) => assert!(message.contains("`max-body`"), "{message}"),
        other => panic!("expected a config error, got {other:?}"),
    }
}

// ------------------------------------------------------------ ticket tag

/// The request a failure notice is about, asserting there is one notice.
fn notice_request(effects: &[Effect]) -> Option<u64> {
    match effects {
        [Effect::ReplyFailure { request, .. }] => *request,
        other => panic!("expected one reply-failure, got {other:?}"),
    }
}

#[test]
fn a_notice_about_a_request_the_sender_may_post_on_carries_it() {
    let mut host = directory();
    host.request_mut(REQ).conversation_locked = true;
    let effects = run(&host, on_request("paul@acme.example", REQ));
    assert_eq!(notice_request(&effects), Some(REQ));
    let effects = run(
        &directory(),
        mail("paul@acme.example", "#23010203 *message*", ""),
    );
    assert_eq!(notice_request(&effects), Some(REQ));
}

#[test]
fn a_notice_never_ties_a_stranger_or_an_outsider_to_the_request() {
    let host = directory();
    let effects = run(&host, on_request("stranger@elsewhere.example", REQ));
    assert_eq!(notice_request(&effects), None);
    let effects = run(&host, on_request("paul@acme.example", 99));
    assert_eq!(notice_request(&effects), None);
}

#[test]
fn a_forged_sender_is_refused_and_the_owner_is_told_not_the_envelope() {
    let host = directory();
    let jeanne = "jeanne@dupont.example";
    for result in [AuthResult::Fail, AuthResult::None] {
        let mut forged = on_request(jeanne, REQ);
        forged.authentication = SenderAuthentication {
            result,
            reason: "mx.acme.example: dmarc=fail".to_string(),
            ..SenderAuthentication::default()
        };
        forged.return_path = Some("attacker@evil.example".to_string());
        let effects = run(&host, forged);
        // Jeanne hears that someone wrote in her name; the attacker's
        // envelope hears nothing, and the notice says nothing of the
        // request.
        let message = assert_refused(&effects, "sender-not-authenticated", jeanne);
        assert!(
            !message.contains("bloquée") && !message.contains("locked"),
            "{message}"
        );
        assert!(
            matches!(&effects[0], Effect::ReplyFailure { request: None, .. }),
            "no ticket tag: {effects:?}"
        );
    }
    assert!(host.logged(Level::Info, "not authenticated"));
}

#[test]
fn an_unknown_unauthenticated_sender_is_told_only_that() {
    let host = directory();
    let mut forged = on_request("stranger@elsewhere.example", REQ);
    forged.authentication = SenderAuthentication::default();
    forged.return_path = Some("bounce@elsewhere.example".to_string());
    assert_refused(
        &run(&host, forged),
        "sender-not-authenticated",
        "bounce@elsewhere.example",
    );
}

#[test]
fn sender_authentication_off_takes_the_from_header() {
    let host = directory();
    let mut unchecked = on_request("jeanne@dupont.example", REQ);
    unchecked.authentication = SenderAuthentication::default();
    let effects = run_with(&host, unchecked, json!({ "sender-authentication": "off" }));
    assert!(
        matches!(
            &effects[..],
            [Effect::PostMessage { .. }, Effect::LinkMail { .. }]
        ),
        "{effects:?}"
    );
}

#[test]
fn a_request_refusal_goes_to_the_owner_not_to_another_envelope() {
    let mut host = directory();
    let jeanne = "jeanne@dupont.example";
    host.request_mut(REQ).conversation_locked = true;
    let mut mail = on_request(jeanne, REQ);
    mail.return_path = Some("attacker@evil.example".to_string());
    assert_refused(&run(&host, mail), "conversation-locked", jeanne);
}

#[test]
fn a_text_cut_by_the_host_is_too_long() {
    let host = directory();
    let mut huge = on_request("jeanne@dupont.example", REQ);
    huge.text = "x".repeat(100);
    huge.text_truncated = true;
    assert_refused(&run(&host, huge), "body-too-long", "jeanne@dupont.example");
}
