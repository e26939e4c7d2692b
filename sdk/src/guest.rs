//! The guest side of the WIT contract, compiled for `wasm32` only: the
//! bindings `wit-bindgen` generates from `wit/relais.wit`, the conversions
//! between their types and the SDK's, a [`Host`] that calls the WIT imports,
//! and the exports [`export_plugin!`](crate::export_plugin) wires up.
//!
//! Nothing here is meant to be named by plugin authors: implement
//! [`Plugin`] and call [`export_plugin!`](crate::export_plugin).
// The generated bindings and the exports they define are `unsafe` by nature
// (raw pointers across the component ABI); the SDK's own code here is safe.
#![allow(unsafe_code)]
#![allow(missing_docs)]

use std::marker::PhantomData;

use crate::{
    Address, AddressOwner, AlertFormat, Attachment, Author, ChangeKind, Contract, ContractDetails,
    ContractEvent, Customer, Effect, Event, ExchangeSummary, Host, HostError, Level, Mail,
    MessageSource, Metadata, PartyKind, Plugin, PluginError, Reception, Recipient, RecipientGroup,
    Rendered, Request, RequestActivity, RequestQuery, RequestSaved, RequestType, ScheduleFired,
    Settings, Side, ThreadMail, User, UserKind,
};

/// The bindings of world `relais:plugin/plugin`.
pub mod bindings {
    wit_bindgen::generate!({
        world: "plugin",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "__relais_export_wit",
        runtime_path: "relais_sdk::guest::wit_bindgen::rt",
    });
}

/// The runtime support the generated exports refer to, re-exported so that
/// plugins need no direct dependency on `wit-bindgen`.
pub use wit_bindgen;

use bindings::relais::plugin::types as wit;

/// The exports of a plugin `P`: what the `export_plugin!` macro hands to
/// the generated `export!` macro.
#[derive(Debug)]
pub struct Export<P>(PhantomData<P>);

impl<P: Plugin> bindings::Guest for Export<P> {
    fn metadata() -> wit::Metadata {
        P::metadata().into()
    }
}

use bindings::exports::relais::plugin as handlers;

impl<P: Plugin> handlers::on_mail_received::Guest for Export<P> {
    fn handle(mail: wit::Mail, config: String) -> Result<Vec<wit::Effect>, String> {
        handle::<P>(Event::MailReceived(mail.into()), &config)
    }
}

impl<P: Plugin> handlers::on_request_saved::Guest for Export<P> {
    fn handle(saved: wit::RequestSaved, config: String) -> Result<Vec<wit::Effect>, String> {
        let saved = RequestSaved {
            before: saved.before.map(Request::from),
            after: saved.after.into(),
            changes: saved.changes.into_iter().map(ChangeKind::from).collect(),
        };
        handle::<P>(Event::RequestSaved(saved), &config)
    }
}

impl<P: Plugin> handlers::on_contract_event::Guest for Export<P> {
    fn handle(event: wit::ContractEvent, config: String) -> Result<Vec<wit::Effect>, String> {
        let event = ContractEvent {
            kind: event.kind,
            contract: Contract {
                code: event.contract.code,
                customer: event.contract.customer,
            },
        };
        handle::<P>(Event::ContractEvent(event), &config)
    }
}

impl<P: Plugin> handlers::on_schedule::Guest for Export<P> {
    fn handle(fired: wit::ScheduleFired, config: String) -> Result<Vec<wit::Effect>, String> {
        let fired = ScheduleFired {
            rule: fired.rule,
            fired_at: fired.fired_at,
        };
        handle::<P>(Event::Schedule(fired), &config)
    }
}

/// Every handler: the rule's config parsed, then [`Plugin::handle`]. The
/// host calls only the handlers of the triggers the plugin declares in
/// its metadata.
fn handle<P: Plugin>(event: Event, config: &str) -> Result<Vec<wit::Effect>, String> {
    let config: serde_json::Value = serde_json::from_str(config)
        .map_err(|error| format!("invalid rule config (not JSON): {error}"))?;
    match P::handle(&event, &config, &WitHost) {
        Ok(effects) => Ok(effects.into_iter().map(wit::Effect::from).collect()),
        Err(PluginError::Plugin(message)) => Err(message),
        // `HostError` displays as `host error: ...`, which tells the host
        // the refusal is a fault of its own, not the plugin's decision.
        Err(PluginError::Host(error)) => Err(error.to_string()),
    }
}

