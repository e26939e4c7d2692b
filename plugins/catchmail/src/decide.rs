//! The decision for one event: post the message, or answer why not.

use relais_sdk::{
    AddressOwner, AuthResult, Author, Effect, Event, Host, HostError, Level, Mail, MessageSource,
    PartyKind, PluginError, Request, Side, User, UserKind,
};
use serde_json::Value;

use crate::body::message_body;
use crate::config::{Config, SenderAuthentication};
use crate::reason::{Reason, Refusal};
use crate::subject::parse_subject;

/// Internal users need one of these: 141341 SUPPORT DEMANDES MESSAGES SUR
/// DEMANDES, 260107 PORTAIL SUPPORT DEMANDE MESSAGES SUR DEMANDE.
const INTERNAL_RIGHTS: [u32; 2] = [141341, 260107];
/// Extranet users need 147012 SUPPORT EXTRANET MESSAGES SUR DEMANDE.
const EXTRANET_RIGHT: u32 = 147012;
/// 147001 SUPPORT EXTRANET SAISIR POUR UN AUTRE DEMANDEUR lets an extranet
/// user post on requests another contact of its customer requested.
const OTHER_REQUESTER_RIGHT: u32 = 147001;

/// Decides what to do with one event, given the rule's config.
///
/// Returns no effect for events other than a received mail and for
/// automatic mail; otherwise exactly one effect: a
/// [`Effect::PostMessage`] when every rule holds, or a
/// [`Effect::ReplyFailure`] naming the first rule broken (none when the mail
/// has no address to answer). See the crate docs for the rules and their
/// order.
///
/// `host` is generic (a `&dyn Host` will do) so that the WebAssembly
/// component only imports the queries called here; see
/// [`Plugin::handle`](relais_sdk::Plugin::handle).
///
/// # Errors
///
/// [`PluginError::Plugin`] when `config` is invalid;
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
                "ignored a {} event: CatchMail only handles mail-received",
                event.trigger()
            ),
        );
        return Ok(Vec::new());
    };
    let own: Vec<&str> = config.own_addresses.iter().map(String::as_str).collect();
    if let Some(why) = mail.automatic_reason(&own) {
        host.log(
            Level::Info,
            &format!(
                "dropped automatic mail {}: {why}; automatic mail is never answered",
                mail.message_id
            ),
        );
        return Ok(Vec::new());
    }
    match check(mail, &config, host) {
        Ok(accepted) => {
            host.log(
                Level::Info,
                &format!(
                    "posted mail {} on request {} as {} {} (user {})",
                    mail.message_id,
                    accepted.request,
                    party(accepted.author.kind),
                    accepted.author.id,
                    accepted.login,
                ),
            );
            // The mail itself lands on the request it was posted to, so
            // the request's thread shows where the message came from.
            Ok(vec![
                Effect::PostMessage {
                    request: accepted.request,
                    side: match accepted.author.kind {
                        PartyKind::Collaborator => Side::Staff,
                        PartyKind::Contact => Side::Customer,
                    },
                    author: accepted.author,
                    source: MessageSource::Catchmail,
                    body: accepted.body,
                    notify_by_email: None,
                },
                Effect::LinkMail {
                    message_id: mail.message_id.clone(),
                    request: accepted.request,
                },
            ])
        }
        Err(Stop::Host(error)) => Err(error.into()),
        Err(Stop::Refused(refusal)) => Ok(refuse(mail, &config, &refusal, host)),
    }
}

/// What a mail that passed every check becomes.
struct Accepted {
    request: u64,
    author: Author,
    /// The one user that qualified: the person acting, for the trace.
    login: String,
    body: String,
}

/// Why the checks stopped: a refusal is a business outcome answered to the
/// sender, a host error fails the event.
enum Stop {
    Refused(Refusal),
    Host(HostError),
}

impl From<HostError> for Stop {
    fn from(error: HostError) -> Self {
        Stop::Host(error)
    }
}

impl From<Refusal> for Stop {
    fn from(refusal: Refusal) -> Self {
        Stop::Refused(refusal)
    }
}

