//! Why a plugin was refused when it loaded, and why the engine or an
//! event's sandbox could not be set up.

use relais_sdk::WIT_VERSION;

/// Why a plugin was refused when it loaded; nothing of it runs.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Its file could not be read.
    #[error("cannot read: {0}")]
    Read(#[from] std::io::Error),
    /// The bytes are no component wasmtime accepts.
    #[error("not a valid WebAssembly component: {0}")]
    NotAComponent(String),
    /// It imports an interface of another package than WASI and Relais.
    #[error("imports `{0}`, which Relais does not provide")]
    ForeignImport(String),
    /// It imports Relais's interfaces of another version.
    #[error(
        "built against relais:plugin@{0}; this Relais speaks relais:plugin@{ours}: rebuild it with a matching SDK",
        ours = WIT_VERSION
    )]
    ImportsAnotherVersion(String),
    /// Its metadata names another version of the contract.
    #[error(
        "plugin `{name}` was built against relais:plugin@{version}; this Relais speaks relais:plugin@{ours}: rebuild it with a matching SDK",
        ours = WIT_VERSION
    )]
    BuiltAgainst {
        /// The plugin's name.
        name: String,
        /// The version it names.
        version: String,
    },
    /// Its name is not one a rule can write.
    #[error("invalid plugin name `{0}`: use letters, digits, `-` and `_`")]
    InvalidName(String),
    /// It asks for a capability Relais does not have.
    #[error(
        "plugin `{name}` asks for unknown capability `{capability}` (Relais grants: {granted})"
    )]
    UnknownCapability {
        /// The plugin's name.
        name: String,
        /// What it asks for.
        capability: String,
        /// What Relais grants, comma-separated.
        granted: String,
    },
    /// It imports a capability its metadata does not declare.
    #[error(
        "plugin `{name}` imports the `{interface}` capability without declaring it (declared: {declared})"
    )]
    Undeclared {
        /// The plugin's name.
        name: String,
        /// The interface it imports.
        interface: String,
        /// What it declares, comma-separated, or `none`.
        declared: String,
    },
    /// It has no `metadata` export.
    #[error("does not export `metadata`")]
    NoMetadata,
    /// Its `metadata` export is not the contract's.
    #[error("its `metadata` export does not match the contract: {0}")]
    MetadataMismatch(String),
    /// It handles no trigger.
    #[error(
        "plugin `{0}` handles no trigger: name those it handles in its metadata (`Metadata::handles` in Rust)"
    )]
    NoTrigger(String),
    /// It names a trigger Relais does not have.
    #[error("plugin `{name}` handles unknown trigger `{trigger}` (Relais has: {known})")]
    UnknownTrigger {
        /// The plugin's name.
        name: String,
        /// The trigger it names.
        trigger: String,
        /// The triggers Relais has, comma-separated.
        known: String,
    },
    /// It names a trigger whose handler it does not export.
    #[error("plugin `{name}` handles `{trigger}` but does not export `relais:plugin/on-{trigger}`")]
    NoHandler {
        /// The plugin's name.
        name: String,
        /// The trigger.
        trigger: String,
    },
    /// A handler takes or gives other types than the contract's.
    #[error("its handler of `{trigger}` does not match the contract: {detail}")]
    HandlerMismatch {
        /// The trigger.
        trigger: String,
        /// What wasmtime said.
        detail: String,
    },
    /// It could not be instantiated (a start function that traps...).
    #[error("cannot be instantiated: {0}")]
    Instantiate(String),
    /// Its `metadata` export failed.
    #[error("metadata() failed: {0}")]
    Metadata(String),
    /// The sandbox to probe it in could not be set up.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The engine or an event's sandbox could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// wasmtime refused the configuration or a store setting.
    #[error("{0}")]
    Config(String),
    /// A host interface could not be linked.
    #[error("cannot link: {0}")]
    Link(String),
    /// The thread that moves the wall-clock deadlines on did not start.
    #[error("cannot start the epoch thread: {0}")]
    EpochThread(std::io::Error),
}
