//! Manual linking: a person puts a stored mail on a ticket, by number or on
//! a new ticket made from the mail. What is asked is checked here, reading
//! only; the link is a [`ManualEffect`] applied by the effects path (see
//! [`super::manual`]).

use relais_sdk::{PartyKind, SubjectPrefixes};

use crate::effects::{ManualEffect, NewTicket, TicketFor};
use crate::store::StoreError;
use crate::store::prelude::*;

/// An open ticket a mail could be linked to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct Candidate {
    /// Request number.
    pub number: u64,
    /// Its subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Its state.
    pub state: String,
    /// Its customer.
    pub customer: String,
    /// Its requester.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    /// Last update (RFC 3339).
    pub updated_at: String,
    /// `requester` (the sender asked for it) or `customer` (the sender's
    /// customer did).
    pub why: &'static str,
    /// Whether its subject is the mail's, prefixes and tags aside.
    pub same_subject: bool,
}

/// How many candidates are offered at most.
const MAX_CANDIDATES: usize = 50;

/// Open tickets a stored mail could go to: those its sender requested,
/// then those of the sender's customers. Those whose subject is the mail's
/// come first in each group, then the most recently updated; at most 50.
/// `None` when no mail has this id.
pub fn candidates(
    store: &(impl Mails + Threads + DirectoryRead),
    message_id: &str,
    closed_states: &[String],
    prefixes: &SubjectPrefixes,
) -> Result<Option<Vec<Candidate>>, StoreError> {
    let Some(mail) = store.mail(message_id)? else {
        return Ok(None);
    };
    let tag = store.ticket_tag()?;
    let subject_key = |subject: &str| prefixes.strip(&tag.remove(subject)).to_lowercase();
    let wanted = subject_key(&mail.subject);
    let sender = mail.sender.unwrap_or_default();
    let mut candidates: Vec<Candidate> = store
        .sender_requests(&sender)?
        .into_iter()
        .filter(|row| !closed_states.contains(&row.state))
        .map(|row| Candidate {
            same_subject: !wanted.is_empty()
                && row
                    .subject
                    .as_deref()
                    .is_some_and(|s| subject_key(s) == wanted),
            why: if row.own { "requester" } else { "customer" },
            number: row.number,
            subject: row.subject,
            state: row.state,
            customer: row.customer,
            requester: row.requester,
            updated_at: row.updated_at,
        })
        .collect();
    candidates.sort_by(|a, b| {
        let rank = |c: &Candidate| (c.why == "requester", c.same_subject);
        (rank(b), &b.updated_at)
            .cmp(&(rank(a), &a.updated_at))
            .then(a.number.cmp(&b.number))
    });
    candidates.truncate(MAX_CANDIDATES);
    Ok(Some(candidates))
}

/// Where a mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An existing ticket.
    Ticket(u64),
    /// A new ticket, its subject the mail's (prefixes and tags stripped).
    New {
        /// The requesting contact; by default the contact whose address
        /// sent the mail.
        requester: Option<String>,
        /// The request type; by default the only one, when there is one.
        request_type: Option<String>,
    },
}

