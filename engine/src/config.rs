//! The engine config file, `relais.yaml`: where the store, rules, plugins
//! and spool live, the IMAP accounts, the SMTP relay, the HTTP address and
//! the limits. Every key has an embedded default, so `relais run` works with
//! no file at all.
//!
//! It is validated like rule files (unknown keys refused, errors as
//! `file:line:col` with a "did you mean"). Secrets are never written in it:
//! a password names an environment variable or a file, is read at start-up
//! and is never printed, not even by `Debug`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::effects::MailIdentity;
use crate::yaml::{Diagnostic, Document};

/// The whole config file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Config {
    /// `database: relais.db`: the SQLite store file.
    pub database: PathBuf,
    /// `rules: rules`: the directory of rule files.
    pub rules: PathBuf,
    /// `plugins: plugins`: the directory of customer plugins.
    pub plugins: PathBuf,
    /// `templates: templates`: the directory of mail templates (`*.jinja`).
    pub templates: PathBuf,
    /// `spool: spool`: a folder watched for `*.eml` files or a Maildir;
    /// a file processed is removed once committed (the store keeps the
    /// mail byte for byte), or moved to `failed/` beside it when it failed.
    pub spool: Option<PathBuf>,
    /// `spool-done: delete`: what becomes of a spool file once its mail is
    /// committed: `delete` it (the store has it), or `keep` it in `done/`.
    pub spool_done: SpoolDone,
    /// `accounts: [...]`: IMAP mailboxes to watch.
    pub accounts: Vec<Account>,
    /// `outbox: {...}`: how outbound mail leaves.
    pub outbox: Outbox,
    /// `identity: {...}`: who outbound mail is from by default (alerts,
    /// reminders, message notifications).
    pub identity: Identity,
    /// `identities: { catchmail: {...} }`: other named identities, for an
    /// account's notices (`accounts[].identity`) or a rule's mail
    /// (`identity:` on the rule). `default` names [`Config::identity`].
    pub identities: std::collections::BTreeMap<String, Identity>,
    /// `failure-replies: {...}`: limits on CatchMail's failure notices.
    pub failure_replies: FailureReplies,
    /// `authentication: {...}`: whose verdict on a sender counts.
    pub authentication: Authentication,
    /// `http: { listen: 127.0.0.1:8025, token: { env: RELAIS_API_TOKEN } }`:
    /// the HTTP API, when wanted.
    pub http: Option<Http>,
    /// `requests: {...}`: which request states count as resolved and closed.
    pub requests: RequestStates,
    /// `limits: {...}`: engine limits.
    pub limits: EngineLimits,
    /// `reload: {...}`: how rule, template and plugin changes are picked up.
    pub reload: Reload,
    /// `retention: {...}`: how long runs, raw mail and sent mail are kept
    /// (for ever by default).
    pub retention: Retention,
}

/// How long the store keeps what grows with every mail; a key left out
/// keeps that kind for ever. Applied by `relais run` every hour, in small
/// batches between the events.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Retention {
    /// `runs-days: 90`: run traces older than this are deleted (failed
    /// runs are kept, for a retry).
    pub runs_days: Option<u32>,
    /// `raw-mail-days: 365`: the raw message and attachments of older mail
    /// are dropped; its record, thread and ticket stay.
    pub raw_mail_days: Option<u32>,
    /// `sent-outbox-days: 90`: sent and suppressed outbox mail older than
    /// this is deleted.
    pub sent_outbox_days: Option<u32>,
    /// `batch: 500`: records removed per transaction.
    pub batch: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            runs_days: None,
            raw_mail_days: None,
            sent_outbox_days: None,
            batch: 500,
        }
    }
}

impl Retention {
    /// Whether anything is ever removed.
    pub fn is_on(&self) -> bool {
        self.runs_days.is_some() || self.raw_mail_days.is_some() || self.sent_outbox_days.is_some()
    }

