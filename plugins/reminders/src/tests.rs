//! Decisions on scheduled runs, against an in-memory store.

use std::cell::RefCell;

use relais_sdk::{
    AddressOwner, ContractDetails, Customer, Effect, Event, ExchangeSummary, Host, HostError,
    Level, Metadata, PartyKind, Plugin, PluginError, Reception, Recipient, Rendered, Request,
    RequestActivity, RequestQuery, RequestType, ScheduleFired, Settings, Side, ThreadMail,
};
use serde_json::{Value, json};

use crate::{CONFIG_SCHEMA, Config, Reminders, decide};

const FIRED_AT: &str = "2026-11-23T08:00:00.000Z";

/// The host's store, in memory: `find_requests` answers with `activities`
/// filtered as the real host does (state, idle since), and records the
/// query. Rendering gives the subject `TEMPLATE.LANGUAGE` and the context
/// as JSON for body, so that tests see what was rendered.
struct FakeHost {
    activities: Vec<RequestActivity>,
    contacts: Vec<Recipient>,
    customers: Vec<Customer>,
    fail: bool,
    queries: RefCell<Vec<RequestQuery>>,
    logs: RefCell<Vec<(Level, String)>>,
}

impl FakeHost {
    fn new() -> FakeHost {
        FakeHost {
            activities: vec![waiting(7, "2026-11-10T09:00:00.000Z")],
            contacts: vec![contact("ct-jeanne", Some("jeanne@dupont.example"))],
            customers: vec![customer(Some("fr"))],
            fail: false,
            queries: RefCell::new(Vec::new()),
            logs: RefCell::new(Vec::new()),
        }
    }

    fn logged(&self, level: Level, needle: &str) -> bool {
        self.logs
            .borrow()
            .iter()
            .any(|(l, message)| *l == level && message.contains(needle))
    }

    fn check(&self) -> Result<(), HostError> {
        if self.fail {
            Err(HostError("store unreachable".to_string()))
        } else {
            Ok(())
        }
    }
}

impl Host for FakeHost {
    fn find_requests(&self, query: &RequestQuery) -> Result<Vec<RequestActivity>, HostError> {
        self.check()?;
        self.queries.borrow_mut().push(query.clone());
        Ok(self
            .activities
            .iter()
            .filter(|a| query.states.contains(&a.request.state))
            .filter(|a| {
                query
                    .idle_since
                    .as_ref()
                    .is_none_or(|since| a.last_activity <= *since)
            })
            .take(query.limit as usize)
            .cloned()
            .collect())
    }

    fn contact(&self, id: &str) -> Result<Option<Recipient>, HostError> {
        self.check()?;
        Ok(self.contacts.iter().find(|c| c.id == id).cloned())
    }

    fn customer(&self, code: &str) -> Result<Option<Customer>, HostError> {
        self.check()?;
        Ok(self.customers.iter().find(|c| c.code == code).cloned())
    }

    fn render(
        &self,
        name: &str,
        language: Option<&str>,
        context: &Value,
    ) -> Result<Rendered, HostError> {
        Ok(Rendered {
            subject: Some(format!("{name}.{}", language.unwrap_or("-"))),
            body: context.to_string(),
        })
    }

    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_string()));
    }

    // Reminders read nothing else: a call is a bug.
    fn request(&self, number: u64) -> Result<Option<Request>, HostError> {
        panic!("reminders asked for request {number}")
    }
    fn request_type(&self, code: &str) -> Result<Option<RequestType>, HostError> {
        panic!("reminders asked for request type {code}")
    }
    fn address_owners(&self, email: &str) -> Result<Vec<AddressOwner>, HostError> {
        panic!("reminders asked who owns {email}")
    }
    fn settings(&self) -> Result<Settings, HostError> {
        panic!("reminders asked for the settings")
    }
    fn contract(&self, code: &str) -> Result<Option<ContractDetails>, HostError> {
        panic!("reminders asked for contract {code}")
    }
    fn thread(&self, message_id: &str) -> Result<Vec<ThreadMail>, HostError> {
        panic!("reminders asked for the thread of {message_id}")
    }
    fn linked_ticket(&self, message_id: &str) -> Result<Option<u64>, HostError> {
        panic!("reminders asked for the ticket of {message_id}")
    }
}

fn request(number: u64) -> Request {
    Request {
        number,
        company: "ACME-FR".into(),
        customer: "C001".into(),
        request_type: "INCIDENT".into(),
        requester: Some("ct-jeanne".into()),
        state: "waiting-customer".into(),
        publishable: true,
        conversation_locked: false,
        contract: None,
        subject: Some("Printer down".into()),
    }
}

