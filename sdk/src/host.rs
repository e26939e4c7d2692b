//! What a plugin may ask of the host, and how it reports failure.

use std::fmt;

use crate::activity::{RequestActivity, RequestQuery};
use crate::directory::{
    AddressOwner, ContractDetails, Customer, Recipient, Request, RequestType, Settings, ThreadMail,
};
use crate::template::Rendered;

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
    /// The requests in one of `query.states`, idle since `query.idle_since`,
    /// the longest idle first, with their last activity and exchanges.
    fn find_requests(&self, query: &RequestQuery) -> Result<Vec<RequestActivity>, HostError>;
    /// The collaborators and contacts whose `email` or `email2` is this
    /// address (compared case-insensitively), with their linked users.
    fn address_owners(&self, email: &str) -> Result<Vec<AddressOwner>, HostError>;
    /// The contact with this id, with its addresses (`email` is Mail 1).
    fn contact(&self, id: &str) -> Result<Option<Recipient>, HostError>;
    /// Global settings.
    fn settings(&self) -> Result<Settings, HostError>;
    /// A contract with its alert settings and recipients.
    fn contract(&self, code: &str) -> Result<Option<ContractDetails>, HostError>;
    /// A customer with its main site and alert formats.
    fn customer(&self, code: &str) -> Result<Option<Customer>, HostError>;
    /// Renders the mail template `name` (in `language` when the admin wrote
    /// a version in it) with `context` as its variables. A missing template
    /// or a template error is a host error: the event fails and can be
    /// retried once the template is fixed.
    fn render(
        &self,
        name: &str,
        language: Option<&str>,
        context: &serde_json::Value,
    ) -> Result<Rendered, HostError>;
    /// The stored mails of the thread this Message-ID belongs to.
    fn thread(&self, message_id: &str) -> Result<Vec<ThreadMail>, HostError>;
    /// The ticket a mail belongs to: the one a received mail is linked to,
    /// or the one a mail Relais sent is about; `None` when the Message-ID
    /// is unknown or its mail is on no ticket.
    fn linked_ticket(&self, message_id: &str) -> Result<Option<u64>, HostError>;
    /// A log line, kept in the event's trace under the plugin's name.
    fn log(&self, level: Level, message: &str);
}

/// The version of the WIT package (`relais:plugin`) this SDK speaks.
pub const WIT_VERSION: &str = "1.0.0";

/// The capabilities a plugin may declare: the query interfaces, and
/// [`MAIL_ANYONE`]. `log` is always granted.
pub const CAPABILITIES: [&str; 7] = [
    "requests",
    "directory",
    "settings",
    "contracts",
    "mail",
    "templates",
    MAIL_ANYONE,
];

/// The capability to send mail to addresses in no directory record (a
/// plugin that forwards to an outside service). Without it, the host
/// refuses a `send-mail` to anyone but collaborators and the contacts of
/// the request's customer. It links no interface.
pub const MAIL_ANYONE: &str = "mail-anyone";

/// What a plugin says of itself; the host checks it when the plugin loads.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Metadata {
    /// Its name, as rules write it.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The WIT package version it was built against ([`WIT_VERSION`]).
    pub wit_version: String,
    /// The query capabilities it needs (from [`CAPABILITIES`]).
    pub capabilities: Vec<String>,
    /// The triggers it handles (from [`TRIGGERS`](crate::TRIGGERS)): rules
    /// may run it on those only.
    #[serde(default)]
    pub triggers: Vec<String>,
    /// JSON Schema of its rule config, if it publishes one.
    pub config_schema: Option<String>,
}

impl Metadata {
    /// Metadata built against this SDK's [`WIT_VERSION`], handling no
    /// trigger yet and with no config schema:
    /// `Metadata::new("triage", env!("CARGO_PKG_VERSION"), &["requests"]).handles(&["mail-received"])`.
    pub fn new(name: &str, version: &str, capabilities: &[&str]) -> Metadata {
        Metadata {
            name: name.to_string(),
            version: version.to_string(),
            wit_version: WIT_VERSION.to_string(),
            capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
            triggers: Vec::new(),
            config_schema: None,
        }
    }

    /// The same, handling `triggers` (from [`TRIGGERS`](crate::TRIGGERS)).
    /// A plugin that handles none is refused when it loads.
    pub fn handles(mut self, triggers: &[&str]) -> Metadata {
        self.triggers = triggers.iter().map(|t| t.to_string()).collect();
        self
    }

    /// Whether it handles `trigger`.
    pub fn handles_trigger(&self, trigger: &str) -> bool {
        self.triggers.iter().any(|t| t == trigger)
    }

    /// The same, publishing the JSON Schema of the rule config.
    pub fn with_config_schema(mut self, schema: &str) -> Metadata {
        self.config_schema = Some(schema.to_string());
        self
    }
}

/// A plugin: metadata and a decision function. Implement it, then export it
/// with [`export_plugin!`](crate::export_plugin) when building for
/// `wasm32-wasip2`.
pub trait Plugin {
    /// Name, version, capabilities and config schema.
    fn metadata() -> Metadata;
    /// Decides what to do about `event`, given the rule's `config` (`null`
    /// when the rule has none).
    ///
    /// `host` is generic rather than `&dyn Host` so that a component imports
    /// only the WIT query interfaces its code calls: a vtable would keep every
    /// query, hence every import, alive, and the host refuses a plugin
    /// importing a capability it did not declare. For the same reason, pass
    /// `host` on as a generic (`&(impl Host + ?Sized)`), never as `&dyn Host`.
    /// A `&dyn Host` (the engine's native hosts, test fakes) is still accepted.
    fn handle(
        event: &crate::Event,
        config: &serde_json::Value,
        host: &(impl Host + ?Sized),
    ) -> Result<Vec<crate::Effect>, PluginError>;
}