/// The host, reached through the WIT imports.
#[derive(Debug, Clone, Copy)]
pub struct WitHost;

impl Host for WitHost {
    fn request(&self, number: u64) -> Result<Option<Request>, HostError> {
        bindings::relais::plugin::requests::get_request(number)
            .map(|found| found.map(Request::from))
            .map_err(HostError)
    }

    fn request_type(&self, code: &str) -> Result<Option<RequestType>, HostError> {
        bindings::relais::plugin::requests::get_request_type(code)
            .map(|found| found.map(RequestType::from))
            .map_err(HostError)
    }

    fn find_requests(&self, query: &RequestQuery) -> Result<Vec<RequestActivity>, HostError> {
        let query = wit::RequestQuery {
            states: query.states.clone(),
            idle_since: query.idle_since.clone(),
            limit: query.limit,
        };
        bindings::relais::plugin::requests::find_requests(&query)
            .map(|found| found.into_iter().map(RequestActivity::from).collect())
            .map_err(HostError)
    }

    fn address_owners(&self, email: &str) -> Result<Vec<AddressOwner>, HostError> {
        bindings::relais::plugin::directory::address_owners(email)
            .map(|owners| owners.into_iter().map(AddressOwner::from).collect())
            .map_err(HostError)
    }

    fn contact(&self, id: &str) -> Result<Option<Recipient>, HostError> {
        bindings::relais::plugin::directory::get_contact(id)
            .map(|found| found.map(Recipient::from))
            .map_err(HostError)
    }

    fn settings(&self) -> Result<Settings, HostError> {
        bindings::relais::plugin::settings::get_settings()
            .map(Settings::from)
            .map_err(HostError)
    }

    fn contract(&self, code: &str) -> Result<Option<ContractDetails>, HostError> {
        bindings::relais::plugin::contracts::get_contract(code)
            .map(|found| found.map(ContractDetails::from))
            .map_err(HostError)
    }

    fn customer(&self, code: &str) -> Result<Option<Customer>, HostError> {
        bindings::relais::plugin::contracts::get_customer(code)
            .map(|found| found.map(Customer::from))
            .map_err(HostError)
    }

    fn render(
        &self,
        name: &str,
        language: Option<&str>,
        context: &serde_json::Value,
    ) -> Result<Rendered, HostError> {
        bindings::relais::plugin::templates::render(name, language, &context.to_string())
            .map(|rendered| Rendered {
                subject: rendered.subject,
                body: rendered.body,
            })
            .map_err(HostError)
    }

    fn thread(&self, message_id: &str) -> Result<Vec<ThreadMail>, HostError> {
        bindings::relais::plugin::mail::thread(message_id)
            .map(|mails| mails.into_iter().map(ThreadMail::from).collect())
            .map_err(HostError)
    }

    fn linked_ticket(&self, message_id: &str) -> Result<Option<u64>, HostError> {
        bindings::relais::plugin::mail::linked_ticket(message_id).map_err(HostError)
    }

    fn log(&self, level: Level, message: &str) {
        use bindings::relais::plugin::log;
        let level = match level {
            Level::Debug => log::Level::Debug,
            Level::Info => log::Level::Info,
            Level::Warn => log::Level::Warn,
            Level::Error => log::Level::Error,
        };
        log::log(level, message);
    }
}

// --- WIT -> SDK: the event and query results ---------------------------------

impl From<wit::Address> for Address {
    fn from(address: wit::Address) -> Self {
        Address {
            name: address.name,
            email: address.email,
        }
    }
}

fn addresses(list: Vec<wit::Address>) -> Vec<Address> {
    list.into_iter().map(Address::from).collect()
}

