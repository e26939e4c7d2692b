//! The outbox sender: delivers committed outbox mail through SMTP, or into
//! the pickup directory by default, with retries and exponential backoff on
//! temporary failures and a `failed` state with the server's answer on
//! permanent ones.
//!
//! What a crash can do, and why:
//! - Each attempt is counted in the store before the mail goes out, and
//!   each outcome is recorded before the next mail is sent: a crash
//!   repeats at most the one mail that was in flight.
//! - Over SMTP that one mail may be sent twice: between the server's
//!   acceptance (`250`) and our record of it there is always a moment, and
//!   no SMTP client can close it (the protocol has no way to ask "did you
//!   get it?"). The repeat carries the same Message-ID, which receiving
//!   systems use to drop duplicates.
//! - In the pickup directory a mail is written under a hidden name, its
//!   delivery recorded, and only then renamed to `<message-id>.eml`; at
//!   start-up, a hidden file whose delivery was recorded is renamed, one
//!   whose delivery was not is removed. A reader that takes the `.eml`
//!   files therefore sees each mail exactly once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use super::dispatcher::{Call, CallError, Task};
use crate::config::{Config, Smtp, SmtpSecurity};
use crate::store::prelude::*;
use crate::store::{Delivery, DeliveryMark, Store};

/// How often the outbox is looked at when nothing wakes the sender.
const IDLE_POLL: Duration = Duration::from_secs(5);

/// Where mail goes.
pub enum Transport {
    /// Files in a directory.
    Pickup(PathBuf),
    /// An SMTP relay.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Pickup(dir) => write!(f, "Pickup({})", dir.display()),
            Transport::Smtp(_) => f.write_str("Smtp"),
        }
    }
}

/// What became of one delivery attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Accepted, with the server's answer.
    Sent(String),
    /// Try again later.
    Temporary(String),
    /// Will never be accepted as it is.
    Permanent(String),
}

/// Why the sender cannot go on with a mail or a record.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The SMTP relay of `relais.yaml` cannot be set up.
    #[error("SMTP relay {host}: {error}")]
    Relay {
        /// The relay's host.
        host: String,
        /// What lettre said.
        error: lettre::transport::smtp::Error,
    },
    /// An outbox row does not make a mail (a bad address or header).
    #[error("{0}")]
    Message(String),
    /// A delivery could not be recorded in the store.
    #[error("cannot record: {0}")]
    Record(crate::store::StoreError),
    /// The dispatcher refused or failed the record.
    #[error("cannot record: {0}")]
    Refused(CallError),
    /// The dispatcher stopped.
    #[error("the dispatcher stopped")]
    Stopped,
    /// The relay's password cannot be read.
    #[error("outbox.smtp: password: {0}")]
    Password(crate::config::SecretError),
}

impl Transport {
    /// The transport the config asks for.
    pub fn from_config(config: &Config) -> Result<Transport, SendError> {
        match &config.outbox.smtp {
            None => Ok(Transport::Pickup(config.outbox.pickup.clone())),
            Some(smtp) => smtp_transport(smtp).map(Transport::Smtp),
        }
    }

    /// Short description for the logs (never a secret).
    pub fn describe(&self, config: &Config) -> String {
        match (self, &config.outbox.smtp) {
            (Transport::Smtp(_), Some(smtp)) => {
                format!("smtp://{}:{} ({:?})", smtp.host, smtp.port(), smtp.security)
            }
            _ => format!("pickup directory {}", config.outbox.pickup.display()),
        }
    }

    async fn deliver(&self, message: &Message, null_sender: bool) -> Attempt {
        match self {
            Transport::Pickup(dir) => stage(dir, message).await,
            Transport::Smtp(smtp) => {
                let mut envelope = message.envelope().clone();
                if null_sender {
                    // Failure notices go out with an empty envelope sender
                    // (`MAIL FROM:<>`), so that nothing bounces back to us.
                    match lettre::address::Envelope::new(None, envelope.to().to_vec()) {
                        Ok(empty) => envelope = empty,
                        Err(error) => return Attempt::Permanent(error.to_string()),
                    }
                }
                match smtp.send_raw(&envelope, &message.formatted()).await {
                    Ok(response) => Attempt::Sent(format!(
                        "{} {}",
                        response.code(),
                        response.message().collect::<Vec<_>>().join(" ")
                    )),
                    Err(error) if error.is_permanent() => Attempt::Permanent(error.to_string()),
                    Err(error) => Attempt::Temporary(error.to_string()),
                }
            }
        }
    }
}

