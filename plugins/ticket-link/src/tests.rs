//! Decisions on whole mails, against an in-memory directory and mail store.

use std::cell::{Cell, RefCell};

use relais_sdk::{
    Address, AddressOwner, Contract, ContractDetails, ContractEvent, Customer, Effect, Event, Host,
    HostError, Level, Mail, PartyKind, PluginError, Request, RequestType, Settings, ThreadMail,
};
use serde_json::{Value, json};

use crate::decide;

/// A collaborator or contact with the addresses it owns.
struct Party {
    emails: Vec<&'static str>,
    owner: AddressOwner,
}

/// The host's store, in memory: the directory, and which stored mail is on
/// which ticket. `fail` makes every query fail; `lookups` counts the
/// `linked_ticket` queries.
struct FakeHost {
    settings: Settings,
    requests: Vec<Request>,
    types: Vec<RequestType>,
    customers: Vec<Customer>,
    parties: Vec<Party>,
    links: Vec<(String, u64)>,
    fail: bool,
    lookups: Cell<usize>,
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

    fn request_mut(&mut self, number: u64) -> &mut Request {
        self.requests
            .iter_mut()
            .find(|request| request.number == number)
            .unwrap()
    }

    fn link(&mut self, message_id: &str, number: u64) {
        self.links.push((message_id.to_string(), number));
    }
}

impl Host for FakeHost {
    fn find_requests(
        &self,
        query: &relais_sdk::RequestQuery,
    ) -> Result<Vec<relais_sdk::RequestActivity>, HostError> {
        panic!(
            "ticket-link asked for requests in states {:?}",
            query.states
        )
    }

    fn contact(&self, id: &str) -> Result<Option<relais_sdk::Recipient>, HostError> {
        panic!("ticket-link asked for contact {id}")
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

    /// Compares lowercase, as the real host does.
    fn address_owners(&self, email: &str) -> Result<Vec<AddressOwner>, HostError> {
        self.check()?;
        let email = email.to_lowercase();
        Ok(self
            .parties
            .iter()
            .filter(|party| party.emails.iter().any(|own| own.to_lowercase() == email))
            .map(|party| party.owner.clone())
            .collect())
    }

    fn settings(&self) -> Result<Settings, HostError> {
        self.check()?;
        Ok(self.settings.clone())
    }

    fn customer(&self, code: &str) -> Result<Option<Customer>, HostError> {
        self.check()?;
        Ok(self.customers.iter().find(|c| c.code == code).cloned())
    }

    fn linked_ticket(&self, message_id: &str) -> Result<Option<u64>, HostError> {
        self.check()?;
        self.lookups.set(self.lookups.get() + 1);
        Ok(self
            .links
            .iter()
            .find(|(id, _)| id == message_id)
            .map(|(_, number)| *number))
    }

    // Ticket linking reads no contract details, renders nothing and does
    // not read whole threads: a call is a bug.
    fn contract(&self, code: &str) -> Result<Option<ContractDetails>, HostError> {
        panic!("ticket-link asked for contract {code}")
    }

    fn render(
        &self,
        name: &str,
        _: Option<&str>,
        _: &serde_json::Value,
    ) -> Result<relais_sdk::Rendered, HostError> {
        panic!("ticket-link asked to render {name} without the `templates` capability")
    }

    fn thread(&self, message_id: &str) -> Result<Vec<ThreadMail>, HostError> {
        panic!("ticket-link asked for the whole thread of {message_id}")
    }

    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_string()));
    }
}

fn collaborator(id: &str, emails: Vec<&'static str>) -> Party {
    let owner = AddressOwner {
        kind: PartyKind::Collaborator,
        id: id.to_string(),
        name: id.to_string(),
        customer: None,
        users: vec![],
    };
    Party { emails, owner }
}

fn contact(id: &str, customer: &str, emails: Vec<&'static str>) -> Party {
    let owner = AddressOwner {
        kind: PartyKind::Contact,
        id: id.to_string(),
        name: id.to_string(),
        customer: Some(customer.to_string()),
        users: vec![],
    };
    Party { emails, owner }
}

