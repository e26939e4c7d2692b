//! The directory import format (`relais import FILE.yaml`): companies,
//! customers, contacts, collaborators, users and their rights, request
//! types, contracts and requests.
//!
//! The format is a contract documented in docs/directory.md. Every reference is
//! checked (against the same file and the directory already stored) before
//! anything is written, and every problem is reported with `file:line:col`.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use relais_sdk::ChangeKind;
use serde::{Deserialize, Serialize};

use crate::yaml::{Diagnostic, Document, Segment, did_you_mean};

/// A whole import file.
#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DirectoryFile {
    /// `settings: { direct-messages-enabled: true, ... }`
    #[serde(default)]
    pub settings: SettingsSpec,
    /// `companies: [ { code, name } ]`
    #[serde(default)]
    pub companies: Vec<Company>,
    /// `customers: [ { code, name, company, sites, alert-formats } ]`
    #[serde(default)]
    pub customers: Vec<Customer>,
    /// `contacts: [ { id, name, customer, site, email, email2, reception, fax, alerts } ]`
    #[serde(default)]
    pub contacts: Vec<Contact>,
    /// `collaborators: [ { id, name, email, email2, alerts } ]`
    #[serde(default)]
    pub collaborators: Vec<Collaborator>,
    /// `users: [ { login, kind, collaborator | contact, rights, catchmail, companies } ]`
    #[serde(default)]
    pub users: Vec<UserSpec>,
    /// `request-types: [ { code, catchmail } ]`
    #[serde(default)]
    pub request_types: Vec<RequestTypeSpec>,
    /// `contracts: [ { code, customer, alerts, recipients } ]`
    #[serde(default)]
    pub contracts: Vec<ContractSpec>,
    /// `requests: [ { number, company, customer, type, requester, state, ... } ]`
    #[serde(default)]
    pub requests: Vec<RequestSpec>,
}

/// Global settings; keys left out keep their stored value.
#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SettingsSpec {
    /// `direct-messages-enabled: true`: the global switch for messages on requests.
    pub direct_messages_enabled: Option<bool>,
    /// `notify-by-email-default: false`: new messages notify the other side by mail.
    pub notify_by_email_default: Option<bool>,
    /// `ticket-tag: "[#{number}]"`: how a ticket's number appears in mail
    /// subjects (an addition to the format).
    pub ticket_tag: Option<String>,
}

/// `{ code: ACME-FR, name: Acme France }`
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Company {
    /// `code: ACME-FR`
    pub code: String,
    /// `name: Acme France`
    pub name: String,
}

/// A customer with its sites and alert formats.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Customer {
    /// `code: C001`
    pub code: String,
    /// `name: Dupont SA`
    pub name: String,
    /// `company: ACME-FR`
    pub company: String,
    /// `sites: [ { code: MAIN, main: true }, { code: LYON } ]`
    #[serde(default)]
    pub sites: Vec<Site>,
    /// `alert-formats: { opened: { keyword: "[OUVERTURE]", template: alert-opened }, ... }`
    #[serde(default)]
    pub alert_formats: AlertFormats,
    /// `language: fr`: the language of its alert mails (templates
    /// `NAME.fr.jinja`); when absent, the alert rule's default.
    #[serde(default)]
    pub language: Option<String>,
}

/// `{ code: MAIN, main: true, name: Siège }`
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Site {
    /// `code: MAIN`
    pub code: String,
    /// `name: Siège` (optional)
    #[serde(default)]
    pub name: Option<String>,
    /// `main: true`: the customer's main site.
    #[serde(default)]
    pub main: bool,
}

/// Per alert kind, the subject keyword and template.
#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AlertFormats {
    /// `opened: { keyword: "[OUVERTURE]", template: alert-opened }`
    pub opened: Option<AlertFormat>,
    /// `resolved: { ... }`
    pub resolved: Option<AlertFormat>,
    /// `closed: { ... }`
    pub closed: Option<AlertFormat>,
    /// `state-changed: { ... }`
    pub state_changed: Option<AlertFormat>,
}

impl AlertFormats {
    /// The formats given, by change kind.
    pub fn entries(&self) -> Vec<(ChangeKind, &AlertFormat)> {
        [
            (ChangeKind::Opened, &self.opened),
            (ChangeKind::Resolved, &self.resolved),
            (ChangeKind::Closed, &self.closed),
            (ChangeKind::StateChanged, &self.state_changed),
        ]
        .into_iter()
        .filter_map(|(kind, format)| format.as_ref().map(|format| (kind, format)))
        .collect()
    }
}