fn smtp_transport(smtp: &Smtp) -> Result<AsyncSmtpTransport<Tokio1Executor>, SendError> {
    let failed = |error| SendError::Relay {
        host: smtp.host.clone(),
        error,
    };
    let builder = match smtp.security {
        SmtpSecurity::Starttls => {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host).map_err(failed)?
        }
        SmtpSecurity::Tls => {
            AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host).map_err(failed)?
        }
        SmtpSecurity::Plain => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
    };
    let mut builder = builder
        .port(smtp.port())
        .timeout(Some(Duration::from_secs(smtp.timeout_seconds.max(1))));
    if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
        let password = password.resolve().map_err(SendError::Password)?;
        builder = builder.credentials(Credentials::new(
            user.clone(),
            password.expose().to_string(),
        ));
    }
    Ok(builder.build())
}

/// The file name of a mail in the pickup directory, and of its hidden
/// version while its delivery is not recorded.
fn pickup_names(message_id: &str) -> (String, String) {
    let id = message_id
        .trim_matches(['<', '>'])
        .replace(['/', '\\'], "_");
    (format!("{id}.eml"), format!(".{id}.tmp"))
}

/// Writes the mail under its hidden name, synced to disk; it becomes
/// visible only once its delivery is recorded ([`Transport::publish`]).
async fn stage(dir: &Path, message: &Message) -> Attempt {
    let id = message
        .headers()
        .get_raw("Message-ID")
        .unwrap_or("mail")
        .to_string();
    let (_, hidden) = pickup_names(&id);
    let bytes = message.formatted();
    let path = dir.join(hidden);
    let write = tokio::task::spawn_blocking({
        let dir = dir.to_path_buf();
        move || -> std::io::Result<()> {
            use std::io::Write;
            std::fs::create_dir_all(&dir)?;
            let mut file = std::fs::File::create(&path)?;
            file.write_all(&bytes)?;
            file.sync_all()
        }
    });
    match write.await {
        Ok(Ok(())) => Attempt::Sent(format!("written to {}", dir.display())),
        Ok(Err(error)) => Attempt::Temporary(format!("cannot write to {}: {error}", dir.display())),
        Err(error) => Attempt::Temporary(format!("cannot write to {}: {error}", dir.display())),
    }
}

impl Transport {
    /// Makes a recorded pickup delivery visible: the hidden file takes its
    /// `.eml` name. Nothing to do over SMTP.
    async fn publish(&self, message_id: &str) {
        let Transport::Pickup(dir) = self else {
            return;
        };
        let (visible, hidden) = pickup_names(message_id);
        if let Err(error) = tokio::fs::rename(dir.join(&hidden), dir.join(&visible)).await {
            tracing::error!(file = %hidden, error = %error, "cannot publish a delivered mail in the pickup folder");
        }
    }

    /// After a crash: hidden pickup files whose delivery was recorded are
    /// published, the others removed (their mail is still queued and is
    /// written again).
    pub async fn recover(&self, store: &impl Outbox) {
        let Transport::Pickup(dir) = self else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name
                .strip_prefix('.')
                .and_then(|rest| rest.strip_suffix(".tmp"))
            else {
                continue;
            };
            match store.outbox_status(id) {
                Ok(Some(status)) if status == "sent" => self.publish(id).await,
                Ok(_) => {
                    let _ = std::fs::remove_file(entry.path());
                }
                Err(error) => {
                    tracing::warn!(file = %name, error = %error, "cannot tell whether a staged mail was delivered");
                }
            }
        }
    }
}

