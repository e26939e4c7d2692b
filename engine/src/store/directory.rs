//! Directory records: import (upsert) and the read queries plugins use.

use relais_sdk::{
    AddressOwner, AlertFormat, ChangeKind, Customer, PartyKind, Reception, Recipient,
    RecipientGroup, Request, RequestType, Settings, User, UserKind,
};
use rusqlite::{OptionalExtension, Row, params};

use super::prelude::*;
use super::{
    Cached, DirectoryRead, DirectoryWrites, Import, Store, StoreError, Tx, from_json, now, to_json,
};
use crate::directory::{DirectoryFile, Existing, Kind, RequestSpec, UserKindSpec};

/// How many records of each kind an import wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct DirectoryCounts {
    /// Companies.
    pub companies: usize,
    /// Customers.
    pub customers: usize,
    /// Contacts.
    pub contacts: usize,
    /// Collaborators.
    pub collaborators: usize,
    /// Users.
    pub users: usize,
    /// Request types.
    pub request_types: usize,
    /// Contracts.
    pub contracts: usize,
    /// Requests.
    pub requests: usize,
}

/// A recipient's columns: name, customer, site, email, reception, fax, alerts.
type RecipientRow = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    String,
);

const SETTING_MESSAGES: &str = "direct-messages-enabled";
const SETTING_NOTIFY: &str = "notify-by-email-default";
const SETTING_TICKET_TAG: &str = "ticket-tag";

impl Import for Store {
    fn import_directory(&mut self, data: &DirectoryFile) -> Result<DirectoryCounts, StoreError> {
        // A savepoint inside a batch of the dispatcher, a transaction alone.
        let tx = self.begin()?;
        let counts = tx.import_directory(data)?;
        tx.commit()?;
        Ok(counts)
    }
}

