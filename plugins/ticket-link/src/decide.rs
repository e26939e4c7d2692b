//! The decision for one event: which ticket the mail goes on, if any.

use relais_sdk::{
    Effect, Event, Host, Level, Mail, PluginError, Request, SubjectPrefixes, config_error,
};
use serde_json::Value;

use crate::NAME;
use crate::config::{ClosedTicket, Config, Policy};
use crate::find::{Found, Via, by_tag, by_thread};
use crate::sender::Sender;
use crate::subject::{Tags, ticket_subject};

/// The subject of a ticket whose mail has none left once tags and
/// prefixes are stripped.
const NO_SUBJECT: &str = "(no subject)";

/// Decides what to do with one event, given the rule's config.
///
/// Returns no effect for events other than a received mail. For a mail:
/// a [`Effect::LinkMail`] to the ticket its tag or thread names (preceded
/// by a [`Effect::ReopenTicket`] when that ticket is closed and
/// `closed-ticket: reopen`), or a [`Effect::CreateTicket`] that links it,
/// or nothing when it is left unlinked. Every step logs what it found and
/// why it decided. See the crate docs for the steps and their order.
///
/// `host` is generic (a `&dyn Host` will do) so that the WebAssembly
/// component only imports the queries called here; see
/// [`Plugin::handle`](relais_sdk::Plugin::handle).
///
/// # Errors
///
/// [`PluginError::Plugin`] when `config` is invalid (including a
/// `request-type` the host does not know, when a ticket is to be created),
/// when the desk's ticket tag setting is invalid, or when the sender's
/// contact belongs to a customer the host does not know;
/// [`PluginError::Host`] when a host query fails.
pub fn decide(
    event: &Event,
    config: &Value,
    host: &(impl Host + ?Sized),
) -> Result<Vec<Effect>, PluginError> {
    let config = Config::from_value(config)?;
    let Event::MailReceived(mail) = event else {
        host.log(
            Level::Debug,
            &format!(
                "ignored a {} event: ticket linking only handles mail-received",
                event.trigger()
            ),
        );
        return Ok(Vec::new());
    };
    let settings = host.settings()?;
    let tags = Tags::new(&settings.ticket_tag, config.bare_tag, host)?;
    let prefixes = SubjectPrefixes::new(&config.prefixes, &config.markers);

    let sender = Sender::identify(mail, host)?;
    host.log(Level::Info, &sender.describe());
    let by_tag = by_tag(mail, &tags, &sender, host)?;
    let by_thread = by_thread(mail, &config, &sender, host)?;
    let found = match (by_tag, by_thread) {
        (Some(tag), Some(thread)) => {
            if tag.request.number == thread.request.number {
                host.log(
                    Level::Info,
                    &format!(
                        "{} and {} agree on ticket {}",
                        tag.via, thread.via, tag.request.number
                    ),
                );
            } else {
                // The subject is what the person kept or typed; the thread
                // headers are what a mail program carried along, often from
                // an older conversation the person replied to.
                host.log(
                    Level::Warn,
                    &format!(
                        "{} names ticket {} but the {} is on ticket {}: the tag wins",
                        tag.via, tag.request.number, thread.via, thread.request.number
                    ),
                );
            }
            Some(tag)
        }
        (Some(found), None) | (None, Some(found)) => Some(found),
        (None, None) => None,
    };
    match found {
        Some(found) => on_ticket(mail, found, &config, &sender, &tags, &prefixes, host),
        None => unplaced(mail, &config, &sender, &tags, &prefixes, host),
    }
}

/// Step 5: the mail belongs to `found`. An open ticket gets the mail; a
/// closed one follows `closed-ticket`.
fn on_ticket(
    mail: &Mail,
    found: Found,
    config: &Config,
    sender: &Sender,
    tags: &Tags,
    prefixes: &SubjectPrefixes,
    host: &(impl Host + ?Sized),
) -> Result<Vec<Effect>, PluginError> {
    let Found { request, via } = found;
    let number = request.number;
    let link = Effect::LinkMail {
        message_id: mail.message_id.clone(),
        request: number,
    };
    if !config.is_closed(&request.state) {
        host.log(
            Level::Info,
            &format!(
                "linked mail <{}> to ticket {number} (state `{}`), found by {via}",
                mail.message_id, request.state
            ),
        );
        return Ok(vec![link]);
    }
    // An out-of-office answer to a closure notice must not reopen the
    // ticket nor open a new one: robots answer every mail.
    if let Some(why) = mail.automatic_reason(&[]) {
        host.log(
            Level::Info,
            &format!(
                "linked mail <{}> to closed ticket {number} (state `{}`), found by {via}; \
                 automatic mail ({why}) neither reopens a ticket nor opens a new one",
                mail.message_id, request.state
            ),
        );
        return Ok(vec![link]);
    }
    match config.closed_ticket {
        ClosedTicket::Reopen => {
            host.log(
                Level::Info,
                &format!(
                    "ticket {number}, found by {via}, is closed (state `{}`): reopened as `{}` \
                     and mail <{}> linked to it (closed-ticket: reopen)",
                    request.state, config.reopen_state, mail.message_id
                ),
            );
            Ok(vec![
                Effect::ReopenTicket {
                    request: number,
                    state: config.reopen_state.clone(),
                },
                link,
            ])
        }
        ClosedTicket::Link => {
            host.log(
                Level::Info,
                &format!(
                    "linked mail <{}> to ticket {number}, found by {via}, left closed \
                     (state `{}`; closed-ticket: link)",
                    mail.message_id, request.state
                ),
            );
            Ok(vec![link])
        }
        ClosedTicket::NewTicket => Ok(vec![follow_up(
            mail, &request, &via, sender, tags, prefixes, host,
        )]),
    }
}

