//! What a plugin may ask of the host, and how it reports failure.

use std::fmt;

use crate::directory::{AddressOwner, Request, RequestType, Settings};

/// A fault of the host while answering a query (its store is unreachable,
/// ...). It is not the plugin's fault: the event is failed and can be retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostError(pub String);

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "host error: {}", self.0)
    }
}

impl std::error::Error for HostError {}

/// Why a plugin could not decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginError {
    /// The plugin refuses the event or its configuration (a business outcome).
    Plugin(String),
    /// A host query failed (a host fault).
    Host(HostError),
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginError::Plugin(message) => f.write_str(message),
            PluginError::Host(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for PluginError {}

impl From<HostError> for PluginError {
    fn from(error: HostError) -> Self {
        PluginError::Host(error)
    }
}

/// Level of a plugin's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Detail for plugin authors.
    Debug,
    /// Something worth a line in the trace.
    Info,
    /// Something odd that did not stop the plugin.
    Warn,
    /// Something failed.
    Error,
}

impl Level {
    /// Lowercase name (`info`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// The narrow, read-only queries a plugin may make, and its log.
///
/// Every query reads the host's store as of the start of the event.
pub trait Host {
    /// The request with this number, if any.
    fn request(&self, number: u64) -> Result<Option<Request>, HostError>;
    /// The request type with this code, if any.
    fn request_type(&self, code: &str) -> Result<Option<RequestType>, HostError>;
    /// The collaborators and contacts whose `email` or `email2` is this
    /// address (compared case-insensitively), with their linked users.
    fn address_owners(&self, email: &str) -> Result<Vec<AddressOwner>, HostError>;
    /// Global settings.
    fn settings(&self) -> Result<Settings, HostError>;
    /// A log line, kept in the event's trace under the plugin's name.
    fn log(&self, level: Level, message: &str);
}