fn request(number: u64, customer: &str, state: &str, requester: &str, subject: &str) -> Request {
    Request {
        number,
        company: "ACME-FR".to_string(),
        customer: customer.to_string(),
        request_type: "INCIDENT".to_string(),
        requester: Some(requester.to_string()),
        state: state.to_string(),
        publishable: true,
        conversation_locked: false,
        contract: None,
        subject: Some(subject.to_string()),
    }
}

fn customer(code: &str, company: &str) -> Customer {
    Customer {
        code: code.to_string(),
        name: code.to_string(),
        company: company.to_string(),
        main_site: None,
        language: None,
        alert_formats: vec![],
    }
}

fn request_type(code: &str) -> RequestType {
    RequestType {
        code: code.to_string(),
        catchmail: false,
    }
}

/// Jeanne's open ticket, customer C001.
const REQ: u64 = 23010203;
/// Luc's open ticket, customer C001.
const LUC_REQ: u64 = 23010208;
/// Marc's open ticket, customer C002.
const MARC_REQ: u64 = 23020001;
/// Luc's closed ticket of type QUESTION, customer C001.
const CLOSED_REQ: u64 = 23010299;

/// Mails already on tickets: sent by Relais about a ticket, or received
/// and linked before.
const SENT_REQ: &str = "sent-1@acme.example";
const SENT_LUC: &str = "sent-2@acme.example";
const SENT_MARC: &str = "sent-3@acme.example";
const SENT_CLOSED: &str = "sent-4@acme.example";
/// On a ticket that was deleted since.
const SENT_GONE: &str = "sent-5@acme.example";

/// The mail under test's own Message-ID.
const OWN_ID: &str = "m1@dupont.example";

/// Customers C001 (contacts Jeanne, Luc, and the two front-desk contacts
/// sharing an address) and C002 (contact Marc, company ACME-BE); Paul is
/// staff.
fn directory() -> FakeHost {
    let mut closed = request(CLOSED_REQ, "C001", "closed", "ct-luc", "Old printer");
    closed.request_type = "QUESTION".to_string();
    let mut marc = request(MARC_REQ, "C002", "open", "ct-marc", "Scanner jam");
    marc.company = "ACME-BE".to_string();
    FakeHost {
        settings: Settings::default(),
        requests: vec![
            request(REQ, "C001", "open", "ct-jeanne", "Printer on fire"),
            request(LUC_REQ, "C001", "in-progress", "ct-luc", "Screen flickers"),
            marc,
            closed,
        ],
        types: vec![request_type("INCIDENT"), request_type("QUESTION")],
        customers: vec![customer("C001", "ACME-FR"), customer("C002", "ACME-BE")],
        parties: vec![
            collaborator("co-paul", vec!["paul@acme.example"]),
            contact(
                "ct-jeanne",
                "C001",
                vec!["jeanne@dupont.example", "j.martin@dupont.example"],
            ),
            contact("ct-luc", "C001", vec!["luc@dupont.example"]),
            contact("ct-accueil-a", "C001", vec!["accueil@dupont.example"]),
            contact("ct-accueil-b", "C001", vec!["accueil@dupont.example"]),
            contact("ct-marc", "C002", vec!["marc@other.example"]),
        ],
        links: vec![
            (SENT_REQ.to_string(), REQ),
            (SENT_LUC.to_string(), LUC_REQ),
            (SENT_MARC.to_string(), MARC_REQ),
            (SENT_CLOSED.to_string(), CLOSED_REQ),
            (SENT_GONE.to_string(), 23019999),
        ],
        fail: false,
        lookups: Cell::new(0),
        logs: RefCell::new(Vec::new()),
    }
}