/// A new ticket following up the closed `closed`: same customer, company
/// and type; the sender as requester when exactly one of its contacts
/// belongs to that customer, else the closed ticket's requester.
fn follow_up(
    mail: &Mail,
    closed: &Request,
    via: &Via,
    sender: &Sender,
    tags: &Tags,
    prefixes: &SubjectPrefixes,
    host: &(impl Host + ?Sized),
) -> Effect {
    let contacts: Vec<&str> = sender
        .contacts()
        .into_iter()
        .filter(|contact| contact.customer.as_deref() == Some(closed.customer.as_str()))
        .map(|contact| contact.id.as_str())
        .collect();
    let requester = match contacts.as_slice() {
        [one] => Some(one.to_string()),
        _ => closed.requester.clone(),
    };
    let subject = ticket_subject(&mail.subject, tags, prefixes)
        .or_else(|| {
            closed
                .subject
                .as_deref()
                .map(str::trim)
                .filter(|subject| !subject.is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| NO_SUBJECT.to_string());
    host.log(
        Level::Info,
        &format!(
            "ticket {}, found by {via}, is closed (state `{}`): a follow-up ticket is created \
             for customer {}, requester {}, and mail <{}> linked to it (closed-ticket: new-ticket)",
            closed.number,
            closed.state,
            closed.customer,
            requester.as_deref().unwrap_or("none"),
            mail.message_id
        ),
    );
    Effect::CreateTicket {
        customer: closed.customer.clone(),
        company: closed.company.clone(),
        request_type: closed.request_type.clone(),
        requester,
        subject,
        link_mail: Some(mail.message_id.clone()),
    }
}

/// Step 6: no tag and no thread placed the mail; `policy` decides.
fn unplaced(
    mail: &Mail,
    config: &Config,
    sender: &Sender,
    tags: &Tags,
    prefixes: &SubjectPrefixes,
    host: &(impl Host + ?Sized),
) -> Result<Vec<Effect>, PluginError> {
    let id = &mail.message_id;
    let unlinked = |level: Level, why: String| -> Result<Vec<Effect>, PluginError> {
        host.log(
            level,
            &format!("mail <{id}>: no tag and no thread places it; left unlinked: {why}"),
        );
        Ok(Vec::new())
    };
    if config.policy == Policy::LeaveUnlinked {
        return unlinked(Level::Info, "policy leave-unlinked".to_string());
    }
    if let Some(why) = mail.automatic_reason(&[]) {
        return unlinked(
            Level::Info,
            format!("automatic mail ({why}) never creates a ticket"),
        );
    }
    if sender.is_unknown() {
        return unlinked(Level::Info, format!("unknown sender {}", sender.address()));
    }
    let contacts = sender.contacts();
    let contact = match contacts.as_slice() {
        [] => {
            return unlinked(
                Level::Info,
                format!(
                    "{} is a staff address (collaborators only); staff mail creates no ticket",
                    sender.address()
                ),
            );
        }
        [one] => *one,
        several => {
            let ids: Vec<&str> = several.iter().map(|c| c.id.as_str()).collect();
            return unlinked(
                Level::Warn,
                format!(
                    "address {} shared by contacts {}: the requester would be a guess",
                    sender.address(),
                    ids.join(", ")
                ),
            );
        }
    };
    let Some(code) = contact.customer.as_deref() else {
        return Err(PluginError::Plugin(format!(
            "contact {} has no customer: no ticket can be created for mail <{id}>",
            contact.id
        )));
    };
    let Some(customer) = host.customer(code)? else {
        return Err(PluginError::Plugin(format!(
            "contact {} belongs to customer {code}, which the host does not know: \
             no ticket can be created for mail <{id}>",
            contact.id
        )));
    };
    if host.request_type(&config.request_type)?.is_none() {
        return Err(config_error(
            NAME,
            format!(
                "key `request-type`: request type `{}` does not exist",
                config.request_type
            ),
        ));
    }
    let subject =
        ticket_subject(&mail.subject, tags, prefixes).unwrap_or_else(|| NO_SUBJECT.to_string());
    host.log(
        Level::Info,
        &format!(
            "mail <{id}>: no tag and no thread places it; a ticket of type {} is created for \
             customer {code} with contact {} as requester (policy create-ticket)",
            config.request_type, contact.id
        ),
    );
    Ok(vec![Effect::CreateTicket {
        customer: code.to_string(),
        company: customer.company,
        request_type: config.request_type.clone(),
        requester: Some(contact.id.clone()),
        subject,
        link_mail: Some(id.clone()),
    }])
}