/// Builds the RFC 5322 message of an outbox row. Its `From` is the one
/// its identity put in its headers; `fallback` for rows queued before
/// identities were recorded with the mail.
pub fn build_message(delivery: &Delivery, fallback: &str) -> Result<Message, SendError> {
    let mail = &delivery.mail;
    let from = mail
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("From"))
        .map_or(fallback, |(_, value)| value.as_str());
    let from: Mailbox = from
        .parse()
        .map_err(|e| SendError::Message(format!("invalid sender address `{from}`: {e}")))?;
    let mut builder = Message::builder()
        .from(from)
        .subject(mail.subject.clone())
        .header(lettre::message::header::ContentType::TEXT_PLAIN)
        .message_id(Some(format!("<{}>", mail.message_id)));
    for to in &mail.to {
        let address: Address = to
            .trim()
            .parse()
            .map_err(|e| SendError::Message(format!("invalid recipient address `{to}`: {e}")))?;
        builder = builder.to(Mailbox::new(None, address));
    }
    let mut message = builder
        .body(mail.body.clone())
        .map_err(|e| SendError::Message(format!("cannot build the mail: {e}")))?;
    for (name, value) in mail
        .headers
        .iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("From"))
    {
        let name = HeaderName::new_from_ascii(name.clone())
            .map_err(|e| SendError::Message(format!("invalid header name `{name}`: {e}")))?;
        message
            .headers_mut()
            .insert_raw(HeaderValue::new(name, value.clone()));
    }
    Ok(message)
}

/// Where the sender records deliveries.
#[derive(Debug, Clone)]
pub enum Ledger {
    /// Straight into the store: when nothing else writes (`relais demo`).
    Store(Store),
    /// Through the dispatcher, the store's one writer in the daemon: the
    /// records wait their turn among the events instead of fighting them
    /// for SQLite's write lock (which starves the sender under load, and
    /// can lose a record to a busy timeout, then send the mail twice).
    Dispatcher(mpsc::Sender<Task>),
}

impl Ledger {
    async fn record(&self, marks: Vec<(i64, DeliveryMark)>) -> Result<(), SendError> {
        match self {
            Ledger::Store(store) => store
                .clone()
                .record_deliveries(&marks)
                .map_err(SendError::Record),
            Ledger::Dispatcher(tasks) => {
                let (done, answer) = oneshot::channel();
                let work = Box::new(move |dispatcher: &mut crate::dispatch::Dispatcher<'_>| {
                    dispatcher
                        .store
                        .record_deliveries(&marks)
                        .map(|()| serde_json::Value::Null)
                        .map_err(|e| CallError::Internal(e.to_string()))
                });
                tasks
                    .send(Task::Call(Call { work, done }))
                    .await
                    .map_err(|_| SendError::Stopped)?;
                match answer.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(error)) => Err(SendError::Refused(error)),
                    Err(_) => Err(SendError::Stopped),
                }
            }
        }
    }

    /// Records `marks`. A delivery that went out must be recorded, or it
    /// goes out again: tries a few times before giving up. Returns whether
    /// it was recorded.
    async fn flush(&self, marks: Vec<(i64, DeliveryMark)>) -> bool {
        let mut tries = 0;
        while let Err(error) = self.record(marks.clone()).await {
            tries += 1;
            if tries >= 5 {
                tracing::error!(error = %error, mails = marks.len(), "cannot record deliveries; they may be repeated");
                return false;
            }
            tracing::warn!(error = %error, "cannot record deliveries yet; trying again");
            tokio::time::sleep(Duration::from_millis(200 * tries)).await;
        }
        true
    }
}

/// Delivers due outbox mail until `shutdown` turns true, recording each
/// attempt and each delivery through `ledger` before the next mail goes
/// out. `wake` is notified after each commit that may have queued mail.
pub async fn run(
    store: Store,
    ledger: Ledger,
    config: Arc<Config>,
    transport: Transport,
    wake: Arc<Notify>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
    mut shutdown: watch::Receiver<bool>,
) {
    tracing::info!(transport = %transport.describe(&config), "outbox sender started");
    transport.recover(&store).await;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let due = match store.due_mail(64) {
            Ok(due) => due,
            Err(error) => {
                tracing::error!(error = %error, "cannot read the outbox");
                Vec::new()
            }
        };
        if due.is_empty() {
            let wait = next_wait(&store);
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        for delivery in due {
            if *shutdown.borrow() {
                break;
            }
            deliver_one(&config, &transport, &ledger, metrics.as_deref(), &delivery).await;
        }
    }
    tracing::info!("outbox sender stopped");
}