impl From<wit::Mail> for Mail {
    fn from(mail: wit::Mail) -> Self {
        Mail {
            account: mail.account,
            message_id: mail.message_id,
            subject: mail.subject,
            from: mail.from.map(Address::from),
            return_path: mail.return_path,
            to: addresses(mail.to),
            cc: addresses(mail.cc),
            reply_to: addresses(mail.reply_to),
            date: mail.date,
            in_reply_to: mail.in_reply_to,
            references: mail.references,
            auto_submitted: mail.auto_submitted,
            precedence: mail.precedence,
            list_headers: mail.list_headers,
            x_loop: mail.x_loop,
            text: mail.text,
            text_truncated: mail.text_truncated,
            attachments: mail
                .attachments
                .into_iter()
                .map(|attachment| Attachment {
                    filename: attachment.filename,
                    content_type: attachment.content_type,
                    size: attachment.size,
                    sha256: attachment.sha256,
                })
                .collect(),
            size: mail.size,
            authentication: crate::SenderAuthentication {
                result: match mail.authentication.result {
                    wit::AuthResult::Pass => crate::AuthResult::Pass,
                    wit::AuthResult::Fail => crate::AuthResult::Fail,
                    wit::AuthResult::None => crate::AuthResult::None,
                },
                domain: mail.authentication.domain,
                method: mail.authentication.method,
                authority: mail.authentication.authority,
                reason: mail.authentication.reason,
            },
        }
    }
}