    /// The cut-offs as of now.
    pub fn cutoffs(&self) -> crate::store::Cutoffs {
        let before = |days: Option<u32>| {
            days.map(|days| chrono::Utc::now() - chrono::Duration::days(i64::from(days)))
        };
        crate::store::Cutoffs {
            runs: before(self.runs_days),
            raw_mail: before(self.raw_mail_days),
            sent_outbox: before(self.sent_outbox_days),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database: "relais.db".into(),
            rules: "rules".into(),
            plugins: "plugins".into(),
            templates: "templates".into(),
            spool: Some("spool".into()),
            spool_done: SpoolDone::default(),
            accounts: Vec::new(),
            outbox: Outbox::default(),
            identity: Identity::default(),
            identities: std::collections::BTreeMap::new(),
            failure_replies: FailureReplies::default(),
            authentication: Authentication::default(),
            http: None,
            requests: RequestStates::default(),
            limits: EngineLimits::default(),
            reload: Reload::default(),
            retention: Retention::default(),
        }
    }
}

/// An IMAP account.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Account {
    /// `name: catchmail`: the account name rules match with `account:`.
    pub name: String,
    /// `host: imap.example.com`.
    pub host: String,
    /// `port: 993` (the default for `tls`; 143 otherwise).
    pub port: Option<u16>,
    /// `security: tls` (implicit TLS, the default) or `plain` (loopback
    /// only: refused for any other host).
    #[serde(default)]
    pub security: Security,
    /// `username: catchmail@acme.example`.
    pub username: String,
    /// `password: { env: VAR }` or `{ file: PATH }`.
    pub password: Secret,
    /// `mailbox: INBOX`.
    #[serde(default = "inbox")]
    pub mailbox: String,
    /// `move-to: Processed`: move each mail there once processed, instead
    /// of flagging it `\Seen`.
    pub move_to: Option<String>,
    /// `idle: true`: wait with IMAP IDLE when the server has it; otherwise
    /// poll.
    #[serde(default = "yes")]
    pub idle: bool,
    /// `poll-seconds: 60`: how often to look when not idling.
    #[serde(default = "sixty")]
    pub poll_seconds: u64,
    /// `idle-check-ms: 100`: while idling, also ask the server for news this
    /// often. Off by default: IDLE alone is what a remote server expects;
    /// but a server may hold its IDLE notices back (Dovecot batches them
    /// for half a second), and a local server can be asked more often.
    pub idle_check_ms: Option<u64>,
    /// `delete-after-days: 30`: delete processed mail from the server after
    /// that many days (kept in the store); with `move-to`, from that folder.
    pub delete_after_days: Option<u32>,
    /// `identity: catchmail`: the identity failure notices about mail of
    /// this account come from (by default the identity whose address
    /// received the mail, else `identity`).
    pub identity: Option<String>,
}

fn inbox() -> String {
    "INBOX".to_string()
}
fn yes() -> bool {
    true
}
fn sixty() -> u64 {
    60
}

impl Account {
    /// The port, or the default for its security.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            Security::Tls => 993,
            Security::Plain => 143,
        })
    }
}

/// Transport security of a connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Security {
    /// TLS from the first byte.
    #[default]
    Tls,
    /// No TLS: allowed on loopback addresses only.
    Plain,
}

/// How outbound mail leaves: a pickup directory (the default) or SMTP.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Outbox {
    /// `pickup: outbox`: write each mail as `<message-id>.eml` there (used
    /// when `smtp` is absent).
    pub pickup: PathBuf,
    /// `smtp: {...}`: deliver through this relay instead.
    pub smtp: Option<Smtp>,
    /// `retry-seconds: 30`: the first retry delay after a temporary
    /// failure; it doubles on each attempt.
    pub retry_seconds: u64,
    /// `max-retry-seconds: 3600`: the longest delay between attempts.
    pub max_retry_seconds: u64,
    /// `max-attempts: 20`: after that many temporary failures the mail is
    /// marked failed (it can still be retried by hand).
    pub max_attempts: u32,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            pickup: "outbox".into(),
            smtp: None,
            retry_seconds: 30,
            max_retry_seconds: 3600,
            max_attempts: 20,
        }
    }
}

/// An SMTP relay.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Smtp {
    /// `host: smtp.example.com`.
    pub host: String,
    /// `port: 587` (the default for `starttls`; 465 for `tls`, 25 for
    /// `plain`).
    pub port: Option<u16>,
    /// `security: starttls` (the default), `tls` or `plain` (loopback only).
    #[serde(default)]
    pub security: SmtpSecurity,
    /// `username: relais`: authenticate when given.
    pub username: Option<String>,
    /// `password: { env: VAR }` or `{ file: PATH }`.
    pub password: Option<Secret>,
    /// `timeout-seconds: 30`.
    #[serde(default = "thirty")]
    pub timeout_seconds: u64,
}