fn mail(from: &str, subject: &str) -> Mail {
    Mail {
        account: "support".to_string(),
        message_id: OWN_ID.to_string(),
        subject: subject.to_string(),
        from: Some(Address {
            name: None,
            email: from.to_string(),
        }),
        to: vec![Address {
            name: None,
            email: "support@acme.example".to_string(),
        }],
        text: "Still broken.".to_string(),
        size: 512,
        ..Mail::default()
    }
}

fn reply(from: &str, subject: &str, in_reply_to: &[&str], references: &[&str]) -> Mail {
    Mail {
        in_reply_to: in_reply_to.iter().map(|id| id.to_string()).collect(),
        references: references.iter().map(|id| id.to_string()).collect(),
        ..mail(from, subject)
    }
}

fn run_with(host: &FakeHost, mail: Mail, config: Value) -> Vec<Effect> {
    decide(&Event::MailReceived(mail), &config, host).unwrap()
}

fn run(host: &FakeHost, mail: Mail) -> Vec<Effect> {
    run_with(host, mail, Value::Null)
}

fn error_of(host: &FakeHost, mail: Mail, config: Value) -> String {
    match decide(&Event::MailReceived(mail), &config, host) {
        Err(PluginError::Plugin(message)) => message,
        other => panic!("expected a plugin error, got {other:?}"),
    }
}

fn linked(number: u64) -> Vec<Effect> {
    vec![Effect::LinkMail {
        message_id: OWN_ID.to_string(),
        request: number,
    }]
}

fn created(
    customer: &str,
    company: &str,
    request_type: &str,
    requester: &str,
    subject: &str,
) -> Vec<Effect> {
    vec![Effect::CreateTicket {
        customer: customer.to_string(),
        company: company.to_string(),
        request_type: request_type.to_string(),
        requester: Some(requester.to_string()),
        subject: subject.to_string(),
        link_mail: Some(OWN_ID.to_string()),
    }]
}

// ------------------------------------------------------------------- tags

#[test]
fn tag_links_the_mail_to_its_ticket() {
    let host = directory();
    let effects = run(
        &host,
        mail("jeanne@dupont.example", "Re: [#23010203] Printer"),
    );
    assert_eq!(effects, linked(REQ));
    assert!(host.logged(
        Level::Info,
        "sender jeanne@dupont.example is contact ct-jeanne of customer C001"
    ));
    assert!(host.logged(
        Level::Info,
        "linked mail <m1@dupont.example> to ticket 23010203 (state `open`), found by tag [#23010203]"
    ));
}

#[test]
fn tag_of_no_ticket_is_passed_over_for_the_next() {
    let host = directory();
    let subject = "[#99999999] Fwd: [#23010208] Screen";
    let effects = run(&host, mail("jeanne@dupont.example", subject));
    assert_eq!(effects, linked(LUC_REQ));
    assert!(host.logged(Level::Info, "tag [#99999999] names no ticket: not followed"));
}

#[test]
fn tag_of_another_customer_is_refused_and_the_thread_used() {
    let host = directory();
    let mail = reply(
        "jeanne@dupont.example",
        "Re: [#23020001] Scanner",
        &[SENT_REQ],
        &[],
    );
    let effects = run(&host, mail);
    assert_eq!(effects, linked(REQ));
    assert!(host.logged(
        Level::Warn,
        "tag [#23020001] names a ticket of customer C002; the sender is a contact of C001: not followed"
    ));
    assert!(host.logged(
        Level::Info,
        "found by thread (In-Reply-To <sent-1@acme.example>)"
    ));
}

#[test]
fn staff_may_follow_any_tag() {
    let host = directory();
    let effects = run(&host, mail("paul@acme.example", "[#23020001] Scanner"));
    assert_eq!(effects, linked(MARC_REQ));
    assert!(host.logged(
        Level::Info,
        "sender paul@acme.example is collaborator co-paul"
    ));
}