fn waiting(number: u64, last_activity: &str) -> RequestActivity {
    RequestActivity {
        request: request(number),
        last_activity: last_activity.to_string(),
        exchanges: ExchangeSummary {
            count: 2,
            last_side: Some(Side::Staff),
            last_at: Some(last_activity.to_string()),
            reminders: 0,
        },
    }
}

fn contact(id: &str, email: Option<&str>) -> Recipient {
    Recipient {
        kind: PartyKind::Contact,
        id: id.to_string(),
        name: "Jeanne Martin".into(),
        customer: Some("C001".into()),
        site: None,
        email: email.map(str::to_string),
        reception: Reception::None,
        fax: None,
        alerts: vec![],
    }
}

fn customer(language: Option<&str>) -> Customer {
    Customer {
        code: "C001".into(),
        name: "Dupont SA".into(),
        company: "ACME-FR".into(),
        main_site: None,
        language: language.map(str::to_string),
        alert_formats: vec![],
    }
}

fn fired() -> Event {
    Event::Schedule(ScheduleFired {
        rule: "waiting-customer-reminders".into(),
        fired_at: FIRED_AT.into(),
    })
}

fn run(host: &FakeHost, config: Value) -> Vec<Effect> {
    decide(&fired(), &config, host).unwrap()
}

/// The context a mail's body was rendered with.
fn context(effect: &Effect) -> Value {
    match effect {
        Effect::SendMail { body, .. } => serde_json::from_str(body).unwrap(),
        other => panic!("expected send-mail, got {other:?}"),
    }
}

#[test]
fn reminds_the_requester_of_an_idle_waiting_request_as_a_relance_exchange() {
    let host = FakeHost::new();
    let effects = run(&host, Value::Null);
    assert_eq!(effects.len(), 1, "{effects:?}");
    let Effect::SendMail {
        to,
        subject,
        request,
        exchange,
        ..
    } = &effects[0]
    else {
        panic!("{effects:?}")
    };
    assert_eq!(to, &["jeanne@dupont.example"]);
    assert_eq!(subject, "relance.fr");
    assert_eq!(*request, Some(7));
    assert_eq!(exchange.as_deref(), Some("relance"));
    let context = context(&effects[0]);
    assert_eq!(context["contact"]["id"], "ct-jeanne");
    assert_eq!(context["customer"]["name"], "Dupont SA");
    assert_eq!(
        context["reminder"],
        json!({ "number": 1, "max": 3, "idle_days": 12, "since": "2026-11-10", "exchanges": 2 })
    );
    assert!(host.logged(
        Level::Info,
        "request 7: reminder 1 of 3 to jeanne@dupont.example"
    ));
}

#[test]
fn asks_for_the_configured_states_idle_since_after_days_before_the_run() {
    let host = FakeHost::new();
    run(
        &host,
        json!({ "states": ["waiting-customer", "pending"], "after-days": 3, "limit": 50 }),
    );
    assert_eq!(
        host.queries.borrow().as_slice(),
        [RequestQuery {
            states: vec!["waiting-customer".into(), "pending".into()],
            idle_since: Some("2026-11-20T08:00:00.000Z".into()),
            limit: 50,
        }]
    );
}

#[test]
fn a_request_idle_for_less_than_after_days_gets_no_reminder() {
    let mut host = FakeHost::new();
    host.activities = vec![waiting(7, "2026-11-20T09:00:00.000Z")];
    assert!(run(&host, Value::Null).is_empty());
    assert!(host.logged(Level::Info, "0 request(s)"));
}

#[test]
fn no_reminder_when_the_customer_spoke_last() {
    let mut host = FakeHost::new();
    host.activities[0].exchanges.last_side = Some(Side::Customer);
    assert!(run(&host, Value::Null).is_empty());
    assert!(host.logged(
        Level::Info,
        "request 7: no reminder: the customer spoke last"
    ));
}

#[test]
fn the_next_reminder_counts_those_already_sent_and_stops_at_the_maximum() {
    let mut host = FakeHost::new();
    host.activities[0].exchanges.reminders = 1;
    let effects = run(&host, Value::Null);
    assert_eq!(context(&effects[0])["reminder"]["number"], 2);

    host.activities[0].exchanges.reminders = 3;
    assert!(run(&host, Value::Null).is_empty());
    assert!(host.logged(Level::Info, "already reminded 3 time(s)"));
    assert!(run(&host, json!({ "max-reminders": 4 })).len() == 1);
}

#[test]
fn no_reminder_about_a_request_the_customer_does_not_see() {
    let mut host = FakeHost::new();
    host.activities[0].request.publishable = false;
    assert!(run(&host, Value::Null).is_empty());
    assert!(host.logged(Level::Info, "not publishable"));
}