impl DirectoryWrites for Tx<'_> {
    fn import_directory(&self, data: &DirectoryFile) -> Result<DirectoryCounts, StoreError> {
        let tx = self;
        let stamp = now();
        let set = |key: &str, value: Option<String>| -> Result<(), StoreError> {
            if let Some(value) = value {
                tx.conn.run(
                    "INSERT INTO settings (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    params![key, value.to_string()],
                )?;
            }
            Ok(())
        };
        let settings = &data.settings;
        set(
            SETTING_MESSAGES,
            settings.direct_messages_enabled.map(|on| on.to_string()),
        )?;
        set(
            SETTING_NOTIFY,
            settings.notify_by_email_default.map(|on| on.to_string()),
        )?;
        set(SETTING_TICKET_TAG, settings.ticket_tag.clone())?;
        for company in &data.companies {
            tx.conn.run(
                "INSERT INTO companies (code, name) VALUES (?1, ?2)
                 ON CONFLICT (code) DO UPDATE SET name = excluded.name",
                params![company.code, company.name],
            )?;
        }
        for customer in &data.customers {
            tx.conn.run(
                "INSERT INTO customers (code, name, company, language) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (code) DO UPDATE SET name = excluded.name, company = excluded.company,
                   language = excluded.language",
                params![
                    customer.code,
                    customer.name,
                    customer.company,
                    customer.language
                ],
            )?;
            for site in &customer.sites {
                tx.conn.run(
                    "INSERT INTO sites (customer, code, name, main) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (customer, code) DO UPDATE SET name = excluded.name, main = excluded.main",
                    params![customer.code, site.code, site.name, site.main],
                )?;
            }
            for (kind, format) in customer.alert_formats.entries() {
                tx.conn.run(
                    "INSERT INTO alert_formats (customer, kind, keyword, template) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (customer, kind) DO UPDATE SET keyword = excluded.keyword, template = excluded.template",
                    params![customer.code, kind.as_str(), format.keyword, format.template],
                )?;
            }
        }
        for contact in &data.contacts {
            tx.conn.run(
                "INSERT INTO contacts (id, name, customer, site, email, email2, reception, fax, alerts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, customer = excluded.customer,
                   site = excluded.site, email = excluded.email, email2 = excluded.email2,
                   reception = excluded.reception, fax = excluded.fax, alerts = excluded.alerts",
                params![
                    contact.id,
                    contact.name,
                    contact.customer,
                    contact.site,
                    contact.email,
                    contact.email2,
                    contact.reception.as_str(),
                    contact.fax,
                    to_json(&contact.alerts)?
                ],
            )?;
        }
        for collaborator in &data.collaborators {
            tx.conn.run(
                "INSERT INTO collaborators (id, name, email, email2, alerts) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, email = excluded.email,
                   email2 = excluded.email2, alerts = excluded.alerts",
                params![
                    collaborator.id,
                    collaborator.name,
                    collaborator.email,
                    collaborator.email2,
                    to_json(&collaborator.alerts)?
                ],
            )?;
        }
        for user in &data.users {
            let kind = match user.kind {
                UserKindSpec::Internal => "internal",
                UserKindSpec::Extranet => "extranet",
            };
            tx.conn.run(
                "INSERT INTO users (login, kind, collaborator, contact, rights, catchmail, companies)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (login) DO UPDATE SET kind = excluded.kind, collaborator = excluded.collaborator,
                   contact = excluded.contact, rights = excluded.rights, catchmail = excluded.catchmail,
                   companies = excluded.companies",
                params![
                    user.login,
                    kind,
                    user.collaborator,
                    user.contact,
                    to_json(&user.rights)?,
                    user.catchmail,
                    to_json(&user.companies)?
                ],
            )?;
        }
        for request_type in &data.request_types {
            tx.conn.run(
                "INSERT INTO request_types (code, name, catchmail) VALUES (?1, ?2, ?3)
                 ON CONFLICT (code) DO UPDATE SET name = excluded.name, catchmail = excluded.catchmail",
                params![request_type.code, request_type.name, request_type.catchmail],
            )?;
        }
        for contract in &data.contracts {
            tx.conn.run(
                "INSERT INTO contracts (code, customer, alerts, recipients) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (code) DO UPDATE SET customer = excluded.customer, alerts = excluded.alerts,
                   recipients = excluded.recipients",
                params![
                    contract.code,
                    contract.customer,
                    to_json(&contract.alerts)?,
                    to_json(&contract.recipients)?
                ],
            )?;
        }
        for request in &data.requests {
            upsert_request(&tx.conn, request, &stamp)?;
        }
        Ok(DirectoryCounts {
            companies: data.companies.len(),
            customers: data.customers.len(),
            contacts: data.contacts.len(),
            collaborators: data.collaborators.len(),
            users: data.users.len(),
            request_types: data.request_types.len(),
            contracts: data.contracts.len(),
            requests: data.requests.len(),
        })
    }

    fn save_request(&self, request: &RequestSpec) -> Result<(), StoreError> {
        upsert_request(&self.conn, request, &now())
    }

    fn party(
        &self,
        kind: relais_sdk::PartyKind,
        id: &str,
    ) -> Result<Option<Option<String>>, StoreError> {
        let sql = match kind {
            relais_sdk::PartyKind::Collaborator => "SELECT NULL FROM collaborators WHERE id = ?1",
            relais_sdk::PartyKind::Contact => "SELECT customer FROM contacts WHERE id = ?1",
        };
        Ok(self.conn.one(sql, [id], |r| r.get(0)).optional()?)
    }

    fn address_parties(&self, address: &str) -> Result<Vec<Option<String>>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT NULL FROM collaborators
              WHERE email = ?1 COLLATE NOCASE OR email2 = ?1 COLLATE NOCASE
             UNION ALL
             SELECT customer FROM contacts
              WHERE email = ?1 COLLATE NOCASE OR email2 = ?1 COLLATE NOCASE",
        )?;
        let mut owners: Vec<Option<String>> = statement
            .query_map([address], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        // The gateway's format is the alert plugin's (`{fax}@gw`,
        // `fax-{fax}@gw`...): the local part's digits are the number's.
        let local = address.split('@').next().unwrap_or_default();
        let digits: String = local.chars().filter(char::is_ascii_digit).collect();
        if owners.is_empty() && digits.len() >= 6 {
            let mut faxes = self
                .conn
                .prepare_cached("SELECT customer, fax FROM contacts WHERE fax IS NOT NULL")?;
            let rows =
                faxes.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            for row in rows {
                let (customer, fax) = row?;
                let fax: String = fax.chars().filter(char::is_ascii_digit).collect();
                if fax == digits {
                    owners.push(Some(customer));
                }
            }
        }
        Ok(owners)
    }

    fn contact_email(&self, id: &str) -> Result<Option<String>, StoreError> {
        let email: Option<Option<String>> = self
            .conn
            .one("SELECT email FROM contacts WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(email.flatten().filter(|e| !e.trim().is_empty()))
    }
}