#[test]
fn unknown_sender_may_follow_a_tag() {
    let host = directory();
    let effects = run(&host, mail("someone@elsewhere.example", "RE: [#23020001]"));
    assert_eq!(effects, linked(MARC_REQ));
    assert!(host.logged(Level::Info, "sender someone@elsewhere.example is unknown"));
    assert!(host.logged(
        Level::Info,
        "tag [#23020001] followed although the sender (someone@elsewhere.example) is unknown"
    ));
}

#[test]
fn bare_tag_is_read_only_when_enabled() {
    let host = directory();
    let subject = "#23010203 printer";
    let effects = run(&host, mail("jeanne@dupont.example", subject));
    assert_eq!(
        effects,
        created(
            "C001",
            "ACME-FR",
            "INCIDENT",
            "ct-jeanne",
            "#23010203 printer"
        )
    );
    assert!(host.logged(Level::Info, "tag: none in the subject"));

    let host = directory();
    let config = json!({ "bare-tag": true });
    let effects = run_with(&host, mail("jeanne@dupont.example", subject), config);
    assert_eq!(effects, linked(REQ));
    assert!(host.logged(Level::Info, "found by tag #23010203"));
}

#[test]
fn ticket_tag_follows_the_desk_setting() {
    let mut host = directory();
    host.settings.ticket_tag = "Ticket#{number}".to_string();
    let effects = run(
        &host,
        mail("jeanne@dupont.example", "RE: ticket#23010203: printer"),
    );
    assert_eq!(effects, linked(REQ));

    // The default format is no tag any more; a new ticket's subject loses
    // the desk's tags only.
    let effects = run(
        &host,
        mail("jeanne@dupont.example", "[#23010203] Ticket#5 printer"),
    );
    assert_eq!(
        effects,
        created(
            "C001",
            "ACME-FR",
            "INCIDENT",
            "ct-jeanne",
            "[#23010203] printer"
        )
    );

    // A format without brackets has no bare form: said, not an error.
    host.logs.borrow_mut().clear();
    let config = json!({ "bare-tag": true });
    let effects = run_with(
        &host,
        mail("jeanne@dupont.example", "Ticket#23010203"),
        config,
    );
    assert_eq!(effects, linked(REQ));
    assert!(host.logged(Level::Info, "has no enclosing brackets to leave out"));
}

#[test]
fn invalid_ticket_tag_setting_fails_the_event() {
    let mut host = directory();
    host.settings.ticket_tag = "{number}".to_string();
    let message = error_of(
        &host,
        mail("jeanne@dupont.example", "[#23010203]"),
        Value::Null,
    );
    assert!(
        message.starts_with("invalid desk setting: ticket tag `{number}`"),
        "{message}"
    );
}

// ----------------------------------------------------------------- thread

#[test]
fn thread_is_followed_through_in_reply_to() {
    let host = directory();
    let mail = reply("luc@dupont.example", "Re: Screen", &[SENT_LUC], &[SENT_REQ]);
    assert_eq!(run(&host, mail), linked(LUC_REQ));
    assert!(host.logged(
        Level::Info,
        "to ticket 23010208 (state `in-progress`), found by thread (In-Reply-To <sent-2@acme.example>)"
    ));
    assert_eq!(host.lookups.get(), 1);
}

#[test]
fn references_are_followed_newest_first() {
    let host = directory();
    // Oldest first, as the header lists them: the later one wins.
    let references = [
        SENT_LUC,
        "unknown@elsewhere.example",
        SENT_REQ,
        "draft@dupont.example",
    ];
    let mail = reply("jeanne@dupont.example", "Re: Printer", &[], &references);
    assert_eq!(run(&host, mail), linked(REQ));
    assert!(host.logged(
        Level::Info,
        "found by thread (References <sent-1@acme.example>)"
    ));
    assert_eq!(host.lookups.get(), 2);
}