#[test]
fn no_reminder_without_a_requester_with_an_address() {
    let mut host = FakeHost::new();
    host.activities[0].request.requester = None;
    assert!(run(&host, Value::Null).is_empty());
    assert!(host.logged(Level::Warn, "no requester"));

    let mut host = FakeHost::new();
    host.contacts.clear();
    assert!(run(&host, Value::Null).is_empty());
    assert!(host.logged(Level::Warn, "`ct-jeanne` is not in the directory"));

    let mut host = FakeHost::new();
    host.contacts = vec![contact("ct-jeanne", None)];
    assert!(run(&host, Value::Null).is_empty());
    assert!(host.logged(Level::Warn, "has no email address"));
}

#[test]
fn one_request_skipped_does_not_stop_the_others() {
    let mut host = FakeHost::new();
    let mut answered = waiting(8, "2026-11-01T09:00:00.000Z");
    answered.exchanges.last_side = Some(Side::Customer);
    host.activities = vec![answered, waiting(9, "2026-11-02T09:00:00.000Z")];
    let effects = run(&host, Value::Null);
    assert_eq!(effects.len(), 1);
    assert!(matches!(
        &effects[0],
        Effect::SendMail {
            request: Some(9),
            ..
        }
    ));
}

#[test]
fn writes_in_the_customers_language_else_the_rules() {
    let mut host = FakeHost::new();
    host.customers = vec![customer(Some("en"))];
    assert!(
        matches!(&run(&host, Value::Null)[0], Effect::SendMail { subject, .. } if subject == "relance.en")
    );
    host.customers = vec![customer(None)];
    let effects = run(&host, json!({ "language": "de", "template": "nudge" }));
    assert!(matches!(&effects[0], Effect::SendMail { subject, .. } if subject == "nudge.de"));
}

#[test]
fn warns_when_the_limit_is_reached() {
    let mut host = FakeHost::new();
    host.activities = (1..=3)
        .map(|n| waiting(n, "2026-11-01T09:00:00.000Z"))
        .collect();
    assert_eq!(run(&host, json!({ "limit": 2 })).len(), 2);
    assert!(host.logged(Level::Warn, "the limit of 2 requests per run was reached"));
}

#[test]
fn other_events_give_nothing() {
    let host = FakeHost::new();
    let event = Event::ContractEvent(relais_sdk::ContractEvent {
        kind: "renewed".into(),
        contract: relais_sdk::Contract {
            code: "K".into(),
            customer: "C001".into(),
        },
    });
    assert!(decide(&event, &Value::Null, &host).unwrap().is_empty());
    assert!(host.queries.borrow().is_empty());
}

#[test]
fn a_host_failure_is_the_hosts_and_a_bad_time_the_plugins() {
    let mut host = FakeHost::new();
    host.fail = true;
    assert!(matches!(
        decide(&fired(), &Value::Null, &host),
        Err(PluginError::Host(_))
    ));
    let host = FakeHost::new();
    let event = Event::Schedule(ScheduleFired {
        rule: "r".into(),
        fired_at: "yesterday".into(),
    });
    let Err(PluginError::Plugin(message)) = decide(&event, &Value::Null, &host) else {
        panic!("a bad time is refused")
    };
    assert!(
        message.contains("`yesterday` is not an RFC 3339 time"),
        "{message}"
    );
}

#[test]
fn a_bad_config_is_refused_naming_the_key() {
    for (config, needle) in [
        (json!({ "after-days": 0 }), "key `after-days`"),
        (json!({ "max-reminders": 0 }), "key `max-reminders`"),
        (json!({ "states": [] }), "key `states`"),
        (json!({ "limit": 5000 }), "key `limit`"),
        (json!({ "after-dayz": 3 }), "after-dayz"),
        (json!({ "after-days": "seven" }), "key `after-days`"),
        (json!(["relance"]), "expected a mapping"),
    ] {
        let Err(PluginError::Plugin(message)) = Config::from_value(&config) else {
            panic!("{config} accepted")
        };
        assert!(message.contains(needle), "{config}: {message}");
        assert!(message.starts_with("invalid reminders config"), "{message}");
    }
}

#[test]
fn metadata_and_config_schema_agree_with_the_code() {
    let metadata: Metadata = Reminders::metadata();
    assert_eq!(metadata.name, "reminders");
    assert_eq!(metadata.wit_version, relais_sdk::WIT_VERSION);
    assert!(
        metadata
            .capabilities
            .iter()
            .all(|c| relais_sdk::CAPABILITIES.contains(&c.as_str()))
    );
    let problems = relais_sdk::config_schema_mismatches::<Config>(CONFIG_SCHEMA);
    assert!(problems.is_empty(), "{problems:?}");
}