/// Runs the checks in the documented order; the first that fails wins.
fn check(mail: &Mail, config: &Config, host: &(impl Host + ?Sized)) -> Result<Accepted, Stop> {
    let number = parse_subject(&mail.subject).map_err(Refusal::new)?;
    let refused = |reason| Stop::Refused(Refusal::on(reason, number));

    // The sender is identified before anything is said about the request,
    // so that a stranger cannot learn whether a request number exists, is
    // publishable or locked.
    let from = mail
        .from
        .as_ref()
        .map(|from| from.email.trim())
        .filter(|from| !from.is_empty());
    // Anyone can write any From: unless the receiving server vouched for
    // it, the mail is no one's, and nothing about the request is told.
    if config.sender_authentication == SenderAuthentication::Required
        && mail.authentication.result != AuthResult::Pass
    {
        host.log(
            Level::Info,
            &format!(
                "sender of mail {} not authenticated: {}",
                mail.message_id,
                if mail.authentication.reason.is_empty() {
                    mail.authentication.result.as_str()
                } else {
                    mail.authentication.reason.as_str()
                }
            ),
        );
        return Err(refused(Reason::SenderNotAuthenticated));
    }
    let Some(from) = from else {
        return Err(refused(Reason::UnknownSender));
    };
    let owners = host.address_owners(from)?;
    if owners.is_empty() {
        return Err(refused(Reason::UnknownSender));
    }
    let (owner, user) = identify(&owners).map_err(refused)?;

    let request = host
        .request(number)?
        .ok_or_else(|| refused(Reason::RequestNotFound))?;
    // From here on, a refusal is about an existing request: when the
    // sender may post there, the notice carries the request's tag, so
    // that the answer to it comes back to the request.
    let reachable = may_post(owner, user, &request).is_ok();
    let refused = |reason| {
        let mut refusal = Refusal::on(reason, number);
        refusal.ticket = reachable.then_some(number);
        Stop::Refused(refusal)
    };
    if !host.settings()?.direct_messages_enabled {
        return Err(refused(Reason::MessagesDisabled));
    }
    if !host
        .request_type(&request.request_type)?
        .is_some_and(|t| t.catchmail)
    {
        return Err(refused(Reason::RequestTypeNotEnabled));
    }
    if !request.publishable {
        return Err(refused(Reason::RequestNotPublishable));
    }
    if request.conversation_locked {
        return Err(refused(Reason::ConversationLocked));
    }

    if mail.text_truncated {
        // The host cut the text at its limit: it is longer than any body
        // accepted here, and what follows the cut is unknown.
        let mut refusal = Refusal::on(Reason::BodyTooLong, number);
        refusal.ticket = reachable.then_some(number);
        return Err(refusal.into());
    }
    let body = message_body(&mail.text);
    if body.is_empty() {
        return Err(refused(Reason::BodyEmpty));
    }
    let chars = body.chars().count();
    if chars > config.max_body_chars {
        let mut refusal = Refusal::on(Reason::BodyTooLong, number);
        refusal.too_long = Some((chars, config.max_body_chars));
        refusal.ticket = reachable.then_some(number);
        return Err(refusal.into());
    }

    may_post(owner, user, &request).map_err(refused)?;
    Ok(Accepted {
        request: number,
        author: Author {
            kind: owner.kind,
            id: owner.id.clone(),
        },
        login: user.login.clone(),
        body,
    })
}

/// The one (owner, user) pair that may use CatchMail from this address.
///
/// Every owner of the address counts (collaborators and contacts may share
/// one), and every user linked to each. Exactly one user may hold the
/// rights and the CatchMail flag: with none there is nobody to act, with
/// several the desk could not tell who wrote.
fn identify(owners: &[AddressOwner]) -> Result<(&AddressOwner, &User), Reason> {
    let mut qualified: Vec<(&AddressOwner, &User)> = Vec::new();
    for owner in owners {
        for user in owner.users.iter().filter(|user| qualifies(owner, user)) {
            // A host listing the same owner twice must not make one
            // person look like two.
            let seen = qualified
                .iter()
                .any(|(o, u)| o.kind == owner.kind && o.id == owner.id && u.login == user.login);
            if !seen {
                qualified.push((owner, user));
            }
        }
    }
    match qualified.as_slice() {
        [] => Err(Reason::SenderNotAuthorized),
        [one] => Ok(*one),
        _ => Err(Reason::SenderAmbiguous),
    }
}