impl From<wit::Request> for Request {
    fn from(request: wit::Request) -> Self {
        Request {
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

impl From<wit::RequestActivity> for RequestActivity {
    fn from(activity: wit::RequestActivity) -> Self {
        let exchanges = activity.exchanges;
        RequestActivity {
            request: activity.request.into(),
            last_activity: activity.last_activity,
            exchanges: ExchangeSummary {
                count: exchanges.count,
                last_side: exchanges.last_side.map(|side| match side {
                    wit::Side::Customer => Side::Customer,
                    wit::Side::Staff => Side::Staff,
                }),
                last_at: exchanges.last_at,
                reminders: exchanges.reminders,
            },
        }
    }
}

impl From<wit::RequestType> for RequestType {
    fn from(request_type: wit::RequestType) -> Self {
        RequestType {
            code: request_type.code,
            catchmail: request_type.catchmail,
        }
    }
}

impl From<wit::ChangeKind> for ChangeKind {
    fn from(kind: wit::ChangeKind) -> Self {
        match kind {
            wit::ChangeKind::Opened => ChangeKind::Opened,
            wit::ChangeKind::Resolved => ChangeKind::Resolved,
            wit::ChangeKind::Closed => ChangeKind::Closed,
            wit::ChangeKind::StateChanged => ChangeKind::StateChanged,
        }
    }
}

impl From<wit::Settings> for Settings {
    fn from(settings: wit::Settings) -> Self {
        Settings {
            direct_messages_enabled: settings.direct_messages_enabled,
            notify_by_email_default: settings.notify_by_email_default,
            ticket_tag: settings.ticket_tag,
        }
    }
}

impl From<wit::PartyKind> for PartyKind {
    fn from(kind: wit::PartyKind) -> Self {
        match kind {
            wit::PartyKind::Collaborator => PartyKind::Collaborator,
            wit::PartyKind::Contact => PartyKind::Contact,
        }
    }
}

impl From<wit::AddressOwner> for AddressOwner {
    fn from(owner: wit::AddressOwner) -> Self {
        AddressOwner {
            kind: owner.kind.into(),
            id: owner.id,
            name: owner.name,
            customer: owner.customer,
            users: owner
                .users
                .into_iter()
                .map(|user| User {
                    login: user.login,
                    kind: match user.kind {
                        wit::UserKind::Internal => UserKind::Internal,
                        wit::UserKind::Extranet => UserKind::Extranet,
                    },
                    rights: user.rights,
                    catchmail: user.catchmail,
                    companies: user.companies,
                })
                .collect(),
        }
    }
}

impl From<wit::ContractDetails> for ContractDetails {
    fn from(contract: wit::ContractDetails) -> Self {
        ContractDetails {
            code: contract.code,
            customer: contract.customer,
            alerts: contract.alerts.into_iter().map(ChangeKind::from).collect(),
            recipients: contract
                .recipients
                .into_iter()
                .map(|group| RecipientGroup {
                    group: group.group,
                    members: group.members.into_iter().map(Recipient::from).collect(),
                })
                .collect(),
        }
    }
}

impl From<wit::Recipient> for Recipient {
    fn from(recipient: wit::Recipient) -> Self {
        Recipient {
            kind: recipient.kind.into(),
            id: recipient.id,
            name: recipient.name,
            customer: recipient.customer,
            site: recipient.site,
            email: recipient.email,
            reception: match recipient.reception {
                wit::Reception::Email => Reception::Email,
                wit::Reception::Fax => Reception::Fax,
                wit::Reception::None => Reception::None,
            },
            fax: recipient.fax,
            alerts: recipient.alerts.into_iter().map(ChangeKind::from).collect(),
        }
    }
}

impl From<wit::Customer> for Customer {
    fn from(customer: wit::Customer) -> Self {
        Customer {
            code: customer.code,
            name: customer.name,
            company: customer.company,
            main_site: customer.main_site,
            language: customer.language,
            alert_formats: customer
                .alert_formats
                .into_iter()
                .map(|format| AlertFormat {
                    kind: format.kind.into(),
                    keyword: format.keyword,
                    template: format.template,
                })
                .collect(),
        }
    }
}

impl From<wit::ThreadMail> for ThreadMail {
    fn from(mail: wit::ThreadMail) -> Self {
        ThreadMail {
            message_id: mail.message_id,
            subject: mail.subject,
            sender: mail.sender,
            in_reply_to: mail.in_reply_to,
            references: mail.references,
            ticket: mail.ticket,
            outgoing: mail.outgoing,
        }
    }
}

// --- SDK -> WIT: effects and metadata ----------------------------------------

impl From<PartyKind> for wit::PartyKind {
    fn from(kind: PartyKind) -> Self {
        match kind {
            PartyKind::Collaborator => wit::PartyKind::Collaborator,
            PartyKind::Contact => wit::PartyKind::Contact,
        }
    }
}

impl From<Effect> for wit::Effect {
    fn from(effect: Effect) -> Self {
        match effect {
            Effect::PostMessage {
                request,
                author: Author { kind, id },
                side,
                source,
                body,
                notify_by_email,
            } => wit::Effect::PostMessage(wit::PostMessage {
                request,
                author: wit::Author {
                    kind: kind.into(),
                    id,
                },
                side: match side {
                    Side::Customer => wit::Side::Customer,
                    Side::Staff => wit::Side::Staff,
                },
                source: match source {
                    MessageSource::Portal => wit::MessageSource::Portal,
                    MessageSource::Desktop => wit::MessageSource::Desktop,
                    MessageSource::Catchmail => wit::MessageSource::Catchmail,
                    MessageSource::Plugin => wit::MessageSource::Plugin,
                },
                body,
                notify_by_email,
            }),
            Effect::SendMail {
                to,
                subject,
                body,
                request,
                exchange,
            } => wit::Effect::SendMail(wit::SendMail {
                to,
                subject,
                body,
                request,
                exchange,
            }),
            Effect::ReplyFailure {
                to,
                reason,
                message,
                in_reply_to,
                request,
            } => wit::Effect::ReplyFailure(wit::ReplyFailure {
                to,
                reason,
                message,
                in_reply_to,
                request,
            }),
            Effect::CreateTicket {
                customer,
                company,
                request_type,
                requester,
                subject,
                link_mail,
            } => wit::Effect::CreateTicket(wit::CreateTicket {
                customer,
                company,
                request_type,
                requester,
                subject,
                link_mail,
            }),
            Effect::LinkMail {
                message_id,
                request,
            } => wit::Effect::LinkMail(wit::LinkMail {
                message_id,
                request,
            }),
            Effect::ReopenTicket { request, state } => {
                wit::Effect::ReopenTicket(wit::ReopenTicket { request, state })
            }
        }
    }
}

impl From<Metadata> for wit::Metadata {
    fn from(metadata: Metadata) -> Self {
        wit::Metadata {
            name: metadata.name,
            version: metadata.version,
            wit_version: metadata.wit_version,
            capabilities: metadata.capabilities,
            triggers: metadata.triggers,
            config_schema: metadata.config_schema,
        }
    }
}