/// `{ keyword: "[OUVERTURE]", template: alert-opened }`
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AlertFormat {
    /// `keyword: "[OUVERTURE]"`: put in the alert's subject.
    pub keyword: String,
    /// `template: alert-opened`: the mail template's name.
    pub template: String,
}

/// How a contact receives alerts: `email`, `fax` (through the
/// email-to-fax gateway) or `none`.
pub use relais_sdk::Reception;

/// A customer's contact.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Contact {
    /// `id: ct-jeanne`
    pub id: String,
    /// `name: Jeanne Martin`
    pub name: String,
    /// `customer: C001`
    pub customer: String,
    /// `site: MAIN` (a site of that customer)
    #[serde(default)]
    pub site: Option<String>,
    /// `email: jeanne@dupont.example`
    #[serde(default)]
    pub email: Option<String>,
    /// `email2: j.martin@dupont.example`
    #[serde(default)]
    pub email2: Option<String>,
    /// `reception: email | fax | none`
    #[serde(default)]
    #[schemars(with = "ReceptionName")]
    pub reception: Reception,
    /// `fax: "+33 1 23 45 67 89"`
    #[serde(default)]
    pub fax: Option<String>,
    /// `alerts: [opened, resolved, closed, state-changed]`: subscriptions.
    #[serde(default)]
    #[schemars(with = "Vec<AlertKind>")]
    pub alerts: Vec<ChangeKind>,
}

/// A collaborator (staff member).
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Collaborator {
    /// `id: co-paul`
    pub id: String,
    /// `name: Paul Durand`
    pub name: String,
    /// `email: paul@acme.example`
    #[serde(default)]
    pub email: Option<String>,
    /// `email2: support@acme.example`
    #[serde(default)]
    pub email2: Option<String>,
    /// `alerts: [opened, closed]`: subscriptions.
    #[serde(default)]
    #[schemars(with = "Vec<AlertKind>")]
    pub alerts: Vec<ChangeKind>,
}

/// Internal (staff) or extranet (customer) user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UserKindSpec {
    /// `kind: internal`: links a collaborator.
    Internal,
    /// `kind: extranet`: links a contact.
    Extranet,
}

/// A user account.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UserSpec {
    /// `login: pdurand`
    pub login: String,
    /// `kind: internal | extranet`
    pub kind: UserKindSpec,
    /// `collaborator: co-paul` (internal users)
    #[serde(default)]
    pub collaborator: Option<String>,
    /// `contact: ct-jeanne` (extranet users)
    #[serde(default)]
    pub contact: Option<String>,
    /// `rights: [141341]`
    #[serde(default)]
    pub rights: Vec<u32>,
    /// `catchmail: true`: may post messages by mail.
    #[serde(default)]
    pub catchmail: bool,
    /// `companies: [ACME-FR]`: partitioning, the companies this user may act on.
    #[serde(default)]
    pub companies: Vec<String>,
}

/// `{ code: INCIDENT, catchmail: true }`
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RequestTypeSpec {
    /// `code: INCIDENT`
    pub code: String,
    /// `name: Incident` (optional)
    #[serde(default)]
    pub name: Option<String>,
    /// `catchmail: true`: set up for CatchMail.
    #[serde(default)]
    pub catchmail: bool,
}

/// A commitment contract and its alert settings.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ContractSpec {
    /// `code: K-2026-001`
    pub code: String,
    /// `customer: C001`
    pub customer: String,
    /// `alerts: { opened: true, resolved: true, closed: true, state-changed: false }`
    #[serde(default)]
    pub alerts: ContractAlerts,
    /// `recipients: { contract-contacts: [...], site-contacts: [...], ... }`
    #[serde(default)]
    pub recipients: Recipients,
}

/// An alert kind, as import files write it (the schema of
/// [`relais_sdk::ChangeKind`]).
#[derive(schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[allow(dead_code)]
enum AlertKind {
    Opened,
    Resolved,
    Closed,
    StateChanged,
}

/// A reception mode, as import files write it.
#[derive(schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[allow(dead_code)]
enum ReceptionName {
    Email,
    Fax,
    None,
}