fn thirty() -> u64 {
    30
}

impl Smtp {
    /// The port, or the default for its security.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::Plain => 25,
        })
    }
}

/// Transport security of an SMTP relay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS, which is required.
    #[default]
    Starttls,
    /// TLS from the first byte.
    Tls,
    /// No TLS: loopback only.
    Plain,
}

/// Who outbound mail is from: its `From`, `Reply-To`, `X-Loop` and the
/// domain of its Message-IDs.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Identity {
    /// `address: support@acme.example`: the From of the mail and its
    /// `X-Loop` value.
    pub address: String,
    /// `name: Acme Support`: the display name of the From.
    pub name: Option<String>,
    /// `reply-to: support@acme.example`: where answers go, when not to
    /// `address` (a CatchMail identity whose answers belong to a ticket).
    pub reply_to: Option<String>,
    /// `message-id-domain: acme.example`: right-hand side of the
    /// Message-IDs generated (by default the default identity's).
    pub message_id_domain: Option<String>,
}

impl Default for Identity {
    fn default() -> Self {
        Identity {
            address: crate::effects::Sender::default().address,
            name: None,
            reply_to: None,
            message_id_domain: None,
        }
    }
}

/// Sender authentication: which receiving servers' verdicts Relais takes.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Authentication {
    /// `trusted-authserv-ids: [mx.acme.example]`: the authserv-ids of the
    /// servers that receive the desk's mail. Their
    /// `Authentication-Results` headers (RFC 8601) say whether the `From`
    /// domain passed DMARC, DKIM, SPF or a login; any other such header is
    /// ignored, since a sender can write one. Empty: no sender is
    /// authenticated.
    pub trusted_authserv_ids: Vec<String>,
    /// `verify: true`: Relais also checks each mail's DKIM signatures and
    /// its From domain's DMARC policy itself, against DNS (for a receiving
    /// server that writes no `Authentication-Results`). Off by default.
    pub verify: bool,
    /// `nameservers: [127.0.0.1:53]`: the DNS servers `verify` asks (UDP
    /// and TCP); the system's resolvers when empty.
    pub nameservers: Vec<String>,
}

/// Limits on failure notices.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct FailureReplies {
    /// `per-sender: 5`: at most that many notices to one address...
    pub per_sender: u32,
    /// `window-minutes: 60`: ...within this many minutes; the others are
    /// recorded in the outbox as `suppressed`, never sent.
    pub window_minutes: u64,
}

impl Default for FailureReplies {
    fn default() -> Self {
        FailureReplies {
            per_sender: 5,
            window_minutes: 60,
        }
    }
}

/// The HTTP API.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Http {
    /// `listen: 127.0.0.1:8025`.
    pub listen: String,
    /// `token: { env: RELAIS_API_TOKEN }`: the bearer token every route but
    /// `/health` requires.
    pub token: Secret,
    /// `header-timeout-seconds: 10`: how long a client has to send a
    /// request's headers; a slow or silent client is disconnected.
    #[serde(default = "ten")]
    pub header_timeout_seconds: u64,
}

fn ten() -> u64 {
    10
}

/// Which request states count as resolved and closed: a save entering one
/// fires `resolved` or `closed`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct RequestStates {
    /// `resolved-states: [resolved]`.
    pub resolved_states: Vec<String>,
    /// `closed-states: [closed]`.
    pub closed_states: Vec<String>,
}

impl Default for RequestStates {
    fn default() -> Self {
        RequestStates {
            resolved_states: vec!["resolved".to_string()],
            closed_states: vec!["closed".to_string(), "cancelled".to_string()],
        }
    }
}

