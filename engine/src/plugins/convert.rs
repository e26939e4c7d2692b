//! Conversions between the SDK's types and the WIT bindings' types: query
//! results go to the guest, effects and metadata come back. Events need
//! none: the SDK's event types lower themselves (its `host` feature).

use relais_sdk as sdk;

use super::wasm::bindings::relais::plugin::types as wit;

/// A query answer: a request.
pub fn request_out(r: sdk::Request) -> wit::Request {
    wit::Request {
        number: r.number,
        company: r.company,
        customer: r.customer,
        request_type: r.request_type,
        requester: r.requester,
        state: r.state,
        publishable: r.publishable,
        conversation_locked: r.conversation_locked,
        contract: r.contract,
        subject: r.subject,
    }
}

pub fn change_kind(kind: sdk::ChangeKind) -> wit::ChangeKind {
    match kind {
        sdk::ChangeKind::Opened => wit::ChangeKind::Opened,
        sdk::ChangeKind::Resolved => wit::ChangeKind::Resolved,
        sdk::ChangeKind::Closed => wit::ChangeKind::Closed,
        sdk::ChangeKind::StateChanged => wit::ChangeKind::StateChanged,
    }
}

fn party_kind(kind: sdk::PartyKind) -> wit::PartyKind {
    match kind {
        sdk::PartyKind::Collaborator => wit::PartyKind::Collaborator,
        sdk::PartyKind::Contact => wit::PartyKind::Contact,
    }
}

fn party_kind_back(kind: wit::PartyKind) -> sdk::PartyKind {
    match kind {
        wit::PartyKind::Collaborator => sdk::PartyKind::Collaborator,
        wit::PartyKind::Contact => sdk::PartyKind::Contact,
    }
}

/// A query argument: which requests to find.
pub fn request_query(q: wit::RequestQuery) -> sdk::RequestQuery {
    sdk::RequestQuery {
        states: q.states,
        idle_since: q.idle_since,
        limit: q.limit,
    }
}

/// A query answer: a request with its activity.
pub fn request_activity(a: sdk::RequestActivity) -> wit::RequestActivity {
    wit::RequestActivity {
        request: request_out(a.request),
        last_activity: a.last_activity,
        exchanges: wit::ExchangeSummary {
            count: a.exchanges.count,
            last_side: a.exchanges.last_side.map(|side| match side {
                sdk::Side::Customer => wit::Side::Customer,
                sdk::Side::Staff => wit::Side::Staff,
            }),
            last_at: a.exchanges.last_at,
            reminders: a.exchanges.reminders,
        },
    }
}

/// A query answer: a request type.
pub fn request_type(t: sdk::RequestType) -> wit::RequestType {
    wit::RequestType {
        code: t.code,
        catchmail: t.catchmail,
    }
}

/// A query answer: the owners of an address.
pub fn address_owner(o: sdk::AddressOwner) -> wit::AddressOwner {
    wit::AddressOwner {
        kind: party_kind(o.kind),
        id: o.id,
        name: o.name,
        customer: o.customer,
        users: o
            .users
            .into_iter()
            .map(|u| wit::User {
                login: u.login,
                kind: match u.kind {
                    sdk::UserKind::Internal => wit::UserKind::Internal,
                    sdk::UserKind::Extranet => wit::UserKind::Extranet,
                },
                rights: u.rights,
                catchmail: u.catchmail,
                companies: u.companies,
            })
            .collect(),
    }
}

/// A query answer: the settings.
pub fn settings(s: sdk::Settings) -> wit::Settings {
    wit::Settings {
        direct_messages_enabled: s.direct_messages_enabled,
        notify_by_email_default: s.notify_by_email_default,
        ticket_tag: s.ticket_tag,
    }
}

/// A query answer: a contract.
pub fn contract(c: sdk::ContractDetails) -> wit::ContractDetails {
    wit::ContractDetails {
        code: c.code,
        customer: c.customer,
        alerts: c.alerts.into_iter().map(change_kind).collect(),
        recipients: c
            .recipients
            .into_iter()
            .map(|g| wit::RecipientGroup {
                group: g.group,
                members: g.members.into_iter().map(recipient).collect(),
            })
            .collect(),
    }
}

