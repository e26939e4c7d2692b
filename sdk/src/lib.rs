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
#![deny(missing_docs)]

mod directory;
mod effect;
mod event;
mod host;

pub use directory::{
    AddressOwner, Contract, PartyKind, Request, RequestType, Settings, User, UserKind,
};
pub use effect::{Author, Effect, MessageSource, Side};
pub use event::{
    Address, Attachment, ChangeKind, ContractEvent, Event, Mail, RequestSaved, ScheduleFired,
};
pub use host::{Host, HostError, Level, PluginError};