/// Engine limits.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct EngineLimits {
    /// `max-mail-mib: 25`: larger mails are kept, not processed, and their
    /// sender is told (unless the mail is automatic).
    pub max_mail_mib: u64,
    /// `batch: 256`: at most that many events share one store commit when
    /// mail arrives faster than it can be committed one by one.
    pub batch: usize,
    /// `max-text-kib: 1024`: plugins see at most this much of a mail's text
    /// (`text-truncated` tells them it was cut); the whole mail is stored.
    /// A plugin's memory is bounded; a 20 MB text mail must not exhaust it.
    pub max_text_kib: usize,
    /// `max-in-flight-mib: 32`: a source reads no more mail while this
    /// much of what it read waits to be committed (one mail at least,
    /// whatever its size), so memory is bounded by bytes, not by a count of
    /// mails.
    pub max_in_flight_mib: u64,
    /// `plugin-workers: 0`: threads on which plugins decide about mail
    /// while the store is written on another; 0 means one per core. Mails
    /// that share a thread, a sender or a request are still decided and
    /// committed in arrival order.
    pub plugin_workers: usize,
}

impl Default for EngineLimits {
    fn default() -> Self {
        EngineLimits {
            max_mail_mib: 25,
            batch: 256,
            max_text_kib: 1024,
            max_in_flight_mib: 32,
            plugin_workers: 0,
        }
    }
}

impl EngineLimits {
    /// How many plugin workers to start: `plugin-workers`, or one per core.
    pub fn plugin_workers(&self) -> usize {
        match self.plugin_workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }

    /// `max-in-flight-mib` in bytes.
    pub fn max_in_flight_bytes(&self) -> usize {
        usize::try_from(self.max_in_flight_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
    }
}

/// What becomes of a spool file once its mail is committed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SpoolDone {
    /// Removed: the store keeps the mail byte for byte.
    #[default]
    Delete,
    /// Moved to `done/` beside it, a second copy.
    Keep,
}

/// Hot reload of the rules, templates and plugins directories.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Reload {
    /// `debounce-ms: 100`: file system events closer than this make one
    /// reload (an editor's save, a burst of copies).
    pub debounce_ms: u64,
    /// `poll-seconds: 2`: the files are also hashed this often, for file
    /// systems that send no events; nothing reloads when nothing changed.
    pub poll_seconds: u64,
}

impl Default for Reload {
    fn default() -> Self {
        Reload {
            debounce_ms: 100,
            poll_seconds: 2,
        }
    }
}

/// A secret: the name of an environment variable or of a file holding it
/// (exactly one of the two).
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Secret {
    /// `{ env: RELAIS_IMAP_PASSWORD }`.
    pub env: Option<String>,
    /// `{ file: /run/secrets/imap }`: the file's content, without its final
    /// line break.
    pub file: Option<PathBuf>,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.env, &self.file) {
            (Some(name), _) => write!(f, "Secret(env {name})"),
            (None, Some(path)) => write!(f, "Secret(file {})", path.display()),
            (None, None) => f.write_str("Secret(none)"),
        }
    }
}

/// A secret's value. `Debug` and `Display` print `***`.
#[derive(Clone)]
pub struct SecretValue(String);

impl SecretValue {
    /// The value, to hand to a server and nowhere else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Why a secret cannot be read, or is not good enough. It names where the
/// secret was looked for (and `at`, what it is for), never its value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is not set.
    #[error("environment variable {0} is not set")]
    Unset(String),
    /// The file cannot be read.
    #[error("cannot read the secret file {}: {error}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    /// Neither or both of `env` and `file`.
    #[error("give `env: VARIABLE` or `file: PATH`, one of the two")]
    Unspecified,
    /// The HTTP token is too short to be a secret.
    #[error("the token must be at least 16 characters")]
    TooShort,
    /// The secret for `at` (`http.token`, an account's password...).
    #[error("{at}: {error}")]
    At {
        /// What the secret is for.
        at: String,
        /// Why it cannot be used.
        error: Box<SecretError>,
    },
}

impl SecretError {
    /// This error, about the secret for `at`.
    pub fn at(self, at: impl Into<String>) -> SecretError {
        SecretError::At {
            at: at.into(),
            error: Box::new(self),
        }
    }
}