/// Why a manual link was refused.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// No stored mail has this Message-ID.
    #[error("no stored mail <{0}>")]
    NoMail(String),
    /// No request has this number.
    #[error("no request {0}")]
    NoTicket(u64),
    /// A value given, or one that could not be derived, is wrong.
    #[error("{field}: {message}")]
    Invalid {
        /// The field at fault (`requester`, `type`).
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The mail is on another ticket and moving it was not asked for.
    #[error("{0}")]
    Conflict(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a manual link did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct Linked {
    /// The mail.
    pub message_id: String,
    /// The ticket it is on now.
    pub ticket: u64,
    /// Whether that ticket was created for it.
    pub created: bool,
    /// The ticket it was on before, when it moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<u64>,
}

/// What a link asks for.
#[derive(Debug)]
pub enum Planned {
    /// The mail is on this ticket already: nothing to write.
    There(u64),
    /// The write.
    Write(ManualEffect),
}

/// What linking the stored mail `message_id` to `target` writes, once
/// checked, or that the mail is on that ticket already. A mail on
/// another ticket moves only with `replace`; otherwise nothing changes and
/// the error says where it is.
pub fn plan(
    store: &(impl DirectoryRead + Mails + Threads),
    message_id: &str,
    target: &Target,
    replace: bool,
) -> Result<Planned, LinkError> {
    let mail = store
        .mail(message_id)?
        .ok_or_else(|| LinkError::NoMail(message_id.to_string()))?;
    if let (Some(current), false) = (mail.ticket, replace) {
        let same = matches!(target, Target::Ticket(n) if *n == current);
        if !same {
            return Err(LinkError::Conflict(format!(
                "mail <{message_id}> is already on ticket {current}; to move it: `relais link --move`, or `\"move\": true` in the API"
            )));
        }
    }
    if let (Some(current), Target::Ticket(number)) = (mail.ticket, target)
        && current == *number
    {
        return Ok(Planned::There(*number));
    }
    let ticket = match target {
        Target::Ticket(number) => {
            if store.request(*number)?.is_none() {
                return Err(LinkError::NoTicket(*number));
            }
            TicketFor::Existing(*number)
        }
        Target::New {
            requester,
            request_type,
        } => TicketFor::New(new_ticket(
            store,
            mail.sender.as_deref(),
            &mail.subject,
            requester.as_deref(),
            request_type.as_deref(),
        )?),
    };
    Ok(Planned::Write(ManualEffect::LinkMail {
        message_id: message_id.to_string(),
        ticket,
        replace,
    }))
}

fn new_ticket(
    store: &impl DirectoryRead,
    sender: Option<&str>,
    subject: &str,
    requester: Option<&str>,
    request_type: Option<&str>,
) -> Result<NewTicket, LinkError> {
    let invalid = |field, message: String| LinkError::Invalid { field, message };
    let requester = match requester {
        Some(id) => id.to_string(),
        None => {
            let sender = sender.unwrap_or_default();
            let contacts: Vec<String> = store
                .address_owners(sender)?
                .into_iter()
                .filter(|owner| owner.kind == PartyKind::Contact)
                .map(|owner| owner.id)
                .collect();
            match contacts.as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(invalid(
                        "requester",
                        format!("the sender <{sender}> is no known contact: name the requester"),
                    ));
                }
                several => {
                    return Err(invalid(
                        "requester",
                        format!(
                            "the sender <{sender}> is the address of contacts {}: name the requester",
                            several.join(", ")
                        ),
                    ));
                }
            }
        }
    };
    let customer_code = store
        .contact_customer(&requester)?
        .ok_or_else(|| invalid("requester", format!("unknown contact `{requester}`")))?;
    let customer = store.customer(&customer_code)?.ok_or_else(|| {
        invalid(
            "requester",
            format!("customer `{customer_code}` does not exist"),
        )
    })?;
    let request_type = match request_type {
        Some(code) => {
            if store.request_type(code)?.is_none() {
                return Err(invalid("type", format!("unknown request type `{code}`")));
            }
            code.to_string()
        }
        None => match store.request_type_codes()?.as_slice() {
            [one] => one.clone(),
            codes => {
                return Err(invalid(
                    "type",
                    format!("name the request type (one of: {})", codes.join(", ")),
                ));
            }
        },
    };
    Ok(NewTicket {
        company: customer.company,
        customer: customer.code,
        requester: Some(requester),
        request_type,
        subject: ticket_subject(store, subject)?,
    })
}

/// A mail's subject as a ticket's: reply prefixes and ticket tags removed.
fn ticket_subject(store: &impl DirectoryRead, subject: &str) -> Result<String, StoreError> {
    let prefixes = SubjectPrefixes::default();
    let subject = prefixes.strip(&store.ticket_tag()?.remove(subject));
    Ok(if subject.is_empty() {
        "(no subject)".to_string()
    } else {
        subject
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixtures::{directory_store, receive};

    #[test]
    fn candidates_are_the_senders_then_its_customers_open_tickets() {
        let mut store = directory_store();
        receive(&mut store, "m@x", &[], &[]);
        let closed = vec!["closed".to_string()];
        let found = candidates(&store, "m@x", &closed, &SubjectPrefixes::default())
            .expect("q")
            .expect("mail");
        let numbers: Vec<u64> = found.iter().map(|c| c.number).collect();
        // 7: requested by the sender, same subject; 8: its customer's;
        // 9 closed and 10 another customer's are left out.
        assert_eq!(numbers, [7, 8]);
        assert_eq!(found[0].why, "requester");
        assert!(found[0].same_subject);
        assert_eq!(found[1].why, "customer");
        assert!(
            candidates(&store, "none@x", &closed, &Default::default())
                .expect("q")
                .is_none()
        );
    }
}