impl Store {
    /// A contact or collaborator as an alert recipient.
    pub(super) fn recipient(
        &self,
        kind: PartyKind,
        id: &str,
    ) -> Result<Option<Recipient>, StoreError> {
        let sql = match kind {
            PartyKind::Contact => {
                "SELECT name, customer, site, email, reception, fax, alerts FROM contacts WHERE id = ?1"
            }
            PartyKind::Collaborator => {
                "SELECT name, NULL, NULL, email, 'email', NULL, alerts FROM collaborators WHERE id = ?1"
            }
        };
        let row: Option<RecipientRow> = self
            .conn()
            .one(sql, [id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })
            .optional()?;
        let Some((name, customer, site, email, reception, fax, alerts)) = row else {
            return Ok(None);
        };
        Ok(Some(Recipient {
            kind,
            id: id.to_string(),
            name,
            customer,
            site,
            email: email.filter(|e: &String| !e.trim().is_empty()),
            reception: match reception.as_str() {
                "fax" => Reception::Fax,
                "none" => Reception::None,
                _ => Reception::Email,
            },
            fax,
            alerts: from_json(&alerts)?,
        }))
    }
}

impl DirectoryRead for Store {
    fn directory_counts(&self) -> Result<DirectoryCounts, StoreError> {
        let count = |table: &str| -> Result<usize, StoreError> {
            let n: i64 = self
                .conn()
                .one(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
            Ok(n as usize)
        };
        Ok(DirectoryCounts {
            companies: count("companies")?,
            customers: count("customers")?,
            contacts: count("contacts")?,
            collaborators: count("collaborators")?,
            users: count("users")?,
            request_types: count("request_types")?,
            contracts: count("contracts")?,
            requests: count("requests")?,
        })
    }

    fn settings(&self) -> Result<Settings, StoreError> {
        let mut settings = Settings::default();
        let conn = self.conn();
        let mut statement = conn.prepare_cached("SELECT key, value FROM settings")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let key: String = row.get(0)?;
            let value: String = row.get(1)?;
            match key.as_str() {
                SETTING_MESSAGES => settings.direct_messages_enabled = value == "true",
                SETTING_NOTIFY => settings.notify_by_email_default = value == "true",
                SETTING_TICKET_TAG => settings.ticket_tag = value,
                _ => {}
            }
        }
        Ok(settings)
    }

    fn request(&self, number: u64) -> Result<Option<Request>, StoreError> {
        Ok(self
            .conn()
            .one(
                "SELECT number, company, customer, type, requester, state, publishable,
                        conversation_locked, contract, subject
                 FROM requests WHERE number = ?1",
                [number as i64],
                request_from_row,
            )
            .optional()?)
    }

    fn request_type(&self, code: &str) -> Result<Option<RequestType>, StoreError> {
        Ok(self
            .conn()
            .one(
                "SELECT code, catchmail FROM request_types WHERE code = ?1",
                [code],
                |row| {
                    Ok(RequestType {
                        code: row.get(0)?,
                        catchmail: row.get(1)?,
                    })
                },
            )
            .optional()?)
    }