impl Secret {
    /// Reads the secret. The error names where it was looked for, never
    /// the value.
    pub fn resolve(&self) -> Result<SecretValue, SecretError> {
        match (&self.env, &self.file) {
            (Some(name), None) => std::env::var(name)
                .map(SecretValue)
                .map_err(|_| SecretError::Unset(name.clone())),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map(|text| SecretValue(text.trim_end_matches(['\r', '\n']).to_string()))
                .map_err(|error| SecretError::Unreadable {
                    path: path.clone(),
                    error,
                }),
            _ => Err(SecretError::Unspecified),
        }
    }
}

impl Config {
    /// Reads `path`; every problem is reported with its position.
    pub fn load(path: &Path) -> Result<Config, Vec<Diagnostic>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| vec![Diagnostic::file(path, format!("cannot read: {e}"))])?;
        Self::parse(path, &text)
    }

    /// Parses config text read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, Vec<Diagnostic>> {
        let doc = Document::parse(path, text).map_err(|e| vec![e])?;
        if doc.value().is_null() {
            return Ok(Config::default());
        }
        let config: Config = doc.deserialize_at(&[]).map_err(|e| vec![e])?;
        let base = path.parent().unwrap_or(Path::new(""));
        let config = config.relative_to(base);
        let errors = config.check(&doc);
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }

    /// Paths in the file are relative to the file's directory.
    fn relative_to(mut self, base: &Path) -> Config {
        let join = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        join(&mut self.database);
        join(&mut self.rules);
        join(&mut self.plugins);
        join(&mut self.templates);
        join(&mut self.outbox.pickup);
        if let Some(spool) = &mut self.spool {
            join(spool);
        }
        self
    }

    fn check(&self, doc: &Document) -> Vec<Diagnostic> {
        use crate::yaml::Segment::{Index, Key};
        let mut errors = Vec::new();
        let mut names = std::collections::HashSet::new();
        for (index, account) in self.accounts.iter().enumerate() {
            let at = |key: &str| vec![Key("accounts".into()), Index(index), Key(key.into())];
            if !names.insert(account.name.as_str()) {
                errors.push(doc.diagnostic(
                    &at("name"),
                    format!("two accounts are named `{}`", account.name),
                ));
            }
            if account.security == Security::Plain && !is_loopback(&account.host) {
                errors.push(doc.diagnostic(
                    &at("security"),
                    format!(
                        "`security: plain` would send the password in clear to {}: use `tls`, or a loopback address",
                        account.host
                    ),
                ));
            }
            if account.password.env.is_some() == account.password.file.is_some() {
                errors.push(doc.diagnostic(
                    &at("password"),
                    "give `{ env: VARIABLE }` or `{ file: PATH }`, one of the two",
                ));
            }
            if account.idle_check_ms == Some(0) {
                errors.push(doc.diagnostic(&at("idle-check-ms"), "must be at least 1"));
            }
            if account.poll_seconds == 0 {
                errors.push(doc.diagnostic(&at("poll-seconds"), "must be at least 1"));
            }
        }
        if let Some(smtp) = &self.outbox.smtp {
            let at = |key: &str| vec![Key("outbox".into()), Key("smtp".into()), Key(key.into())];
            if smtp.security == SmtpSecurity::Plain && !is_loopback(&smtp.host) {
                // Even without a password, mail in clear across a network
                // can be read and changed on the way: customers' mail.
                errors.push(doc.diagnostic(
                    &at("security"),
                    format!(
                        "`security: plain` would send mail (and any password) in clear to {}: use `starttls` or `tls`, or a loopback relay",
                        smtp.host
                    ),
                ));
            }
            if smtp.username.is_some() != smtp.password.is_some() {
                errors.push(doc.diagnostic(
                    &at("username"),
                    "give both `username` and `password`, or neither",
                ));
            }
        }
        if let Some(http) = &self.http {
            let at = |key: &str| vec![Key("http".into()), Key(key.into())];
            if http.listen.parse::<std::net::SocketAddr>().is_err() {
                errors.push(doc.diagnostic(
                    &at("listen"),
                    format!(
                        "`{}` is not an address and port (e.g. 127.0.0.1:8025)",
                        http.listen
                    ),
                ));
            }
            if http.header_timeout_seconds == 0 {
                errors.push(doc.diagnostic(&at("header-timeout-seconds"), "must be at least 1"));
            }
            if http.token.env.is_some() == http.token.file.is_some() {
                errors.push(doc.diagnostic(
                    &at("token"),
                    "give `{ env: VARIABLE }` or `{ file: PATH }`, one of the two",
                ));
            }
        }
        for (index, server) in self.authentication.nameservers.iter().enumerate() {
            if server.parse::<std::net::SocketAddr>().is_err() {
                errors.push(doc.diagnostic(
                    &[
                        Key("authentication".into()),
                        Key("nameservers".into()),
                        Index(index),
                    ],
                    format!("`{server}` is not an address and port (e.g. 127.0.0.1:53)"),
                ));
            }
        }
        if self.limits.batch == 0 {
            errors.push(doc.diagnostic(
                &[Key("limits".into()), Key("batch".into())],
                "must be at least 1",
            ));
        }
        let identities = std::iter::once((None, &self.identity))
            .chain(self.identities.iter().map(|(name, i)| (Some(name), i)));
        for (name, identity) in identities {
            let at = |key: &str| match name {
                None => vec![Key("identity".into()), Key(key.into())],
                Some(name) => vec![Key("identities".into()), Key(name.clone()), Key(key.into())],
            };
            if name.is_some_and(|n| n == DEFAULT_IDENTITY) {
                errors.push(doc.diagnostic(
                    &[Key("identities".into()), Key(DEFAULT_IDENTITY.into())],
                    "`default` is the top-level `identity:`; give this identity another name",
                ));
            }
            if let Some(problem) = address_problem(&identity.address) {
                errors.push(doc.diagnostic(
                    &at("address"),
                    format!("`{}` is not a mail address: it {problem}", identity.address),
                ));
            }
            if let Some(reply_to) = &identity.reply_to
                && let Some(problem) = address_problem(reply_to)
            {
                errors.push(doc.diagnostic(
                    &at("reply-to"),
                    format!("`{reply_to}` is not a mail address: it {problem}"),
                ));
            }
            if let Some(display) = &identity.name
                && display.contains(['\r', '\n'])
            {
                errors.push(doc.diagnostic(&at("name"), "must not hold a line break"));
            }
        }
        let names = self.identity_names();
        for (index, account) in self.accounts.iter().enumerate() {
            if let Some(identity) = &account.identity
                && !names.contains(identity)
            {
                errors.push(doc.diagnostic(
                    &[Key("accounts".into()), Index(index), Key("identity".into())],
                    unknown_identity(identity, &names),
                ));
            }
        }
        errors
    }

    /// Resolves every secret now, so that a missing one stops start-up with
    /// a clear message rather than failing later in a connection.
    pub fn check_secrets(&self) -> Result<(), SecretError> {
        for account in &self.accounts {
            account
                .password
                .resolve()
                .map_err(|e| e.at(format!("account `{}`: password", account.name)))?;
        }
        if let Some(Some(secret)) = self.outbox.smtp.as_ref().map(|s| s.password.as_ref()) {
            secret
                .resolve()
                .map_err(|e| e.at("outbox.smtp: password"))?;
        }
        if let Some(http) = &self.http {
            let token = http.token.resolve().map_err(|e| e.at("http.token"))?;
            if token.expose().len() < 16 {
                return Err(SecretError::TooShort.at("http.token"));
            }
        }
        Ok(())
    }

    /// Outbound mail identities for effects.
    pub fn mail_identity(&self) -> MailIdentity {
        let default_domain = self
            .identity
            .message_id_domain
            .clone()
            .unwrap_or_else(|| crate::effects::Sender::default().message_id_domain);
        let sender = |name: &str, identity: &Identity| crate::effects::Sender {
            identity: name.to_string(),
            address: identity.address.trim().to_string(),
            name: identity.name.clone(),
            reply_to: identity.reply_to.clone(),
            message_id_domain: identity
                .message_id_domain
                .clone()
                .unwrap_or_else(|| default_domain.clone()),
        };
        MailIdentity {
            default: sender(DEFAULT_IDENTITY, &self.identity),
            named: self
                .identities
                .iter()
                .map(|(name, identity)| sender(name, identity))
                .collect(),
            accounts: self
                .accounts
                .iter()
                .filter_map(|a| Some((a.name.clone(), a.identity.clone()?)))
                .collect(),
            notices_per_sender: self.failure_replies.per_sender,
            notice_window: Duration::from_secs(self.failure_replies.window_minutes * 60),
        }
    }

    /// Relais's own sender check, when `authentication.verify` asks for it.
    pub fn verifier(&self) -> Result<Option<crate::sources::verify::Verifier>, String> {
        if !self.authentication.verify {
            return Ok(None);
        }
        let servers: Vec<std::net::SocketAddr> = self
            .authentication
            .nameservers
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect();
        crate::sources::verify::Verifier::new(&servers).map(Some)
    }

    /// The names rules and accounts may give as `identity:`.
    pub fn identity_names(&self) -> Vec<String> {
        std::iter::once(DEFAULT_IDENTITY.to_string())
            .chain(self.identities.keys().cloned())
            .collect()
    }

    /// Delay before attempt `attempts + 1` after a temporary failure.
    pub fn retry_delay(&self, attempts: u32) -> Duration {
        let first = self.outbox.retry_seconds.max(1);
        let delay = first.saturating_mul(1u64 << attempts.min(20));
        Duration::from_secs(delay.min(self.outbox.max_retry_seconds.max(first)))
    }
}