#[test]
fn thread_of_another_customer_or_of_a_deleted_ticket_is_passed_over() {
    let host = directory();
    let mail = reply(
        "jeanne@dupont.example",
        "Re: Printer",
        &[SENT_MARC],
        &[SENT_REQ, SENT_GONE],
    );
    assert_eq!(run(&host, mail), linked(REQ));
    assert!(host.logged(
        Level::Warn,
        "mail <sent-3@acme.example> (In-Reply-To) is on ticket 23020001, a ticket of customer C002; \
         the sender is a contact of C001: not followed"
    ));
    assert!(host.logged(
        Level::Info,
        "mail <sent-5@acme.example> (References) is on ticket 23019999, which no longer exists"
    ));
}

#[test]
fn thread_lookups_are_bounded_by_max_references() {
    let host = directory();
    // The linked mail is the second oldest of 500: beyond the 50 nearest,
    // and not the root.
    let mut references: Vec<String> = (2..500)
        .map(|i| format!("r{i}@elsewhere.example"))
        .collect();
    references.insert(0, SENT_REQ.to_string());
    references.insert(0, "root@elsewhere.example".to_string());
    let references: Vec<&str> = references.iter().map(String::as_str).collect();
    let mail = reply("jeanne@dupont.example", "Re: Printer", &[], &references);

    let effects = run(&host, mail.clone());
    assert!(
        matches!(&effects[..], [Effect::CreateTicket { .. }]),
        "{effects:?}"
    );
    assert_eq!(host.lookups.get(), 51, "the 50 nearest and the root");
    assert!(host.logged(
        Level::Info,
        "449 older ids left out, only the 50 nearest and the root are looked up (max-references)"
    ));

    let host = directory();
    let effects = run_with(&host, mail.clone(), json!({ "max-references": 500 }));
    assert_eq!(effects, linked(REQ));
    assert_eq!(host.lookups.get(), 499);

    let host = directory();
    let effects = run_with(&host, mail, json!({ "max-references": 3 }));
    assert!(matches!(&effects[..], [Effect::CreateTicket { .. }]));
    assert_eq!(host.lookups.get(), 4);
}

#[test]
fn the_root_of_a_long_thread_is_always_looked_up() {
    let host = directory();
    // Only the root is known: a client kept hundreds of unknown ids after it.
    let mut references: Vec<String> = (1..300)
        .map(|i| format!("r{i}@elsewhere.example"))
        .collect();
    references.insert(0, SENT_REQ.to_string());
    let references: Vec<&str> = references.iter().map(String::as_str).collect();
    let mail = reply("jeanne@dupont.example", "Re: Printer", &[], &references);
    assert_eq!(run(&host, mail), linked(REQ));
    assert_eq!(host.lookups.get(), 51);
}

#[test]
fn thread_skips_the_mails_own_id_and_duplicates() {
    let mut host = directory();
    // Linked before (a retried event, or a forged header): never followed.
    host.link(OWN_ID, MARC_REQ);
    let mail = reply(
        "paul@acme.example",
        "Re: Printer",
        &[OWN_ID, SENT_REQ],
        &[SENT_REQ, OWN_ID, SENT_REQ, " ", OWN_ID],
    );
    assert_eq!(run(&host, mail), linked(REQ));
    assert_eq!(host.lookups.get(), 1);
    assert!(host.logged(
        Level::Info,
        "the mail names its own Message-ID <m1@dupont.example>: skipped"
    ));
}

#[test]
fn tag_wins_over_a_disagreeing_thread() {
    let host = directory();
    let mail = reply(
        "jeanne@dupont.example",
        "Re: [#23010203] Printer",
        &[SENT_LUC],
        &[],
    );
    assert_eq!(run(&host, mail), linked(REQ));
    assert!(host.logged(
        Level::Warn,
        "tag [#23010203] names ticket 23010203 but the thread (In-Reply-To <sent-2@acme.example>) \
         is on ticket 23010208: the tag wins"
    ));

    let host = directory();
    let mail = reply(
        "jeanne@dupont.example",
        "Re: [#23010203] Printer",
        &[SENT_REQ],
        &[],
    );
    assert_eq!(run(&host, mail), linked(REQ));
    assert!(host.logged(Level::Info, "agree on ticket 23010203"));
    assert!(
        !host
            .logs
            .borrow()
            .iter()
            .any(|(level, _)| *level == Level::Warn)
    );
}