    fn request_type_codes(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached("SELECT code FROM request_types ORDER BY code")?;
        let codes = statement.query_map([], |row| row.get(0))?;
        Ok(codes.collect::<Result<_, _>>()?)
    }

    fn contract_details(
        &self,
        code: &str,
    ) -> Result<Option<relais_sdk::ContractDetails>, StoreError> {
        let row: Option<(String, String, String, String)> = self
            .conn()
            .one(
                "SELECT code, customer, alerts, recipients FROM contracts WHERE code = ?1",
                [code],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((code, customer, alerts, recipients)) = row else {
            return Ok(None);
        };
        let alerts: crate::directory::ContractAlerts = from_json(&alerts)?;
        let recipients: crate::directory::Recipients = from_json(&recipients)?;
        let enabled = [
            (ChangeKind::Opened, alerts.opened),
            (ChangeKind::Resolved, alerts.resolved),
            (ChangeKind::Closed, alerts.closed),
            (ChangeKind::StateChanged, alerts.state_changed),
        ];
        let groups = [
            (
                "contract-contacts",
                PartyKind::Contact,
                recipients.contract_contacts,
            ),
            (
                "site-contacts",
                PartyKind::Contact,
                recipients.site_contacts,
            ),
            (
                "customer-contacts",
                PartyKind::Contact,
                recipients.customer_contacts,
            ),
            (
                "product-contacts",
                PartyKind::Contact,
                recipients.product_contacts,
            ),
            (
                "product-collaborators",
                PartyKind::Collaborator,
                recipients.product_collaborators,
            ),
            (
                "service-contacts",
                PartyKind::Contact,
                recipients.service_contacts,
            ),
        ];
        let mut out = Vec::with_capacity(groups.len());
        for (group, kind, ids) in groups {
            let mut members = Vec::with_capacity(ids.len());
            for id in &ids {
                if let Some(member) = self.recipient(kind, id)? {
                    members.push(member);
                }
            }
            out.push(RecipientGroup {
                group: group.to_string(),
                members,
            });
        }
        Ok(Some(relais_sdk::ContractDetails {
            code,
            customer,
            alerts: enabled
                .into_iter()
                .filter(|(_, on)| *on)
                .map(|(kind, _)| kind)
                .collect(),
            recipients: out,
        }))
    }

    fn customer(&self, code: &str) -> Result<Option<Customer>, StoreError> {
        let conn = self.conn();
        let found: Option<Customer> = conn
            .one(
                "SELECT c.code, c.name, c.company, c.language,
                        (SELECT s.code FROM sites AS s WHERE s.customer = c.code AND s.main = 1)
                 FROM customers AS c WHERE c.code = ?1",
                [code],
                |r| {
                    Ok(Customer {
                        code: r.get(0)?,
                        name: r.get(1)?,
                        company: r.get(2)?,
                        language: r.get(3)?,
                        main_site: r.get(4)?,
                        alert_formats: Vec::new(),
                    })
                },
            )
            .optional()?;
        let Some(mut customer) = found else {
            return Ok(None);
        };
        let mut statement = conn.prepare_cached(
            "SELECT kind, keyword, template FROM alert_formats WHERE customer = ?1 ORDER BY kind",
        )?;
        let mut rows = statement.query([&customer.code])?;
        while let Some(row) = rows.next()? {
            let kind: String = row.get(0)?;
            let Some(kind) = ChangeKind::ALL.into_iter().find(|k| k.as_str() == kind) else {
                continue;
            };
            customer.alert_formats.push(AlertFormat {
                kind,
                keyword: row.get(1)?,
                template: row.get(2)?,
            });
        }
        Ok(Some(customer))
    }

    fn alert_templates(&self) -> Result<Vec<(String, Option<String>, String)>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT f.customer, c.language, f.template FROM alert_formats AS f
             JOIN customers AS c ON c.code = f.customer ORDER BY f.customer, f.kind",
        )?;
        let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn address_owners(&self, email: &str) -> Result<Vec<AddressOwner>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT o.kind, o.id, o.name, o.customer,
                    u.login, u.kind, u.rights, u.catchmail, u.companies
             FROM (SELECT 0 AS kind, id, name, NULL AS customer FROM collaborators
                   WHERE email = ?1 COLLATE NOCASE OR email2 = ?1 COLLATE NOCASE
                   UNION ALL
                   SELECT 1, id, name, customer FROM contacts
                   WHERE email = ?1 COLLATE NOCASE OR email2 = ?1 COLLATE NOCASE) AS o
             LEFT JOIN users AS u
               ON (o.kind = 0 AND u.collaborator = o.id) OR (o.kind = 1 AND u.contact = o.id)
             ORDER BY o.kind, o.id, u.login",
        )?;
        let mut rows = statement.query([email.trim()])?;
        let mut owners: Vec<AddressOwner> = Vec::new();
        while let Some(row) = rows.next()? {
            let kind = if row.get::<_, i64>(0)? == 0 {
                PartyKind::Collaborator
            } else {
                PartyKind::Contact
            };
            let id: String = row.get(1)?;
            let same = owners
                .last()
                .is_some_and(|last| last.kind == kind && last.id == id);
            if !same {
                owners.push(AddressOwner {
                    kind,
                    id,
                    name: row.get(2)?,
                    customer: row.get(3)?,
                    users: Vec::new(),
                });
            }
            let Some(login) = row.get::<_, Option<String>>(4)? else {
                continue;
            };
            let kind: String = row.get(5)?;
            let user = User {
                login,
                kind: if kind == "internal" {
                    UserKind::Internal
                } else {
                    UserKind::Extranet
                },
                rights: from_json(&row.get::<_, String>(6)?)?,
                catchmail: row.get(7)?,
                companies: from_json(&row.get::<_, String>(8)?)?,
            };
            if let Some(owner) = owners.last_mut() {
                owner.users.push(user);
            }
        }
        Ok(owners)
    }

    fn contact_customer(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .one("SELECT customer FROM contacts WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?)
    }

    fn contact_email(&self, id: &str) -> Result<Option<String>, StoreError> {
        let email: Option<Option<String>> = self
            .conn()
            .one("SELECT email FROM contacts WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(email.flatten().filter(|e| !e.trim().is_empty()))
    }

    fn contract_customer(&self, code: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .one(
                "SELECT customer FROM contracts WHERE code = ?1",
                [code],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn exists_in(&self, kind: Kind, id: &str) -> Result<bool, StoreError> {
        let sql = match kind {
            Kind::Company => "SELECT 1 FROM companies WHERE code = ?1",
            Kind::Customer => "SELECT 1 FROM customers WHERE code = ?1",
            Kind::Contact => "SELECT 1 FROM contacts WHERE id = ?1",
            Kind::Collaborator => "SELECT 1 FROM collaborators WHERE id = ?1",
            Kind::RequestType => "SELECT 1 FROM request_types WHERE code = ?1",
            Kind::Contract => "SELECT 1 FROM contracts WHERE code = ?1",
        };
        Ok(self.conn().one(sql, [id], |_| Ok(())).optional()?.is_some())
    }
}

/// Reference checks of an import look at the stored directory through this.
impl Existing for Store {
    fn exists(&self, kind: Kind, id: &str) -> bool {
        // A store error here surfaces again, with context, when the import
        // writes; treating the record as missing only adds a diagnostic.
        self.exists_in(kind, id).unwrap_or(false)
    }

    fn site_exists(&self, customer: &str, site: &str) -> bool {
        self.conn()
            .one(
                "SELECT 1 FROM sites WHERE customer = ?1 AND code = ?2",
                [customer, site],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
            .unwrap_or(false)
    }

    fn stored_customer_of(&self, kind: Kind, id: &str) -> Option<String> {
        match kind {
            Kind::Contact => self.contact_customer(id).ok().flatten(),
            Kind::Contract => self.contract_customer(id).ok().flatten(),
            _ => None,
        }
    }
}

/// Creates or replaces a request; `updated_at` moves only when a field
/// changed.
fn upsert_request(
    conn: &rusqlite::Connection,
    request: &RequestSpec,
    stamp: &str,
) -> Result<(), StoreError> {
    conn.run(
        "INSERT INTO requests (number, company, customer, type, requester, state, publishable,
           conversation_locked, contract, subject, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)
         ON CONFLICT (number) DO UPDATE SET company = excluded.company, customer = excluded.customer,
           type = excluded.type, requester = excluded.requester, state = excluded.state,
           publishable = excluded.publishable, conversation_locked = excluded.conversation_locked,
           contract = excluded.contract, subject = excluded.subject,
           updated_at = CASE WHEN requests.state IS excluded.state AND requests.company IS excluded.company
               AND requests.customer IS excluded.customer AND requests.type IS excluded.type
               AND requests.requester IS excluded.requester AND requests.publishable IS excluded.publishable
               AND requests.conversation_locked IS excluded.conversation_locked
               AND requests.contract IS excluded.contract AND requests.subject IS excluded.subject
             THEN requests.updated_at ELSE excluded.updated_at END",
        params![
            request.number as i64,
            request.company,
            request.customer,
            request.request_type,
            request.requester,
            request.state,
            request.publishable,
            request.conversation_locked,
            request.contract,
            request.subject,
            stamp
        ],
    )?;
    Ok(())
}

pub(super) fn request_from_row(row: &Row<'_>) -> rusqlite::Result<Request> {
    Ok(Request {
        number: row.get::<_, i64>(0)? as u64,
        company: row.get(1)?,
        customer: row.get(2)?,
        request_type: row.get(3)?,
        requester: row.get(4)?,
        state: row.get(5)?,
        publishable: row.get(6)?,
        conversation_locked: row.get(7)?,
        contract: row.get(8)?,
        subject: row.get(9)?,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const SAMPLE: &str = "companies: [ { code: A, name: Acme } ]\n\
        customers: [ { code: C1, name: Dupont, company: A, sites: [ { code: MAIN, main: true } ] } ]\n\
        contacts: [ { id: ct1, name: Jeanne, customer: C1, site: MAIN, email: Jeanne@Dupont.example } ]\n\
        users: [ { login: j, kind: extranet, contact: ct1, rights: [147012], catchmail: true } ]\n\
        request-types: [ { code: INC, catchmail: true } ]\n\
        requests: [ { number: 7, company: A, customer: C1, type: INC, requester: ct1, state: open } ]\n";

    fn import(store: &mut Store, text: &str) -> DirectoryCounts {
        let data = crate::directory::parse(Path::new("d.yaml"), text, store).expect("valid");
        store.import_directory(&data).expect("import")
    }

    #[test]
    fn import_twice_is_idempotent() {
        let mut store = Store::open_in_memory().expect("store");
        import(&mut store, SAMPLE);
        let first = store.directory_counts().expect("counts");
        import(&mut store, SAMPLE);
        assert_eq!(store.directory_counts().expect("counts"), first);
        assert_eq!(first.requests, 1);
    }

    #[test]
    fn owners_are_found_case_insensitively_with_their_users() {
        let mut store = Store::open_in_memory().expect("store");
        import(&mut store, SAMPLE);
        let owners = store
            .address_owners("jeanne@dupont.EXAMPLE")
            .expect("query");
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].id, "ct1");
        assert_eq!(owners[0].users[0].rights, vec![147012]);
    }

    #[test]
    fn a_later_file_may_reference_stored_records() {
        let mut store = Store::open_in_memory().expect("store");
        import(&mut store, SAMPLE);
        import(
            &mut store,
            "requests: [ { number: 8, company: A, customer: C1, type: INC, state: open } ]\n",
        );
        assert_eq!(
            store.request(8).expect("query").map(|r| r.customer),
            Some("C1".to_string())
        );
    }
}
