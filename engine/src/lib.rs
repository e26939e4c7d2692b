//! Relais: an automation engine for support desks.
//!
//! Events (a mail received, a request saved, a contract event, a schedule)
//! flow through the engine in one direction:
//! [`sources`] → [`rules`] → [`plugins`] → [`effects`] → [`store`],
//! driven by the [`dispatch`] module. Plugins decide; the host acts.

pub mod api;
pub mod app;
pub mod config;
pub mod daemon;
pub mod directory;
pub mod dispatch;
pub mod effects;
pub mod explain;
pub mod metrics;
pub mod plugins;
pub mod reload;
pub mod requests;
pub mod rules;
pub mod sources;
pub mod status;
pub mod store;
pub mod tasks;
pub mod templates;
pub mod triggers;
pub mod yaml;

pub use dispatch::{Dispatcher, Options, Outcome, Report, StoreHost};
pub use plugins::Plugins;
pub use rules::RuleSet;
pub use store::Store;
pub use templates::Templates;