// ---------------------------------------------------------- closed tickets

#[test]
fn closed_ticket_is_reopened_by_default() {
    let host = directory();
    let mail = reply("luc@dupont.example", "Re: Old printer", &[SENT_CLOSED], &[]);
    assert_eq!(
        run(&host, mail.clone()),
        vec![
            Effect::ReopenTicket {
                request: CLOSED_REQ,
                state: "open".to_string(),
            },
            Effect::LinkMail {
                message_id: OWN_ID.to_string(),
                request: CLOSED_REQ,
            },
        ]
    );
    assert!(host.logged(
        Level::Info,
        "ticket 23010299, found by thread (In-Reply-To <sent-4@acme.example>), is closed \
         (state `closed`): reopened as `open`"
    ));

    let effects = run_with(&host, mail, json!({ "reopen-state": "in-progress" }));
    assert!(matches!(
        &effects[..],
        [Effect::ReopenTicket { state, .. }, Effect::LinkMail { .. }] if state == "in-progress"
    ));
}

#[test]
fn closed_states_are_configured_and_ignore_letter_case() {
    let mut host = directory();
    host.request_mut(CLOSED_REQ).state = "Cancelled".to_string();
    let mail = mail("luc@dupont.example", "[#23010299]");
    assert_eq!(run(&host, mail.clone()).len(), 2);

    host.request_mut(CLOSED_REQ).state = "resolved".to_string();
    assert_eq!(run(&host, mail.clone()), linked(CLOSED_REQ));
    let config = json!({ "closed-states": ["resolved", "closed"] });
    assert_eq!(run_with(&host, mail, config).len(), 2);
}

#[test]
fn closed_ticket_is_only_linked_with_policy_link() {
    let host = directory();
    let mail = mail("luc@dupont.example", "Re: [#23010299] Old printer");
    let effects = run_with(&host, mail, json!({ "closed-ticket": "link" }));
    assert_eq!(effects, linked(CLOSED_REQ));
    assert!(host.logged(
        Level::Info,
        "left closed (state `closed`; closed-ticket: link)"
    ));
}

#[test]
fn closed_ticket_gets_a_follow_up_with_policy_new_ticket() {
    let config = json!({ "closed-ticket": "new-ticket" });
    let host = directory();
    // Jeanne is a contact of the closed ticket's customer: she requests it.
    // The old tag leaves the subject: replies must come to the new ticket.
    let mail_from = |from: &str, subject: &str| reply(from, subject, &[SENT_CLOSED], &[]);
    let effects = run_with(
        &host,
        mail_from(
            "jeanne@dupont.example",
            "RE: [#23010299] Imprimante toujours en panne",
        ),
        config.clone(),
    );
    assert_eq!(
        effects,
        created(
            "C001",
            "ACME-FR",
            "QUESTION",
            "ct-jeanne",
            "Imprimante toujours en panne"
        )
    );
    assert!(host.logged(
        Level::Info,
        "a follow-up ticket is created for customer C001, requester ct-jeanne"
    ));

    // Staff: the closed ticket's requester; nothing left of the subject:
    // the closed ticket's.
    let effects = run_with(&host, mail_from("paul@acme.example", "Re:"), config.clone());
    assert_eq!(
        effects,
        created("C001", "ACME-FR", "QUESTION", "ct-luc", "Old printer")
    );

    // Neither subject: `(no subject)`.
    let mut host = directory();
    host.request_mut(CLOSED_REQ).subject = None;
    let effects = run_with(&host, mail_from("paul@acme.example", "[#23010299]"), config);
    assert_eq!(
        effects,
        created("C001", "ACME-FR", "QUESTION", "ct-luc", "(no subject)")
    );
}

