//! Ticket linking: every incoming mail ends up on one ticket (support
//! request), found by the ticket tag in its subject or by its reply
//! thread, or on a new ticket with its sender as requester; or, when that
//! cannot be done safely, it is left unlinked for manual handling.
//!
//! The plugin only decides; the host acts. [`decide`] takes a
//! `mail-received` event and returns an
//! [`Effect::LinkMail`](relais_sdk::Effect::LinkMail) (after an
//! [`Effect::ReopenTicket`](relais_sdk::Effect::ReopenTicket) when the
//! ticket is closed and is to be reopened), an
//! [`Effect::CreateTicket`](relais_sdk::Effect::CreateTicket) that links the
//! mail to the new ticket, or nothing. Other events give no effect (a debug
//! log line). Every step logs what it found and why it decided, so that the
//! run's trace tells how each mail was placed.
//!
//! # Steps, in order
//!
//! 1. **Sender.** The host lists the collaborators and contacts whose
//!    `email` or `email2` is the `From` address (compared without regard to
//!    letter case). The sender is *staff* when a collaborator owns it, a
//!    *known contact* when contacts own it (its customers are theirs), and
//!    *unknown* when nobody does or the mail has no `From`.
//! 2. **Tag.** The desk's ticket tag (setting `ticket-tag`, `[#{number}]`
//!    by default, read with [`TicketTag`](relais_sdk::TicketTag)) is looked
//!    for in the subject, then, with `bare-tag: true`, its form without
//!    brackets (`#23010203`). The first tag naming an existing ticket that
//!    the sender may reach wins. A tag naming no ticket is logged and
//!    passed over. A known contact who is not staff reaches only the
//!    tickets of its own customers: a tag naming another customer's ticket
//!    is passed over with a warning. Staff reach every ticket; so does an
//!    unknown sender, since linking a mail publishes nothing to its sender
//!    and staff see on the ticket who wrote (logged).
//! 3. **Thread.** The ids of `In-Reply-To` in order, then of `References`
//!    newest first, each once and never the mail's own Message-ID, at most
//!    `max-references` of them, are asked for the ticket their mail is on
//!    (the one a received mail was linked to, or the one a mail Relais sent
//!    was about). The first that names an existing ticket the sender may
//!    reach (the same rule as tags) wins.
//! 4. **Tag against thread.** When both found a ticket and they differ, the
//!    tag wins, with a warning naming both: the subject is what the person
//!    kept or typed, while a mail program carries thread headers along from
//!    whatever mail was answered.
//! 5. **Found.** A ticket whose state is not one of `closed-states` gets
//!    the mail. A closed one follows `closed-ticket`: `reopen` (the default)
//!    puts it back in `reopen-state` and links the mail; `link` links the
//!    mail and leaves it closed; `new-ticket` creates a follow-up ticket of
//!    the same customer, company and type, with the sender as requester
//!    when exactly one of its contacts belongs to that customer, else the
//!    closed ticket's requester. Automatic mail found to belong to a closed
//!    ticket is only linked: an out-of-office answer to a closure notice
//!    must neither reopen the ticket nor open another.
//! 6. **Nothing found.** With `policy: leave-unlinked`, the mail is left
//!    unlinked. With `policy: create-ticket` (the default), a ticket of
//!    `request-type` is created for the one contact owning the address, as
//!    requester, in its customer and that customer's company. The mail is
//!    left unlinked instead, and the reason logged, when it is automatic
//!    ([`Mail::automatic_reason`](relais_sdk::Mail::automatic_reason)), its
//!    sender unknown, its address staff only, or shared by several contacts
//!    (a warning: the requester would be a guess).
//!
//! # Subjects of new tickets
//!
//! A created ticket (steps 5 and 6) takes the mail's subject without its
//! ticket tags, reply and forward prefixes in any language and combination
//! and gateway markers ([`SubjectPrefixes`](relais_sdk::SubjectPrefixes),
//! plus the rule's `prefixes` and `markers`): `RE : AW: [EXTERNAL] Fwd:
//! Re[3]: Imprimante en panne` gives `Imprimante en panne`. Tags go because
//! the host adds the new ticket's own tag: an old tag left before it would
//! send the replies back to the old ticket. When nothing is left, a
//! follow-up takes the closed ticket's subject, and otherwise the subject
//! is `(no subject)`.
//!
//! Host query errors fail the event (`PluginError::Host`) so that it can be
//! retried. A bad rule config is a `PluginError::Plugin` naming the key;
//! so is a `request-type` the host does not know, found when a ticket is to
//! be created. An invalid `ticket-tag` setting, or a contact whose customer
//! the host does not know, also fails the event with a `PluginError::Plugin`
//! saying so.
#![deny(missing_docs)]

mod config;
mod decide;
mod find;
mod plugin;
mod sender;
mod subject;

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests;

pub use config::{ClosedTicket, Config, Policy};
pub use decide::decide;
pub use plugin::{CAPABILITIES, CONFIG_SCHEMA, TicketLink};

/// The plugin's name, as rule files write it (`run: { plugin: ticket-link }`).
pub const NAME: &str = "ticket-link";

#[cfg(target_arch = "wasm32")]
relais_sdk::export_plugin!(TicketLink);