/// A query answer: a contact, or a contract's recipient.
pub fn recipient(r: sdk::Recipient) -> wit::Recipient {
    wit::Recipient {
        kind: party_kind(r.kind),
        id: r.id,
        name: r.name,
        customer: r.customer,
        site: r.site,
        email: r.email,
        reception: match r.reception {
            sdk::Reception::Email => wit::Reception::Email,
            sdk::Reception::Fax => wit::Reception::Fax,
            sdk::Reception::None => wit::Reception::None,
        },
        fax: r.fax,
        alerts: r.alerts.into_iter().map(change_kind).collect(),
    }
}

/// A query answer: a customer.
pub fn customer(c: sdk::Customer) -> wit::Customer {
    wit::Customer {
        code: c.code,
        name: c.name,
        company: c.company,
        main_site: c.main_site,
        language: c.language,
        alert_formats: c
            .alert_formats
            .into_iter()
            .map(|f| wit::AlertFormat {
                kind: change_kind(f.kind),
                keyword: f.keyword,
                template: f.template,
            })
            .collect(),
    }
}

/// A query answer: a rendered template.
pub fn rendered(r: sdk::Rendered) -> wit::Rendered {
    wit::Rendered {
        subject: r.subject,
        body: r.body,
    }
}

/// A query answer: a thread's mail.
pub fn thread_mail(m: sdk::ThreadMail) -> wit::ThreadMail {
    wit::ThreadMail {
        message_id: m.message_id,
        subject: m.subject,
        sender: m.sender,
        in_reply_to: m.in_reply_to,
        references: m.references,
        ticket: m.ticket,
        outgoing: m.outgoing,
    }
}

/// An effect the guest returned.
pub fn effect(effect: wit::Effect) -> sdk::Effect {
    match effect {
        wit::Effect::PostMessage(p) => sdk::Effect::PostMessage {
            request: p.request,
            author: sdk::Author {
                kind: party_kind_back(p.author.kind),
                id: p.author.id,
            },
            side: match p.side {
                wit::Side::Customer => sdk::Side::Customer,
                wit::Side::Staff => sdk::Side::Staff,
            },
            source: match p.source {
                wit::MessageSource::Portal => sdk::MessageSource::Portal,
                wit::MessageSource::Desktop => sdk::MessageSource::Desktop,
                wit::MessageSource::Catchmail => sdk::MessageSource::Catchmail,
                wit::MessageSource::Plugin => sdk::MessageSource::Plugin,
            },
            body: p.body,
            notify_by_email: p.notify_by_email,
        },
        wit::Effect::SendMail(m) => sdk::Effect::SendMail {
            to: m.to,
            subject: m.subject,
            body: m.body,
            request: m.request,
            exchange: m.exchange,
        },
        wit::Effect::ReplyFailure(r) => sdk::Effect::ReplyFailure {
            to: r.to,
            reason: r.reason,
            message: r.message,
            in_reply_to: r.in_reply_to,
            request: r.request,
        },
        wit::Effect::CreateTicket(t) => sdk::Effect::CreateTicket {
            customer: t.customer,
            company: t.company,
            request_type: t.request_type,
            requester: t.requester,
            subject: t.subject,
            link_mail: t.link_mail,
        },
        wit::Effect::LinkMail(l) => sdk::Effect::LinkMail {
            message_id: l.message_id,
            request: l.request,
        },
        wit::Effect::ReopenTicket(r) => sdk::Effect::ReopenTicket {
            request: r.request,
            state: r.state,
        },
    }
}

/// The metadata the guest declared.
pub fn metadata(m: wit::Metadata) -> sdk::Metadata {
    sdk::Metadata {
        name: m.name,
        version: m.version,
        wit_version: m.wit_version,
        capabilities: m.capabilities,
        triggers: m.triggers,
        config_schema: m.config_schema,
    }
}