#[test]
fn automatic_mail_on_a_closed_ticket_is_only_linked() {
    let host = directory();
    for policy in ["reopen", "new-ticket"] {
        let mail = Mail {
            auto_submitted: Some("auto-replied".to_string()),
            ..reply(
                "luc@dupont.example",
                "Absent: Old printer",
                &[SENT_CLOSED],
                &[],
            )
        };
        let effects = run_with(&host, mail, json!({ "closed-ticket": policy }));
        assert_eq!(effects, linked(CLOSED_REQ), "{policy}");
    }
    assert!(host.logged(
        Level::Info,
        "automatic mail (Auto-Submitted: auto-replied) neither reopens a ticket nor opens a new one"
    ));
}

// ------------------------------------------------------------ new tickets

#[test]
fn known_contact_gets_a_new_ticket() {
    let host = directory();
    let subject = "RE : AW: [EXTERNAL] Fwd: Re[3]: Imprimante en panne";
    // The second address, in another letter case: the host matches it.
    let effects = run(&host, mail("J.Martin@Dupont.EXAMPLE", subject));
    assert_eq!(
        effects,
        created(
            "C001",
            "ACME-FR",
            "INCIDENT",
            "ct-jeanne",
            "Imprimante en panne"
        )
    );
    assert!(host.logged(
        Level::Info,
        "a ticket of type INCIDENT is created for customer C001 with contact ct-jeanne as requester (policy create-ticket)"
    ));

    // The company is the customer's; the type the rule's.
    let config = json!({ "request-type": "QUESTION" });
    let effects = run_with(&host, mail("marc@other.example", "Scanner"), config);
    assert_eq!(
        effects,
        created("C002", "ACME-BE", "QUESTION", "ct-marc", "Scanner")
    );
}

#[test]
fn new_ticket_subject_strips_configured_prefixes_and_markers() {
    let host = directory();
    let config = json!({ "prefixes": ["Odg"], "markers": ["[SECURE]"] });
    let effects = run_with(
        &host,
        mail("luc@dupont.example", "[secure] ODG: Re: Écran"),
        config,
    );
    assert_eq!(
        effects,
        created("C001", "ACME-FR", "INCIDENT", "ct-luc", "Écran")
    );
    let effects = run(&host, mail("luc@dupont.example", "  Re:  "));
    assert_eq!(
        effects,
        created("C001", "ACME-FR", "INCIDENT", "ct-luc", "(no subject)")
    );
}

#[test]
fn owner_listed_twice_is_one_contact() {
    let mut host = directory();
    host.parties
        .push(contact("ct-luc", "C001", vec!["luc@dupont.example"]));
    let effects = run(&host, mail("luc@dupont.example", "Écran"));
    assert_eq!(
        effects,
        created("C001", "ACME-FR", "INCIDENT", "ct-luc", "Écran")
    );
}

#[test]
fn unknown_sender_is_left_unlinked() {
    let host = directory();
    assert_eq!(
        run(&host, mail("someone@elsewhere.example", "Help")),
        vec![]
    );
    assert!(host.logged(
        Level::Info,
        "mail <m1@dupont.example>: no tag and no thread places it; left unlinked: unknown sender someone@elsewhere.example"
    ));

    let host = directory();
    let no_from = Mail {
        from: None,
        ..mail("", "Help")
    };
    assert_eq!(run(&host, no_from), vec![]);
    assert!(host.logged(Level::Info, "the mail has no From address"));
    assert!(host.logged(Level::Info, "left unlinked: unknown sender (no From)"));
}

#[test]
fn staff_mail_is_left_unlinked() {
    let host = directory();
    assert_eq!(run(&host, mail("paul@acme.example", "Lunch")), vec![]);
    assert!(host.logged(
        Level::Info,
        "left unlinked: paul@acme.example is a staff address (collaborators only)"
    ));
}