/// The JSON Schema of import files (`relais schema import`).
pub fn json_schema() -> serde_json::Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(DirectoryFile)).unwrap_or_default();
    schema["title"] = serde_json::json!("Relais directory import file");
    schema
}

/// Which alert kinds a contract enables.
#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ContractAlerts {
    /// `opened: true`
    #[serde(default)]
    pub opened: bool,
    /// `resolved: true`
    #[serde(default)]
    pub resolved: bool,
    /// `closed: true`
    #[serde(default)]
    pub closed: bool,
    /// `state-changed: false`
    #[serde(default)]
    pub state_changed: bool,
}

/// The recipient groups of a contract's alerts.
#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Recipients {
    /// `contract-contacts: [ct-jeanne]`: the contract's alert contacts.
    #[serde(default)]
    pub contract_contacts: Vec<String>,
    /// `site-contacts: [...]`: customer site contacts.
    #[serde(default)]
    pub site_contacts: Vec<String>,
    /// `customer-contacts: [...]`: customer contacts (main site only).
    #[serde(default)]
    pub customer_contacts: Vec<String>,
    /// `product-contacts: [...]`: maintained-product contacts.
    #[serde(default)]
    pub product_contacts: Vec<String>,
    /// `product-collaborators: [co-paul]`: maintained-product collaborators.
    #[serde(default)]
    pub product_collaborators: Vec<String>,
    /// `service-contacts: [...]`: contract service contacts.
    #[serde(default)]
    pub service_contacts: Vec<String>,
}

/// A support request.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RequestSpec {
    /// `number: 23010203`
    pub number: u64,
    /// `company: ACME-FR`
    pub company: String,
    /// `customer: C001`
    pub customer: String,
    /// `type: INCIDENT`
    #[serde(rename = "type")]
    pub request_type: String,
    /// `requester: ct-jeanne`
    #[serde(default)]
    pub requester: Option<String>,
    /// `state: open`
    pub state: String,
    /// `publishable: true` (default true)
    #[serde(default = "yes")]
    pub publishable: bool,
    /// `conversation-locked: false`
    #[serde(default)]
    pub conversation_locked: bool,
    /// `contract: K-2026-001`
    #[serde(default)]
    pub contract: Option<String>,
    /// `subject: "Printer down"`
    #[serde(default)]
    pub subject: Option<String>,
}

fn yes() -> bool {
    true
}

/// A stored request, in the form a save takes: what `GET` answers can be
/// sent back as a `PUT`.
impl From<relais_sdk::Request> for RequestSpec {
    fn from(request: relais_sdk::Request) -> Self {
        RequestSpec {
            number: request.number,
            company: request.company,
            customer: request.customer,
            request_type: request.request_type,
            requester: request.requester,
            state: request.state,
            publishable: request.publishable,
            conversation_locked: request.conversation_locked,
            contract: request.contract,
            subject: request.subject,
        }
    }
}

/// The kinds of directory record a reference can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A company, by code.
    Company,
    /// A customer, by code.
    Customer,
    /// A contact, by id.
    Contact,
    /// A collaborator, by id.
    Collaborator,
    /// A request type, by code.
    RequestType,
    /// A contract, by code.
    Contract,
}

impl Kind {
    /// The record's noun, for messages.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Company => "company",
            Kind::Customer => "customer",
            Kind::Contact => "contact",
            Kind::Collaborator => "collaborator",
            Kind::RequestType => "request type",
            Kind::Contract => "contract",
        }
    }
}

/// Answers whether the stored directory already has a record.
pub trait Existing {
    /// Whether a record of `kind` with this id or code is stored.
    fn exists(&self, kind: Kind, id: &str) -> bool;
    /// Whether `customer` has a stored site `site`.
    fn site_exists(&self, customer: &str, site: &str) -> bool;
    /// The customer of a stored contact or contract.
    fn stored_customer_of(&self, kind: Kind, id: &str) -> Option<String>;
}

