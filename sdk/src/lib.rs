//! The contract between Relais and its plugins.
//!
//! A plugin **decides**, the host **acts**: a plugin receives an [`Event`]
//! and the configuration of the rule that fired, may read data through the
//! narrow, read-only queries of [`Host`], and returns a list of [`Effect`]s.
//! The host applies all effects of one event in one store transaction,
//! records them in the run trace, or only shows them on a dry run.
//!
//! The types here are plain data (serde-serialisable), so that the same
//! decision logic can run inside a WebAssembly component or linked natively.
//!
//! # Writing a plugin
//!
//! Implement [`Plugin`] and export it with [`export_plugin!`]; build the
//! crate (`crate-type = ["cdylib"]`) with
//! `cargo build --target wasm32-wasip2 --release`, and the `.wasm` file in
//! `target/wasm32-wasip2/release/` is the plugin.
//!
//! ```
//! use relais_sdk::{Effect, Event, Host, Level, Metadata, Plugin, PluginError};
//!
//! /// Logs the subject of every mail it sees; asks for nothing.
//! struct Echo;
//!
//! impl Plugin for Echo {
//!     fn metadata() -> Metadata {
//!         // `log` is always granted: no capability to declare.
//!         Metadata::new("echo", env!("CARGO_PKG_VERSION"), &[]).handles(&["mail-received"])
//!     }
//!
//!     fn handle(
//!         event: &Event,
//!         _config: &serde_json::Value,
//!         host: &(impl Host + ?Sized),
//!     ) -> Result<Vec<Effect>, PluginError> {
//!         if let Event::MailReceived(mail) = event {
//!             host.log(Level::Info, &format!("subject: {}", mail.subject));
//!         }
//!         Ok(Vec::new())
//!     }
//! }
//!
//! relais_sdk::export_plugin!(Echo);
//! ```
//!
//! A component imports only the WIT query interfaces its code can reach
//! (see [`Plugin::handle`] for why it takes a generic host), and the host
//! refuses a plugin that imports one it did not declare in
//! [`Metadata::capabilities`].
#![deny(missing_docs)]

// The generated bindings name their runtime `relais_sdk::guest::wit_bindgen`
// so that the code `export_plugin!` expands in a plugin crate finds it; this
// makes the same path resolve inside the SDK.
#[cfg(target_arch = "wasm32")]
extern crate self as relais_sdk;

mod activity;
mod config;
mod directory;
mod effect;
mod event;
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod guest;
mod host;
mod tag;
mod template;

pub use activity::{ExchangeSummary, REMINDER, RequestActivity, RequestQuery};
pub use config::{config_error, config_schema_mismatches, read_config};
pub use directory::{
    AddressOwner, AlertFormat, Contract, ContractDetails, Customer, PartyKind, Reception,
    Recipient, RecipientGroup, Request, RequestType, Settings, ThreadMail, User, UserKind,
};
pub use effect::{Author, Effect, MessageSource, Side};
pub use event::{
    Address, Attachment, AuthResult, ChangeKind, ContractEvent, Event, Mail, RequestSaved,
    ScheduleFired, SenderAuthentication, TRIGGERS,
};
pub use host::{
    CAPABILITIES, Host, HostError, Level, MAIL_ANYONE, Metadata, Plugin, PluginError, WIT_VERSION,
};
pub use tag::{DEFAULT_TICKET_TAG, REPLY_PREFIXES, SUBJECT_MARKERS, SubjectPrefixes, TicketTag};
pub use template::{AlertChange, AlertContext, Reminder, ReminderContext, Rendered};

/// Exports a [`Plugin`] as the component's `metadata` and `handle`.
///
/// Call it once, at the root of the plugin crate, with the type that
/// implements [`Plugin`]. It expands to nothing unless the target is
/// `wasm32`, so the same crate still builds and tests natively.
///
/// The exported `handle` parses the rule's config (a JSON string) and
/// returns `Err` when it is not JSON; [`PluginError::Plugin`] becomes
/// `Err(message)`, and [`PluginError::Host`] becomes `Err("host error: ...")`
/// so that the host can tell its own faults from the plugin's refusals.
///
/// ```text
/// struct MyPlugin;
/// impl relais_sdk::Plugin for MyPlugin { /* ... */ }
/// relais_sdk::export_plugin!(MyPlugin);
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            // The generated `export!` macro wants a type name, not a path
            // with generics.
            type RelaisPluginExport = $crate::guest::Export<$plugin>;
            $crate::guest::bindings::__relais_export_wit!(
                RelaisPluginExport with_types_in $crate::guest::bindings
            );
        };
    };
}