#[test]
fn staff_and_one_contact_on_one_address_create_for_the_contact() {
    let mut host = directory();
    host.parties
        .push(collaborator("co-luc", vec!["luc@dupont.example"]));
    let effects = run(&host, mail("luc@dupont.example", "Écran"));
    assert_eq!(
        effects,
        created("C001", "ACME-FR", "INCIDENT", "ct-luc", "Écran")
    );
}

#[test]
fn address_shared_by_contacts_is_left_unlinked() {
    let host = directory();
    assert_eq!(
        run(&host, mail("accueil@dupont.example", "Imprimante")),
        vec![]
    );
    assert!(host.logged(
        Level::Warn,
        "left unlinked: address accueil@dupont.example shared by contacts ct-accueil-a, ct-accueil-b"
    ));
}

#[test]
fn automatic_mail_never_creates_a_ticket() {
    let host = directory();
    let automatic = Mail {
        precedence: Some("bulk".to_string()),
        ..mail("jeanne@dupont.example", "Newsletter")
    };
    assert_eq!(run(&host, automatic), vec![]);
    assert!(host.logged(
        Level::Info,
        "left unlinked: automatic mail (Precedence: bulk) never creates a ticket"
    ));

    // It is still linked where a tag puts it.
    let automatic = Mail {
        auto_submitted: Some("auto-replied".to_string()),
        ..mail("jeanne@dupont.example", "Absent: [#23010203]")
    };
    assert_eq!(run(&host, automatic), linked(REQ));
}

#[test]
fn policy_leave_unlinked_creates_nothing() {
    let host = directory();
    let config = json!({ "policy": "leave-unlinked", "request-type": "GONE" });
    let effects = run_with(
        &host,
        mail("jeanne@dupont.example", "Imprimante"),
        config.clone(),
    );
    assert_eq!(effects, vec![]);
    assert!(host.logged(Level::Info, "left unlinked: policy leave-unlinked"));
    // Found tickets are still linked.
    let effects = run_with(&host, mail("jeanne@dupont.example", "[#23010203]"), config);
    assert_eq!(effects, linked(REQ));
}

// ----------------------------------------------------------------- errors

#[test]
fn bad_config_is_a_plugin_error_naming_the_key() {
    let host = directory();
    let mail = || mail("jeanne@dupont.example", "Imprimante");
    let message = error_of(&host, mail(), json!({ "polcy": "leave-unlinked" }));
    assert!(message.contains("key `polcy`"), "{message}");
    let message = error_of(&host, mail(), json!({ "closed-ticket": "delete" }));
    assert!(message.contains("key `closed-ticket`"), "{message}");
    let message = error_of(&host, mail(), json!({ "max-references": 0 }));
    assert!(message.contains("key `max-references`"), "{message}");
}

#[test]
fn missing_request_type_is_a_config_error_when_creating() {
    let host = directory();
    let config = json!({ "request-type": "GONE" });
    let message = error_of(
        &host,
        mail("jeanne@dupont.example", "Imprimante"),
        config.clone(),
    );
    assert_eq!(
        message,
        "invalid ticket-link config: key `request-type`: request type `GONE` does not exist"
    );
    // Linking to a found ticket needs no type.
    let effects = run_with(&host, mail("jeanne@dupont.example", "[#23010203]"), config);
    assert_eq!(effects, linked(REQ));
}

#[test]
fn contact_of_an_unknown_customer_fails_the_event() {
    let mut host = directory();
    host.parties
        .push(contact("ct-zoe", "C404", vec!["zoe@gone.example"]));
    let message = error_of(&host, mail("zoe@gone.example", "Help"), Value::Null);
    assert!(
        message.contains("contact ct-zoe belongs to customer C404, which the host does not know"),
        "{message}"
    );
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
    assert!(host.logged(
        Level::Debug,
        "ignored a contract-event event: ticket linking only handles mail-received"
    ));
}

#[test]
fn host_errors_fail_the_event() {
    let mut host = directory();
    host.fail = true;
    let result = decide(
        &Event::MailReceived(mail("jeanne@dupont.example", "[#23010203]")),
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