/// Parses and checks an import file. Every problem is returned, each with
/// its position; on success the data is ready to be written in one go.
pub fn parse(
    file: &Path,
    text: &str,
    existing: &dyn Existing,
) -> Result<DirectoryFile, Vec<Diagnostic>> {
    let doc = Document::parse(file, text).map_err(|d| vec![d])?;
    let mut errors = Vec::new();
    if !doc.value().is_mapping() && !doc.value().is_null() {
        return Err(vec![doc.diagnostic(
            &[],
            "an import file is a mapping of sections (companies, customers, ...)",
        )]);
    }
    // Each item on its own, so that one bad record does not hide the next.
    let mut data = DirectoryFile::default();
    match doc.value().as_mapping() {
        Some(mapping) => {
            for key in mapping.keys() {
                let name = key.as_str().unwrap_or("");
                if !SECTIONS.contains(&name) {
                    let mut message = format!("unknown section `{name}`");
                    if let Some(best) = did_you_mean(name, SECTIONS) {
                        message.push_str(&format!("; did you mean `{best}`?"));
                    }
                    errors.push(doc.key_diagnostic(&[Segment::Key(name.to_string())], message));
                }
            }
        }
        None => return Ok(data),
    }
    if doc.get(&[key("settings")]).is_some() {
        match doc.deserialize_at(&[key("settings")]) {
            Ok(settings) => data.settings = settings,
            Err(error) => errors.push(error),
        }
    }
    section(&doc, "companies", &mut data.companies, &mut errors);
    section(&doc, "customers", &mut data.customers, &mut errors);
    section(&doc, "contacts", &mut data.contacts, &mut errors);
    section(&doc, "collaborators", &mut data.collaborators, &mut errors);
    section(&doc, "users", &mut data.users, &mut errors);
    section(&doc, "request-types", &mut data.request_types, &mut errors);
    section(&doc, "contracts", &mut data.contracts, &mut errors);
    section(&doc, "requests", &mut data.requests, &mut errors);
    if errors.is_empty() {
        References::new(&doc, &data, existing, &mut errors).check();
    }
    if errors.is_empty() {
        Ok(data)
    } else {
        Err(errors)
    }
}

const SECTIONS: [&str; 9] = [
    "settings",
    "companies",
    "customers",
    "contacts",
    "collaborators",
    "users",
    "request-types",
    "contracts",
    "requests",
];

fn key(name: &str) -> Segment {
    Segment::Key(name.to_string())
}

fn section<T: serde::de::DeserializeOwned>(
    doc: &Document,
    name: &str,
    out: &mut Vec<T>,
    errors: &mut Vec<Diagnostic>,
) {
    let Some(value) = doc.get(&[key(name)]) else {
        return;
    };
    if value.is_null() {
        return;
    }
    let Some(items) = value.as_sequence() else {
        errors.push(doc.diagnostic(&[key(name)], format!("`{name}` must be a list")));
        return;
    };
    for index in 0..items.len() {
        match doc.deserialize_at(&[key(name), Segment::Index(index)]) {
            Ok(item) => out.push(item),
            Err(error) => errors.push(error),
        }
    }
}

/// Checks every reference of a parsed file against the file itself and the
/// stored directory.
struct References<'a> {
    doc: &'a Document,
    data: &'a DirectoryFile,
    existing: &'a dyn Existing,
    errors: &'a mut Vec<Diagnostic>,
    in_file: std::collections::HashMap<Kind, HashSet<&'a str>>,
}

impl<'a> References<'a> {
    fn new(
        doc: &'a Document,
        data: &'a DirectoryFile,
        existing: &'a dyn Existing,
        errors: &'a mut Vec<Diagnostic>,
    ) -> Self {
        let mut in_file: std::collections::HashMap<Kind, HashSet<&'a str>> = Default::default();
        let mut add = |kind, ids: Vec<&'a str>| in_file.entry(kind).or_default().extend(ids);
        add(
            Kind::Company,
            data.companies.iter().map(|c| c.code.as_str()).collect(),
        );
        add(
            Kind::Customer,
            data.customers.iter().map(|c| c.code.as_str()).collect(),
        );
        add(
            Kind::Contact,
            data.contacts.iter().map(|c| c.id.as_str()).collect(),
        );
        add(
            Kind::Collaborator,
            data.collaborators.iter().map(|c| c.id.as_str()).collect(),
        );
        add(
            Kind::RequestType,
            data.request_types.iter().map(|t| t.code.as_str()).collect(),
        );
        add(
            Kind::Contract,
            data.contracts.iter().map(|c| c.code.as_str()).collect(),
        );
        References {
            doc,
            data,
            existing,
            errors,
            in_file,
        }
    }

