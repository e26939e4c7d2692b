//! Finding the ticket a mail belongs to: by the tag in its subject, and by
//! its reply thread.

use std::collections::BTreeSet;
use std::fmt;

use relais_sdk::{Host, HostError, Level, Mail, Request};

use crate::config::Config;
use crate::sender::Sender;
use crate::subject::Tags;

/// A ticket the mail may be put on, and what led there.
#[derive(Debug)]
pub(crate) struct Found {
    pub request: Request,
    pub via: Via,
}

/// What led to a ticket.
#[derive(Debug)]
pub(crate) enum Via {
    /// A tag in the subject, as written there (`[#23010203]`).
    Tag(String),
    /// A mail of the thread already on the ticket, named by this header.
    Thread { header: &'static str, id: String },
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Via::Tag(tag) => write!(f, "tag {tag}"),
            Via::Thread { header, id } => write!(f, "thread ({header} <{id}>)"),
        }
    }
}

/// Step 2: the first tag of the subject that names an existing ticket the
/// sender may reach. Tags naming no ticket, or another customer's ticket
/// when the sender is a known contact, are logged and passed over.
pub(crate) fn by_tag(
    mail: &Mail,
    tags: &Tags,
    sender: &Sender,
    host: &(impl Host + ?Sized),
) -> Result<Option<Found>, HostError> {
    let found = tags.find(&mail.subject);
    if found.is_empty() {
        host.log(Level::Info, "tag: none in the subject");
        return Ok(None);
    }
    for (number, tag) in found {
        let Some(request) = host.request(number)? else {
            host.log(
                Level::Info,
                &format!("tag {tag} names no ticket: not followed"),
            );
            continue;
        };
        if let Some(why) = sender.refusal(&request) {
            host.log(
                Level::Warn,
                &format!("tag {tag} names a ticket {why}: not followed"),
            );
            continue;
        }
        if sender.is_unknown() {
            host.log(
                Level::Info,
                &format!(
                    "tag {tag} followed although the sender ({}) is unknown: \
                     linking publishes nothing to the sender",
                    sender.address()
                ),
            );
        }
        return Ok(Some(Found {
            request,
            via: Via::Tag(tag),
        }));
    }
    Ok(None)
}

/// Step 3: the first mail of the thread (In-Reply-To, then References
/// newest first) already on a ticket that exists and the sender may reach.
/// At most `max-references` ids are looked up.
pub(crate) fn by_thread(
    mail: &Mail,
    config: &Config,
    sender: &Sender,
    host: &(impl Host + ?Sized),
) -> Result<Option<Found>, HostError> {
    let ids = thread_ids(mail, config.max_references, host);
    if ids.is_empty() {
        host.log(
            Level::Info,
            "thread: no In-Reply-To or References to follow",
        );
        return Ok(None);
    }
    let looked_up = ids.len();
    for (header, id) in ids {
        let Some(number) = host.linked_ticket(id)? else {
            continue;
        };
        let Some(request) = host.request(number)? else {
            host.log(
                Level::Info,
                &format!(
                    "thread: mail <{id}> ({header}) is on ticket {number}, \
                     which no longer exists: not followed"
                ),
            );
            continue;
        };
        if let Some(why) = sender.refusal(&request) {
            host.log(
                Level::Warn,
                &format!(
                    "thread: mail <{id}> ({header}) is on ticket {number}, a ticket {why}: not followed"
                ),
            );
            continue;
        }
        return Ok(Some(Found {
            request,
            via: Via::Thread {
                header,
                id: id.to_string(),
            },
        }));
    }
    host.log(
        Level::Info,
        &format!("thread: none of the {looked_up} mails looked up leads to a ticket"),
    );
    Ok(None)
}

/// The ids to look up, nearest first: In-Reply-To in order, then
/// References newest first; each once, never the mail's own Message-ID (a
/// mail naming itself would find whatever it was linked to before), at
/// most `max` of them, plus the thread's root (the first References id)
/// when it was left out: it is the mail most likely known.
fn thread_ids<'m>(
    mail: &'m Mail,
    max: usize,
    host: &(impl Host + ?Sized),
) -> Vec<(&'static str, &'m str)> {
    let own = mail.message_id.trim();
    let named = mail
        .in_reply_to
        .iter()
        .map(|id| ("In-Reply-To", id))
        .chain(mail.references.iter().rev().map(|id| ("References", id)));
    let mut ids: Vec<(&'static str, &str)> = Vec::new();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut named_itself = false;
    let mut left_out = 0;
    for (header, id) in named {
        let id = id.trim();
        if id.is_empty() || !seen.insert(id) {
            continue;
        }
        if id == own {
            named_itself = true;
        } else if ids.len() < max {
            ids.push((header, id));
        } else {
            left_out += 1;
        }
    }
    if let Some(root) = mail.references.first().map(|id| id.trim())
        && left_out > 0
        && root != own
        && !ids.iter().any(|(_, id)| *id == root)
    {
        ids.push(("References", root));
        left_out -= 1;
    }
    if named_itself {
        host.log(
            Level::Info,
            &format!("thread: the mail names its own Message-ID <{own}>: skipped"),
        );
    }
    if left_out > 0 {
        host.log(
            Level::Info,
            &format!(
                "thread: {left_out} older ids left out, only the {max} nearest and the root are looked up (max-references)"
            ),
        );
    }
    ids
}