/// The message for an `identity:` that names no identity.
pub fn unknown_identity(name: &str, names: &[String]) -> String {
    let mut message = format!(
        "unknown identity `{name}`: define it under `identities:` in relais.yaml (defined: {})",
        names.join(", ")
    );
    if let Some(close) = names.iter().find(|n| strsim::levenshtein(n, name) <= 2) {
        message.push_str(&format!("; did you mean `{close}`?"));
    }
    message
}

/// The JSON Schema of `relais.yaml` (`relais schema config`).
pub fn json_schema() -> serde_json::Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(Config)).unwrap_or_default();
    schema["title"] = serde_json::json!("Relais engine config (relais.yaml)");
    schema
}

/// The name of the top-level `identity:`, and the address check identities
/// share with the effects that send mail.
pub use crate::effects::{DEFAULT_IDENTITY, address_problem};

/// Whether `host` is a loopback name or address.
pub fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("conf/relais.yaml"), text).map_err(|errors| {
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    #[test]
    fn an_empty_file_is_the_default() {
        let config = parse("").expect("valid");
        assert_eq!(config.accounts.len(), 0);
        assert_eq!(config.limits.max_mail_mib, 25);
    }

    #[test]
    fn paths_are_relative_to_the_file() {
        let config = parse("database: data/relais.db\n").expect("valid");
        assert_eq!(config.database, Path::new("conf/data/relais.db"));
        assert_eq!(config.rules, Path::new("conf/rules"));
    }

    #[test]
    fn unknown_keys_are_placed_and_suggested() {
        let error = parse("databse: x.db\n").expect_err("invalid");
        assert!(error.starts_with("conf/relais.yaml:1:1:"), "{error}");
        assert!(error.contains("did you mean `database`"), "{error}");
    }

    #[test]
    fn plain_imap_is_refused_off_loopback() {
        let text = "accounts:\n  - name: a\n    host: imap.example.com\n    security: plain\n    username: u\n    password: { env: P }\n";
        let error = parse(text).expect_err("invalid");
        assert!(error.contains("conf/relais.yaml:4:15:"), "{error}");
        assert!(error.contains("in clear"), "{error}");
        let loopback = text.replace("imap.example.com", "127.0.0.1");
        parse(&loopback).expect("loopback is fine");
    }

    #[test]
    fn secrets_are_never_printed() {
        let secret = Secret {
            env: Some("RELAIS_TEST_SECRET_NEVER_SET".into()),
            file: None,
        };
        let error = secret.resolve().expect_err("unset").to_string();
        assert!(error.contains("RELAIS_TEST_SECRET_NEVER_SET"));
        let value = SecretValue("hunter2".into());
        assert_eq!(format!("{value:?}"), "***");
    }

    #[test]
    fn retry_delays_double_up_to_the_ceiling() {
        let config = Config::default();
        assert_eq!(config.retry_delay(0), Duration::from_secs(30));
        assert_eq!(config.retry_delay(1), Duration::from_secs(60));
        assert_eq!(config.retry_delay(10), Duration::from_secs(3600));
    }
}
