//! CatchMail: a mail whose subject holds `#23010203 *message*` becomes a
//! direct message on support request 23010203, if its sender may post there.
//!
//! The plugin only decides; the host acts. [`decide`] takes a
//! `mail-received` event and returns an
//! [`Effect::PostMessage`](relais_sdk::Effect::PostMessage) with an
//! [`Effect::LinkMail`](relais_sdk::Effect::LinkMail) (the mail lands on the
//! request it was posted to), or an
//! [`Effect::ReplyFailure`](relais_sdk::Effect::ReplyFailure) naming a
//! [`Reason`] code. Other events, and automatic mail, give no effect.
//!
//! # Automatic mail
//!
//! A mail that [`Mail::automatic_reason`](relais_sdk::Mail::automatic_reason)
//! calls automatic (RFC 3834 `Auto-Submitted`, `Precedence: bulk/junk/list`,
//! `List-*` headers, empty Return-Path, mailer-daemon/postmaster senders, an
//! `X-Loop` naming one of the configured `own-addresses`) is dropped with an
//! info log line and never answered, so that two robots cannot keep mailing
//! each other.
//!
//! # Checks, in order
//!
//! The first check a mail fails is the one reported. The order is that of
//! the design table, except that the sender is identified right after the
//! subject: a stranger must not learn whether a request number exists, is
//! publishable or locked.
//!
//! 1. the subject ([`parse_subject`]): `subject-several-numbers`,
//!    `subject-missing-number`, `subject-missing-keyword`;
//! 2. `unknown-sender`: no `From` address, or the host finds no
//!    collaborator and no contact with it (as `email` or `email2`; the host
//!    compares case-insensitively);
//! 3. `sender-not-authorized` / `sender-ambiguous`: over **all** owners of
//!    the address, the users that have the CatchMail flag and the rights of
//!    their kind (internal users linked to a collaborator: 141341 and/or
//!    260107; extranet users linked to a contact: 147012). None qualifies:
//!    not authorised; more than one: ambiguous, because exactly one must
//!    qualify for the author to be known. Users without the rights or the
//!    flag do not count, so an address shared by several collaborators or
//!    contacts is fine as long as one user qualifies.
//! 4. `request-not-found`: the host knows no request with that number;
//! 5. `messages-disabled`: the global "direct messages on requests" setting
//!    is off;
//! 6. `request-type-not-enabled`: the request's type is unknown to the host
//!    or not set up for CatchMail;
//! 7. `request-not-publishable`;
//! 8. `conversation-locked`;
//! 9. `body-empty` / `body-too-long`, on the body as [`message_body`]
//!    extracts it (signature and quoted history removed), counted in
//!    characters, not bytes, against `max-body-chars` (4,000 by default);
//! 10. `company-not-accessible`: the qualifying user is internal and its
//!     partitioning (`companies`) does not include the request's company;
//!     an empty list gives access to none;
//! 11. `not-requester`: the qualifying user is extranet and either its
//!     contact belongs to another customer than the request's, or the
//!     request's requester is not its contact (another contact, or none)
//!     and it lacks right 147001. 147001 ("enter for another requester")
//!     is read as "another requester of the user's own customer": it never
//!     opens another customer's requests.
//!
//! The subject never reaches the message: it only addresses the request.
//! The message is authored by the qualifying user's collaborator (staff
//! side) or contact (customer side), with source `catchmail`; whether the
//! other side is notified is left to the desk's default setting.
//!
//! # Failure notices
//!
//! A refused mail gets one `reply-failure` effect: to the mail's
//! `Return-Path` when it is set and not empty, else to its `From` address;
//! with the reason's code and a sentence in the configured language that
//! names the request when the subject gave one; in reply to the mail's
//! Message-ID. When the request exists and the sender may post on it (the
//! refusal is about the request's state or the body), the notice names the
//! request, so the host tags its subject and an answer comes back to the
//! request. When there is no address to answer, or it is one of
//! `own-addresses`, nothing is sent and a warning is logged. The host adds
//! `Auto-Submitted: auto-replied` and rate-limits notices per sender.
//!
//! Host query errors fail the event (`PluginError::Host`) so that it can be
//! retried; a bad rule config is a `PluginError::Plugin` naming the key.
#![deny(missing_docs)]

mod body;
mod config;
mod decide;
mod plugin;
mod reason;
mod subject;

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests;

pub use body::message_body;
pub use config::{Config, Language, SenderAuthentication};
pub use decide::decide;
pub use plugin::{CAPABILITIES, CONFIG_SCHEMA, CatchMail};
pub use reason::Reason;
pub use subject::parse_subject;

/// The plugin's name, as rule files write it (`run: { plugin: catchmail }`).
pub const NAME: &str = "catchmail";

#[cfg(target_arch = "wasm32")]
relais_sdk::export_plugin!(CatchMail);