    fn known(&self, kind: Kind, id: &str) -> bool {
        self.in_file.get(&kind).is_some_and(|ids| ids.contains(id))
            || self.existing.exists(kind, id)
    }

    fn require(&mut self, kind: Kind, id: &str, path: &[Segment]) {
        if !self.known(kind, id) {
            let field = crate::yaml::display_path(path);
            let message = format!(
                "{field}: unknown {noun} `{id}` (not in this file nor in the stored directory)",
                noun = kind.noun()
            );
            self.errors.push(self.doc.diagnostic(path, message));
        }
    }

    fn require_all(&mut self, kind: Kind, ids: &[String], path: &[Segment]) {
        for (index, id) in ids.iter().enumerate() {
            let mut at = path.to_vec();
            at.push(Segment::Index(index));
            self.require(kind, id, &at);
        }
    }

    /// The customer of a contact or contract of this file, else of the
    /// stored directory.
    fn customer_of(&self, kind: Kind, id: &str) -> Option<String> {
        let in_file = match kind {
            Kind::Contact => self
                .data
                .contacts
                .iter()
                .find(|c| c.id == id)
                .map(|c| c.customer.clone()),
            Kind::Contract => self
                .data
                .contracts
                .iter()
                .find(|c| c.code == id)
                .map(|c| c.customer.clone()),
            _ => None,
        };
        in_file.or_else(|| self.existing.stored_customer_of(kind, id))
    }

    /// Each of `ids` must be a contact of `customer`: a record of one
    /// customer never names another's people.
    fn require_of_customer(
        &mut self,
        ids: &[String],
        customer: &str,
        path: &[Segment],
        what: &str,
    ) {
        for (index, id) in ids.iter().enumerate() {
            let mut at = path.to_vec();
            at.push(Segment::Index(index));
            if !self.known(Kind::Contact, id) {
                self.require(Kind::Contact, id, &at);
                continue;
            }
            if let Some(theirs) = self.customer_of(Kind::Contact, id)
                && theirs != customer
            {
                let field = crate::yaml::display_path(&at);
                let message = format!(
                    "{field}: contact `{id}` belongs to customer `{theirs}`, not to {what}'s customer `{customer}`"
                );
                self.errors.push(self.doc.diagnostic(&at, message));
            }
        }
    }

    /// A name goes into mail headers (a display name, a subject): one line.
    fn require_one_line(&mut self, value: &str, path: &[Segment]) {
        if value.contains(['\r', '\n']) {
            let field = crate::yaml::display_path(path);
            let message = format!("{field}: must not hold a line break (CR or LF)");
            self.errors.push(self.doc.diagnostic(path, message));
        }
    }

    /// A mail address must be one: `local@domain`, no space, no line break.
    fn require_address(&mut self, address: Option<&String>, path: &[Segment]) {
        if let Some(address) = address
            && let Some(problem) = crate::config::address_problem(address)
        {
            let field = crate::yaml::display_path(path);
            let message = format!(
                "{field}: `{}` is not a mail address: it {problem}",
                address.escape_debug()
            );
            self.errors.push(self.doc.diagnostic(path, message));
        }
    }

    fn duplicates<T>(&mut self, name: &str, items: &[T], id: impl Fn(&T) -> String) {
        let mut seen = BTreeMap::new();
        for (index, item) in items.iter().enumerate() {
            let value = id(item);
            if let Some(first) = seen.insert(value.clone(), index) {
                let message =
                    format!("`{value}` appears twice in `{name}` (first at {name}[{first}])");
                self.errors.push(
                    self.doc
                        .diagnostic(&[key(name), Segment::Index(index)], message),
                );
            }
        }
    }

