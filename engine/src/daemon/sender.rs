//! The outbox sender: delivers committed outbox mail through SMTP, or into
//! the pickup directory by default, with retries and exponential backoff on
//! temporary failures and a `failed` state with the server's answer on
//! permanent ones.
//!
//! Each mail keeps the Message-ID it was queued with. In the pickup
//! directory the file is named after it, so a delivery repeated after a
//! crash rewrites the same file; over SMTP the window between the server's
//! acceptance and the `sent` record is at most [`RECORD_WAIT`] (deliveries
//! are recorded in groups, through the dispatcher in the daemon), and a
//! repeat carries the same Message-ID, which receiving systems use to drop
//! duplicates.

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

impl Transport {
    /// The transport the config asks for.
    pub fn from_config(config: &Config) -> Result<Transport, String> {
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
            Transport::Pickup(dir) => pickup(dir, message).await,
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

fn smtp_transport(smtp: &Smtp) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let failed = |e: lettre::transport::smtp::Error| format!("SMTP relay {}: {e}", smtp.host);
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
        let password = password.resolve()?;
        builder = builder.credentials(Credentials::new(
            user.clone(),
            password.expose().to_string(),
        ));
    }
    Ok(builder.build())
}

/// Writes the mail as `<message-id>.eml`: written aside, then renamed in,
/// so a reader never sees half a mail, and a repeat replaces the same file.
async fn pickup(dir: &Path, message: &Message) -> Attempt {
    let id = message
        .headers()
        .get_raw("Message-ID")
        .unwrap_or("mail")
        .trim_matches(['<', '>'])
        .replace(['/', '\\'], "_");
    let bytes = message.formatted();
    let write = async {
        tokio::fs::create_dir_all(dir).await?;
        let temporary = dir.join(format!(".{id}.tmp"));
        tokio::fs::write(&temporary, &bytes).await?;
        tokio::fs::rename(&temporary, dir.join(format!("{id}.eml"))).await
    };
    match write.await {
        Ok(()) => Attempt::Sent(format!("written to {}", dir.display())),
        Err(error) => Attempt::Temporary(format!("cannot write to {}: {error}", dir.display())),
    }
}

/// Builds the RFC 5322 message of an outbox row. Its `From` is the one
/// its identity put in its headers; `fallback` for rows queued before
/// identities were recorded with the mail.
pub fn build_message(delivery: &Delivery, fallback: &str) -> Result<Message, String> {
    let mail = &delivery.mail;
    let from = mail
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("From"))
        .map_or(fallback, |(_, value)| value.as_str());
    let from: Mailbox = from
        .parse()
        .map_err(|e| format!("invalid sender address `{from}`: {e}"))?;
    let mut builder = Message::builder()
        .from(from)
        .subject(mail.subject.clone())
        .header(lettre::message::header::ContentType::TEXT_PLAIN)
        .message_id(Some(format!("<{}>", mail.message_id)));
    for to in &mail.to {
        let address: Address = to
            .trim()
            .parse()
            .map_err(|e| format!("invalid recipient address `{to}`: {e}"))?;
        builder = builder.to(Mailbox::new(None, address));
    }
    let mut message = builder
        .body(mail.body.clone())
        .map_err(|e| format!("cannot build the mail: {e}"))?;
    for (name, value) in mail
        .headers
        .iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("From"))
    {
        let name = HeaderName::new_from_ascii(name.clone())
            .map_err(|e| format!("invalid header name `{name}`: {e}"))?;
        message
            .headers_mut()
            .insert_raw(HeaderValue::new(name, value.clone()));
    }
    Ok(message)
}

/// Most deliveries recorded together, and the longest a delivery waits
/// for its record: a crash can repeat at most these (with the same
/// Message-IDs).
const RECORD_GROUP: usize = 32;
const RECORD_WAIT: Duration = Duration::from_millis(50);

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
    async fn record(&self, marks: Vec<(i64, DeliveryMark)>) -> Result<(), String> {
        match self {
            Ledger::Store(store) => store
                .clone()
                .record_deliveries(&marks)
                .map_err(|e| e.to_string()),
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
                    .map_err(|_| "the dispatcher stopped".to_string())?;
                match answer.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(error)) => Err(error.to_string()),
                    Err(_) => Err("the dispatcher stopped".to_string()),
                }
            }
        }
    }

    /// Records `marks`, emptying it. A delivery that went out must be
    /// recorded, or it goes out again: tries a few times before giving up.
    async fn flush(&self, marks: &mut Vec<(i64, DeliveryMark)>) {
        if marks.is_empty() {
            return;
        }
        let marks = std::mem::take(marks);
        let mut tries = 0;
        while let Err(error) = self.record(marks.clone()).await {
            tries += 1;
            if tries >= 5 {
                tracing::error!(error = %error, mails = marks.len(), "cannot record deliveries; they may be repeated");
                return;
            }
            tracing::warn!(error = %error, "cannot record deliveries yet; trying again");
            tokio::time::sleep(Duration::from_millis(200 * tries)).await;
        }
    }
}

/// Delivers due outbox mail until `shutdown` turns true, recording each
/// delivery through `ledger`. `wake` is notified after each commit that may
/// have queued mail.
pub async fn run(
    store: Store,
    ledger: Ledger,
    config: Arc<Config>,
    transport: Transport,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    tracing::info!(transport = %transport.describe(&config), "outbox sender started");
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
        let mut marks = Vec::new();
        let mut oldest = None;
        for delivery in due {
            if *shutdown.borrow() {
                break;
            }
            marks.push((delivery.id, send_one(&config, &transport, &delivery).await));
            let since = *oldest.get_or_insert_with(std::time::Instant::now);
            if marks.len() >= RECORD_GROUP || since.elapsed() >= RECORD_WAIT {
                ledger.flush(&mut marks).await;
                oldest = None;
            }
        }
        ledger.flush(&mut marks).await;
    }
    tracing::info!("outbox sender stopped");
}

/// Delivers every mail due now, once; returns how many were sent. For
/// one-shot runs (`relais demo`) that have no sender task.
pub async fn drain(store: &Store, config: &Config, transport: &Transport) -> usize {
    let mut sent = 0;
    let Ok(due) = store.due_mail(usize::MAX >> 1) else {
        return 0;
    };
    let mut marks = Vec::new();
    for delivery in &due {
        let mark = send_one(config, transport, delivery).await;
        sent += usize::from(matches!(mark, DeliveryMark::Sent(_)));
        marks.push((delivery.id, mark));
    }
    Ledger::Store(store.clone()).flush(&mut marks).await;
    sent
}

/// How long until the next queued mail is due (at most [`IDLE_POLL`]).
fn next_wait(store: &Store) -> Duration {
    let Ok(Some(next)) = store.next_due() else {
        return IDLE_POLL;
    };
    let Ok(next) = chrono::DateTime::parse_from_rfc3339(&next) else {
        return Duration::ZERO;
    };
    (next.with_timezone(&chrono::Utc) - chrono::Utc::now())
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
        Err(error) => Attempt::Permanent(error),
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