/// Whether the identified user may post on this request: partitioning for
/// staff, requester rules for customers.
fn may_post(owner: &AddressOwner, user: &User, request: &Request) -> Result<(), Reason> {
    match owner.kind {
        PartyKind::Collaborator => {
            // An empty list gives access to no company: partitioning is a
            // restriction, and absent data must not open every company.
            if !user.companies.contains(&request.company) {
                return Err(Reason::CompanyNotAccessible);
            }
        }
        PartyKind::Contact => {
            // 147001 means "for another requester of the same customer",
            // never for another customer's request.
            if owner.customer.as_deref() != Some(request.customer.as_str()) {
                return Err(Reason::NotRequester);
            }
            let is_requester = request.requester.as_deref() == Some(owner.id.as_str());
            if !is_requester && !user.rights.contains(&OTHER_REQUESTER_RIGHT) {
                return Err(Reason::NotRequester);
            }
        }
    }
    Ok(())
}

/// Whether `user` may use CatchMail at all: the flag, a user kind matching
/// its owner (internal for a collaborator, extranet for a contact), and the
/// rights of that kind.
fn qualifies(owner: &AddressOwner, user: &User) -> bool {
    if !user.catchmail {
        return false;
    }
    match (owner.kind, user.kind) {
        (PartyKind::Collaborator, UserKind::Internal) => INTERNAL_RIGHTS
            .iter()
            .any(|right| user.rights.contains(right)),
        (PartyKind::Contact, UserKind::Extranet) => user.rights.contains(&EXTRANET_RIGHT),
        _ => false,
    }
}

/// The failure notice for `refusal`, or nothing when there is nobody to
/// send it to.
fn refuse(
    mail: &Mail,
    config: &Config,
    refusal: &Refusal,
    host: &(impl Host + ?Sized),
) -> Vec<Effect> {
    let code = refusal.reason.code();
    let request = refusal
        .request
        .map(|n| format!(" on request {n}"))
        .unwrap_or_default();
    host.log(
        Level::Info,
        &format!("refused mail {}{request}: {code}", mail.message_id),
    );
    // Once the sender's address is a directory owner's, the notice goes to
    // that address, never to a Return-Path that differs: a forged
    // envelope must not receive what the owner would be told. Before
    // that, it says only what was wrong with the subject or the sender.
    let from = mail
        .from
        .as_ref()
        .map(|from| from.email.trim())
        .filter(|from| !from.is_empty());
    let to = match refusal.reason {
        Reason::SubjectMissingNumber
        | Reason::SubjectMissingKeyword
        | Reason::SubjectSeveralNumbers
        | Reason::UnknownSender => mail.reply_address(),
        // Unauthenticated: the owner of the address, if it has one, hears
        // that someone wrote in its name.
        Reason::SenderNotAuthenticated => match from {
            Some(from) if host.address_owners(from).is_ok_and(|o| !o.is_empty()) => Some(from),
            _ => mail.reply_address(),
        },
        _ => from.or_else(|| mail.reply_address()),
    };
    let Some(to) = to else {
        host.log(
            Level::Warn,
            &format!(
                "no failure notice for mail {}: it has no Return-Path and no From",
                mail.message_id
            ),
        );
        return Vec::new();
    };
    // A notice to one of our own addresses would come back to us: a loop.
    if config
        .own_addresses
        .iter()
        .any(|own| own.trim().eq_ignore_ascii_case(to))
    {
        host.log(
            Level::Warn,
            &format!(
                "no failure notice for mail {}: {to} is one of our own addresses",
                mail.message_id
            ),
        );
        return Vec::new();
    }
    vec![Effect::ReplyFailure {
        to: to.to_string(),
        reason: code.to_string(),
        message: refusal.message(config.language),
        in_reply_to: mail.message_id.clone(),
        request: refusal.ticket,
    }]
}

fn party(kind: PartyKind) -> &'static str {
    match kind {
        PartyKind::Collaborator => "collaborator",
        PartyKind::Contact => "contact",
    }
}