    fn check(mut self) {
        let data = self.data;
        if let Some(tag) = &data.settings.ticket_tag
            && let Err(message) = relais_sdk::TicketTag::parse(tag)
        {
            let at = [key("settings"), key("ticket-tag")];
            self.errors.push(self.doc.diagnostic(&at, message));
        }
        self.duplicates("companies", &data.companies, |c| c.code.clone());
        self.duplicates("customers", &data.customers, |c| c.code.clone());
        self.duplicates("contacts", &data.contacts, |c| c.id.clone());
        self.duplicates("collaborators", &data.collaborators, |c| c.id.clone());
        self.duplicates("users", &data.users, |u| u.login.clone());
        self.duplicates("request-types", &data.request_types, |t| t.code.clone());
        self.duplicates("contracts", &data.contracts, |c| c.code.clone());
        self.duplicates("requests", &data.requests, |r| r.number.to_string());

        for (i, customer) in data.customers.iter().enumerate() {
            let at = |field: &str| vec![key("customers"), Segment::Index(i), key(field)];
            self.require(Kind::Company, &customer.company, &at("company"));
            let mains = customer.sites.iter().filter(|s| s.main).count();
            if mains > 1 {
                let message = format!(
                    "customer `{}` has {mains} main sites; at most one",
                    customer.code
                );
                self.errors.push(self.doc.diagnostic(&at("sites"), message));
            }
        }
        for (i, contact) in data.contacts.iter().enumerate() {
            let at = |field: &str| vec![key("contacts"), Segment::Index(i), key(field)];
            self.require(Kind::Customer, &contact.customer, &at("customer"));
            if let Some(site) = &contact.site {
                let in_file = data
                    .customers
                    .iter()
                    .find(|c| c.code == contact.customer)
                    .is_some_and(|c| c.sites.iter().any(|s| &s.code == site));
                if !in_file && !self.existing.site_exists(&contact.customer, site) {
                    let message = format!(
                        "contacts[{i}].site: unknown site `{site}` of customer `{}`",
                        contact.customer
                    );
                    self.errors.push(self.doc.diagnostic(&at("site"), message));
                }
            }
            self.require_one_line(&contact.name, &at("name"));
            self.require_address(contact.email.as_ref(), &at("email"));
            self.require_address(contact.email2.as_ref(), &at("email2"));
            if contact.reception == Reception::Fax && contact.fax.is_none() {
                let message = format!(
                    "contact `{}` receives alerts by fax but has no `fax` number",
                    contact.id
                );
                self.errors
                    .push(self.doc.diagnostic(&at("reception"), message));
            }
        }
        for (i, collaborator) in data.collaborators.iter().enumerate() {
            let at = |field: &str| vec![key("collaborators"), Segment::Index(i), key(field)];
            self.require_one_line(&collaborator.name, &at("name"));
            self.require_address(collaborator.email.as_ref(), &at("email"));
            self.require_address(collaborator.email2.as_ref(), &at("email2"));
        }
        for (i, user) in data.users.iter().enumerate() {
            let at = |field: &str| vec![key("users"), Segment::Index(i), key(field)];
            match (user.kind, &user.collaborator, &user.contact) {
                (UserKindSpec::Internal, Some(collaborator), None) => {
                    self.require(Kind::Collaborator, collaborator, &at("collaborator"));
                }
                (UserKindSpec::Extranet, None, Some(contact)) => {
                    self.require(Kind::Contact, contact, &at("contact"));
                }
                (UserKindSpec::Internal, _, _) => {
                    let message = format!(
                        "internal user `{}` must link a `collaborator` (and no `contact`)",
                        user.login
                    );
                    self.errors.push(self.doc.diagnostic(&at("kind"), message));
                }
                (UserKindSpec::Extranet, _, _) => {
                    let message = format!(
                        "extranet user `{}` must link a `contact` (and no `collaborator`)",
                        user.login
                    );
                    self.errors.push(self.doc.diagnostic(&at("kind"), message));
                }
            }
            self.require_all(Kind::Company, &user.companies, &at("companies"));
        }
        for (i, contract) in data.contracts.iter().enumerate() {
            let at = |field: &str| vec![key("contracts"), Segment::Index(i), key(field)];
            self.require(Kind::Customer, &contract.customer, &at("customer"));
            let group = |name: &str| {
                vec![
                    key("contracts"),
                    Segment::Index(i),
                    key("recipients"),
                    key(name),
                ]
            };
            let r = &contract.recipients;
            let customer = contract.customer.as_str();
            for (name, ids) in [
                ("contract-contacts", &r.contract_contacts),
                ("site-contacts", &r.site_contacts),
                ("customer-contacts", &r.customer_contacts),
                ("product-contacts", &r.product_contacts),
                ("service-contacts", &r.service_contacts),
            ] {
                self.require_of_customer(ids, customer, &group(name), "the contract");
            }
            self.require_all(
                Kind::Collaborator,
                &r.product_collaborators,
                &group("product-collaborators"),
            );
        }
        for (i, request) in data.requests.iter().enumerate() {
            let at = |field: &str| vec![key("requests"), Segment::Index(i), key(field)];
            self.require(Kind::Company, &request.company, &at("company"));
            self.require(Kind::Customer, &request.customer, &at("customer"));
            self.require(Kind::RequestType, &request.request_type, &at("type"));
            if let Some(requester) = &request.requester {
                self.require(Kind::Contact, requester, &at("requester"));
                if let Some(theirs) = self.customer_of(Kind::Contact, requester)
                    && theirs != request.customer
                {
                    let message = format!(
                        "requests[{i}].requester: contact `{requester}` belongs to customer `{theirs}`, not to the request's customer `{}`",
                        request.customer
                    );
                    self.errors
                        .push(self.doc.diagnostic(&at("requester"), message));
                }
            }
            if let Some(contract) = &request.contract {
                self.require(Kind::Contract, contract, &at("contract"));
                if let Some(theirs) = self.customer_of(Kind::Contract, contract)
                    && theirs != request.customer
                {
                    let message = format!(
                        "requests[{i}].contract: contract `{contract}` is of customer `{theirs}`, not of the request's customer `{}`",
                        request.customer
                    );
                    self.errors
                        .push(self.doc.diagnostic(&at("contract"), message));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;
    impl Existing for Nothing {
        fn exists(&self, _: Kind, _: &str) -> bool {
            false
        }
        fn site_exists(&self, _: &str, _: &str) -> bool {
            false
        }
        fn stored_customer_of(&self, _: Kind, _: &str) -> Option<String> {
            None
        }
    }

    #[test]
    fn dangling_reference_names_line_field_and_id() {
        let text = "companies:\n  - { code: A, name: A }\ncustomers:\n  - code: C1\n    name: X\n    company: B\n";
        let errors = parse(Path::new("d.yaml"), text, &Nothing).expect_err("dangling");
        assert_eq!(
            errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "d.yaml:6:14: customers[0].company: unknown company `B` (not in this file nor in the stored directory)"
            ]
        );
    }

    #[test]
    fn every_bad_record_is_reported() {
        let text = "companies:\n  - { code: A, nam: A }\n  - { code: B }\nrequets: []\n";
        let errors = parse(Path::new("d.yaml"), text, &Nothing).expect_err("bad");
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert!(
            lines[0].starts_with("d.yaml:4:1: unknown section `requets`; did you mean `requests`?"),
            "{lines:#?}"
        );
        assert!(lines[1].contains("did you mean `name`?"), "{lines:#?}");
        assert!(lines[2].contains("missing field `name`"), "{lines:#?}");
    }

    #[test]
    fn people_of_another_customer_and_bad_addresses_are_refused_where_written() {
        let text = "companies: [ { code: A, name: A } ]
customers:
  - { code: C1, name: Dupont, company: A }
  - { code: C2, name: Martin, company: A }
contacts:
  - { id: j, name: J, customer: C1, email: jeanne@dupont.example }
  - { id: m, name: M, customer: C2, email: \"m @martin.example\" }
  - { id: n, name: N, customer: C2, email: nobody }
contracts:
  - { code: K1, customer: C1, recipients: { site-contacts: [j, m] } }
request-types: [ { code: INC } ]
requests:
  - { number: 1, company: A, customer: C1, type: INC, requester: m, state: open, contract: K1 }
  - { number: 2, company: A, customer: C2, type: INC, state: open, contract: K1 }
";
        let errors = parse(Path::new("d.yaml"), text, &Nothing).expect_err("refused");
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "d.yaml:7:44: contacts[1].email: `m @martin.example` is not a mail address: it holds a space",
                "d.yaml:8:44: contacts[2].email: `nobody` is not a mail address: it has no `@`",
                "d.yaml:10:64: contracts[0].recipients.site-contacts[1]: contact `m` belongs to customer `C2`, not to the contract's customer `C1`",
                "d.yaml:13:66: requests[0].requester: contact `m` belongs to customer `C2`, not to the request's customer `C1`",
                "d.yaml:14:78: requests[1].contract: contract `K1` is of customer `C1`, not of the request's customer `C2`",
            ],
            "{lines:#?}"
        );
    }
}
