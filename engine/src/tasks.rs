//! What the one writer of the store is handed: a mail from a source, or a
//! call (the HTTP API's writes, the scheduler's runs, the engine's status),
//! each with where its answer goes once committed. The sources, the API
//! and the dispatcher (`daemon::dispatcher`) all speak these.

use tokio::sync::oneshot;

use crate::app::manual::{Via, Write, Written};
pub use crate::app::{CallError, Command};
use crate::dispatch::{Dispatcher, Report};
use crate::sources::mail::{MailError, ParsedMail};
use crate::store::ImapReceipt;

/// One mail to process.
#[derive(Debug)]
pub struct Job {
    /// The raw message.
    pub raw: Vec<u8>,
    /// The message parsed, by the source (so parsing runs beside the
    /// dispatcher rather than on its thread).
    pub parsed: Result<ParsedMail, MailError>,
    /// Where it came from, for the trace (a file, `imap://account/uid`).
    pub source: String,
    /// Its IMAP origin, recorded with its processing.
    pub receipt: Option<ImapReceipt>,
    /// Where the outcome goes: the report once committed, or why nothing
    /// was committed (then the source must not acknowledge the mail).
    pub done: oneshot::Sender<Result<Report, String>>,
}

/// What a call answers: a JSON document.
pub type CallResult = Result<serde_json::Value, CallError>;

/// Work the HTTP API (or another caller) runs on the dispatcher thread.
pub type Work = Box<dyn FnOnce(&mut Dispatcher<'_>) -> CallResult + Send>;

/// One call: its work and where its answer goes, once committed.
pub struct Call {
    /// The work.
    pub work: Work,
    /// The answer.
    pub done: oneshot::Sender<CallResult>,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Call")
    }
}

/// A command and where its answer goes once committed.
#[derive(Debug)]
pub struct CommandTask {
    /// What to do.
    pub command: Command,
    /// The run's report, or why nothing was done.
    pub done: oneshot::Sender<Result<Report, CallError>>,
}

/// A write a person asked for, who asked through what, and where its
/// answer goes once committed.
#[derive(Debug)]
pub struct WriteTask {
    /// What to write.
    pub write: Write,
    /// Through what it was asked.
    pub via: Via,
    /// What was written, or why nothing was.
    pub done: oneshot::Sender<Result<Written, CallError>>,
}

/// A task for the dispatcher.
#[derive(Debug)]
pub enum Task {
    /// A mail from a source.
    Mail(Box<Job>),
    /// A command.
    Command(Box<CommandTask>),
    /// A write a person asked for.
    Write(Box<WriteTask>),
    /// A call.
    Call(Call),
}