/// One delivery: its attempt counted, the mail sent, the outcome recorded,
/// then (for the pickup folder) the mail made visible. Returns whether it
/// was delivered.
async fn deliver_one(
    config: &Config,
    transport: &Transport,
    ledger: &Ledger,
    metrics: Option<&crate::metrics::Metrics>,
    delivery: &Delivery,
) -> bool {
    let next = chrono::Utc::now()
        + chrono::Duration::from_std(config.retry_delay(delivery.attempts))
            .unwrap_or(chrono::Duration::seconds(30));
    let attempt = DeliveryMark::Attempt {
        next: next.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    };
    if let Err(error) = ledger.record(vec![(delivery.id, attempt)]).await {
        // Not counted, not sent: it stays due.
        tracing::warn!(outbox = delivery.id, error = %error, "cannot count a delivery attempt; not sending now");
        return false;
    }
    let started = std::time::Instant::now();
    let mark = send_one(config, transport, delivery).await;
    if let Some(metrics) = metrics {
        let outcome = match mark {
            DeliveryMark::Sent(_) => "sent",
            DeliveryMark::Failed(_) => "failed",
            _ => "retry",
        };
        metrics.delivered(outcome, started.elapsed());
    }
    let sent = matches!(mark, DeliveryMark::Sent(_));
    if ledger.flush(vec![(delivery.id, mark)]).await && sent {
        transport.publish(&delivery.mail.message_id).await;
    }
    sent
}

/// Delivers every mail due now, once; returns how many were sent. For
/// one-shot runs (`relais demo`) that have no sender task.
pub async fn drain(store: &Store, config: &Config, transport: &Transport) -> usize {
    transport.recover(store).await;
    let Ok(due) = store.due_mail(usize::MAX >> 1) else {
        return 0;
    };
    let ledger = Ledger::Store(store.clone());
    let mut sent = 0;
    for delivery in &due {
        sent += usize::from(deliver_one(config, transport, &ledger, None, delivery).await);
    }
    sent
}

/// How long until the next queued mail is due (at most [`IDLE_POLL`]).
fn next_wait(store: &impl Outbox) -> Duration {
    let Ok(Some(next)) = store.next_due() else {
        return IDLE_POLL;
    };
    (next - chrono::Utc::now())
        .to_std()
        .unwrap_or(Duration::ZERO)
        .min(IDLE_POLL)
}

/// One attempt, and what to record of it.
async fn send_one(config: &Config, transport: &Transport, delivery: &Delivery) -> DeliveryMark {
    let id = delivery.id;
    let message_id = &delivery.mail.message_id;
    let attempt = match build_message(delivery, &config.identity.address) {
        Ok(message) => {
            transport
                .deliver(&message, delivery.mail.kind == "failure-reply")
                .await
        }
        Err(error) => Attempt::Permanent(error.to_string()),
    };
    match &attempt {
        Attempt::Sent(answer) => {
            tracing::info!(outbox = id, message_id = %message_id, "mail sent");
            DeliveryMark::Sent(answer.clone())
        }
        Attempt::Permanent(error) => {
            tracing::warn!(outbox = id, message_id = %message_id, error = %error, "mail refused permanently");
            DeliveryMark::Failed(error.clone())
        }
        Attempt::Temporary(error) if delivery.attempts + 1 >= config.outbox.max_attempts => {
            tracing::warn!(outbox = id, message_id = %message_id, error = %error, "mail failed too many times");
            DeliveryMark::Failed(format!(
                "{error} (gave up after {} attempts)",
                delivery.attempts + 1
            ))
        }
        Attempt::Temporary(error) => {
            let delay = config.retry_delay(delivery.attempts);
            let next = chrono::Utc::now()
                + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(30));
            tracing::info!(outbox = id, message_id = %message_id, error = %error, retry_in_s = delay.as_secs(), "mail delivery failed; will retry");
            DeliveryMark::Retry {
                error: error.clone(),
                next: next.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            }
        }
    }
}
