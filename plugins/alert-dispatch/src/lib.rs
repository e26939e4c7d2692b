//! Alert dispatch: when a support request is saved, alert mails to the
//! recipients its commitment contract names, for the request being
//! opened, resolved, closed or changing state.
//!
//! The plugin only decides; the host acts. [`decide`] takes a
//! `request-saved` event and returns one
//! [`Effect::SendMail`](relais_sdk::Effect::SendMail) per recipient that
//! gets an alert, in the order the recipients were first found. Other
//! events give no effect (a debug log line). It reads the contract and the
//! customer (capability `contracts`) and renders mail templates
//! (capability `templates`).
//!
//! # No alert at all
//!
//! Logged, with no mail: a save with no change kind; a request with no
//! contract; a contract or customer the host does not know (a warning);
//! a save none of whose change kinds the contract enables (one line per
//! kind it does not enable: "contract K does not enable `closed` alerts").
//!
//! # Recipients
//!
//! The *eligible* kinds are those of the save that the contract enables.
//! The groups of the contract (`contract-contacts`, `site-contacts`,
//! `customer-contacts`, `product-contacts`, `product-collaborators`,
//! `service-contacts`) are walked in the contract's order, and their
//! members in order. A member is left out, with an info log line giving
//! the reason, when:
//!
//! 1. its reception mode is `none`;
//! 2. in `customer-contacts` only, it is not a contact of the request's
//!    customer on that customer's main site (a customer with no main site
//!    has no such contact). The other groups are not filtered by site: a
//!    site contact is on its own site by definition;
//! 3. it subscribed to none of the eligible kinds.
//!
//! **One mail per recipient per event.** A member found in several groups
//! (a contact and a collaborator are told apart by kind, then id) gets one
//! mail, and the log line of that mail names every group it was kept in. A
//! save carrying several kinds gives each recipient one mail, for the most
//! important kind that is eligible and that it subscribed to, in the
//! **priority order `closed`, `resolved`, `opened`, `state-changed`**
//! ([`PRIORITY`]): a save that resolves a request also changes its state,
//! and the recipient wants one mail saying "resolved", while a recipient
//! subscribed to `state-changed` only still gets that one.
//!
//! # Address
//!
//! Reception `email`: the member's `email`. Reception `fax`: the rule's
//! `fax-gateway` pattern, `{fax}` replaced by the digits of the fax number
//! (`+33 1 23 45 67 89` through `{fax}@fax.acme.example` gives
//! `33123456789@fax.acme.example`). Addresses are trimmed, never
//! lowercased. No email address, no fax number or no gateway: the alert
//! is undeliverable, logged as a warning, and not sent.
//!
//! # The mail
//!
//! The customer's alert format for the kind gives the subject keyword and
//! the template; a kind the customer has no format for takes the rule's
//! `defaults` (`[OUVERTURE]`/`alert-opened`, `[RESOLUTION]`/`alert-resolved`,
//! `[CLOTURE]`/`alert-closed`, `[ETAT]`/`alert-state`). The template is
//! rendered in the customer's language, else the rule's `language` (`fr`),
//! with an [`AlertContext`](relais_sdk::AlertContext) (`request`,
//! `customer`, `contract`, `change` with the state before and after the
//! save, `recipient`). The subject is the keyword, a space, and the
//! template's subject line, or when the template has none
//! `[#NUMBER] request subject` (`[#NUMBER]` for a request without
//! subject); the body is the rendered body; the mail is about the request.
//!
//! Host query and template errors fail the event (`PluginError::Host`) so
//! that it can be retried; a bad rule config is a `PluginError::Plugin`
//! naming the key.
#![deny(missing_docs)]

mod config;
mod decide;
mod plugin;
mod recipients;

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests;

pub use config::{Config, DefaultFormats, FAX_PLACEHOLDER, Format};
pub use decide::decide;
pub use plugin::{AlertDispatch, CAPABILITIES, CONFIG_SCHEMA};
pub use recipients::{CUSTOMER_CONTACTS, PRIORITY};

/// The plugin's name, as rule files write it (`run: { plugin: alert-dispatch }`).
pub const NAME: &str = "alert-dispatch";

#[cfg(target_arch = "wasm32")]
relais_sdk::export_plugin!(AlertDispatch);
