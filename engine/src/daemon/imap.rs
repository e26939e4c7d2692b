//! The IMAP source: one task per account.
//!
//! It logs in, selects the mailbox, compares its UIDVALIDITY with the one
//! stored (a new one means the UIDs were renumbered: the account starts
//! over, and mails already processed are recognised by Message-ID), fetches
//! every mail above the last UID processed, and hands each to the
//! dispatcher. The last UID moves in the same transaction as the mail's
//! processing; only after that commit is the mail flagged `\Seen` (or moved
//! to the configured folder), and a flag lost to a crash is set on the next
//! connection. Then it waits: IMAP IDLE where the server has it, polling
//! otherwise. A dropped connection is retried with a growing delay.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_imap::Session;
use async_imap::extensions::idle::IdleResponse;
use futures::TryStreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, watch};

use super::dispatcher::{Job, Task};
use crate::config::{Account, Security};
use crate::store::prelude::*;
use crate::store::{ImapReceipt, Store};

/// A connection, with or without TLS.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Debug> Stream for T {}

type ImapSession = Session<Box<dyn Stream>>;

/// How long one IDLE lasts before it is renewed (RFC 2177 asks for less
/// than 29 minutes).
const IDLE_RENEW: Duration = Duration::from_secs(10 * 60);

/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// `UID FETCH` of `uids` for `items`, each answer read by `read` (none
/// when it lacks what was asked), with its UID.
async fn fetch_each<T>(
    session: &mut ImapSession,
    uids: &[u32],
    items: &str,
    read: impl Fn(&async_imap::types::Fetch) -> Option<T>,
) -> Result<Vec<(u32, T)>, ImapError> {
    let mut answers = Vec::with_capacity(uids.len());
    let mut stream = session
        .uid_fetch(uid_set(uids), items)
        .await
        .map_err(failed("UID FETCH"))?;
    while let Some(fetch) = stream.try_next().await.map_err(failed("UID FETCH"))? {
        if let (Some(uid), Some(value)) = (fetch.uid, read(&fetch)) {
            answers.push((uid, value));
        }
    }
    Ok(answers)
}

/// Mails fetched per round trip.
const FETCH_CHUNK: u32 = 200;

/// How often expired mail is looked for, when the account deletes it.
const EXPIRY_CHECK: Duration = Duration::from_secs(3600);

pub use crate::status::SourceState;

/// Watches `account` until `shutdown` turns true.
pub async fn run(
    account: Account,
    store: Store,
    jobs: mpsc::Sender<Task>,
    verifier: Option<crate::sources::verify::Verifier>,
    state: Arc<std::sync::Mutex<SourceState>>,
    max_in_flight_bytes: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let set_state = |value: SourceState| {
        *state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = value;
    };
    let mut backoff = Duration::from_secs(1);
    let mut last_expiry = None;
    loop {
        if *shutdown.borrow() {
            break;
        }
        set_state(SourceState::Connecting);
        let mut connection = Connection {
            account: &account,
            store: store.clone(),
            jobs: &jobs,
            verifier: verifier.as_ref(),
            shutdown: shutdown.clone(),
            last_expiry: &mut last_expiry,
            connected: false,
            max_in_flight_bytes,
        };
        let result = connection.serve(&set_state).await;
        let was_connected = connection.connected;
        match result {
            Ok(()) => break,
            Err(error) => {
                if was_connected {
                    backoff = Duration::from_secs(1);
                }
                tracing::warn!(account = %account.name, error = %error, retry_in_s = backoff.as_secs(), "IMAP connection lost; reconnecting");
                set_state(SourceState::Failing(error.to_string()));
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    tracing::info!(account = %account.name, "IMAP source stopped");
}

/// Why an IMAP connection broke or could not be made: the source says so
/// in its state and the log, and connects again.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    /// The server did not answer in time.
    #[error("connecting to {host}:{port} timed out")]
    Timeout {
        /// The server.
        host: String,
        /// Its port.
        port: u16,
    },
    /// The connection was refused or dropped.
    #[error("cannot connect to {host}:{port}: {source}")]
    Connect {
        /// The server.
        host: String,
        /// Its port.
        port: u16,
        /// What the system said.
        source: std::io::Error,
    },
    /// TLS could not be set up.
    #[error("TLS with {host}: {detail}")]
    Tls {
        /// The server.
        host: String,
        /// What failed.
        detail: String,
    },
    /// The mailbox's UIDVALIDITY changed under the source.
    #[error("UIDVALIDITY changed while expiring; reconnecting")]
    UidValidityChanged,
    /// The mailbox has no UIDVALIDITY, so its UIDs cannot be trusted.
    #[error("the server gives no UIDVALIDITY; UIDs cannot be trusted")]
    NoUidValidity,
    /// The server closed the connection before its greeting.
    #[error("the server closed the connection before its greeting")]
    NoGreeting,
    /// The account's password could not be read.
    #[error("{0}")]
    Password(crate::config::SecretError),
    /// The server refused the login.
    #[error("login as {user} refused: {detail}")]
    Login {
        /// The user name.
        user: String,
        /// The server's answer.
        detail: String,
    },
    /// A command failed: the server's answer, or the connection broke.
    #[error("{command}: {detail}")]
    Command {
        /// The command, e.g. `UID FETCH`.
        command: String,
        /// What went wrong.
        detail: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The dispatcher or the store did not take a mail.
    #[error("{0}")]
    NotCommitted(String),
}

/// The error of `command` failing with what async-imap says.
fn failed(command: impl Into<String>) -> impl FnOnce(async_imap::error::Error) -> ImapError {
    let command = command.into();
    move |error| ImapError::Command {
        command,
        detail: error.to_string(),
    }
}

struct Connection<'a> {
    account: &'a Account,
    store: Store,
    jobs: &'a mpsc::Sender<Task>,
    verifier: Option<&'a crate::sources::verify::Verifier>,
    shutdown: watch::Receiver<bool>,
    last_expiry: &'a mut Option<Instant>,
    connected: bool,
    /// Bytes of mail fetched and not yet committed, at most (one mail at
    /// least).
    max_in_flight_bytes: usize,
}

impl Connection<'_> {
    /// One connection's life: Ok when asked to stop, Err when it broke.
    async fn serve(&mut self, set_state: &impl Fn(SourceState)) -> Result<(), ImapError> {
        let account = self.account;
        let mut session = connect(account).await?;
        if let Some(folder) = &account.move_to {
            // Where processed mail goes; an error here is "already exists".
            let _ = session.create(folder).await;
        }
        let mailbox = session
            .select(&account.mailbox)
            .await
            .map_err(failed(format!("SELECT {}", account.mailbox)))?;
        let uidvalidity = mailbox.uid_validity.ok_or(ImapError::NoUidValidity)?;
        let idle = account.idle
            && session
                .capabilities()
                .await
                .map_err(failed("CAPABILITY"))?
                .has_str("IDLE");
        self.connected = true;
        set_state(SourceState::Connected);
        tracing::info!(account = %account.name, mailbox = %account.mailbox, uidvalidity, idle, "IMAP account connected");
        let last_uid = match self
            .store
            .imap_state(&account.name)
            .map_err(ImapError::from)?
        {
            Some((stored, last)) if stored == uidvalidity => last,
            Some((stored, _)) => {
                tracing::warn!(account = %account.name, old = stored, new = uidvalidity, "UIDVALIDITY changed: fetching the mailbox again; mails already processed are recognised by Message-ID");
                self.reset(uidvalidity)?;
                0
            }
            None => {
                self.reset(uidvalidity)?;
                0
            }
        };
        let mut last_uid = last_uid;
        self.acknowledge_pending(&mut session, uidvalidity).await?;
        loop {
            if *self.shutdown.borrow() {
                let _ = session.logout().await;
                return Ok(());
            }
            last_uid = self.fetch_new(&mut session, uidvalidity, last_uid).await?;
            self.expire(&mut session, uidvalidity).await?;
            if *self.shutdown.borrow() {
                let _ = session.logout().await;
                return Ok(());
            }
            session = if idle {
                self.idle(session).await?
            } else {
                let mut shutdown = self.shutdown.clone();
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(account.poll_seconds)) => {}
                    _ = shutdown.changed() => {}
                }
                // NOOP keeps the session and shows a dead connection now.
                session.noop().await.map_err(failed("NOOP"))?;
                session
            };
        }
    }

    fn reset(&mut self, uidvalidity: u32) -> Result<(), ImapError> {
        Ok(self
            .store
            .reset_imap_state(&self.account.name, uidvalidity)?)
    }

    /// Fetches and processes every mail above `last_uid`; returns the new
    /// last UID.
    async fn fetch_new(
        &mut self,
        session: &mut ImapSession,
        uidvalidity: u32,
        mut last_uid: u32,
    ) -> Result<u32, ImapError> {
        loop {
            let mut uids: Vec<u32> = session
                .uid_search(format!("UID {}:*", last_uid + 1))
                .await
                .map_err(failed("UID SEARCH"))?
                .into_iter()
                // `N:*` always includes the last mail, even below N.
                .filter(|uid| *uid > last_uid)
                .collect();
            if uids.is_empty() {
                return Ok(last_uid);
            }
            uids.sort_unstable();
            uids.truncate(FETCH_CHUNK as usize);
            let uids = self.within_bytes(session, &uids).await?;
            let mut fetched = fetch_each(session, &uids, "(UID BODY.PEEK[])", |fetch| {
                fetch.body().map(<[u8]>::to_vec)
            })
            .await?;
            fetched.sort_by_key(|(uid, _)| *uid);
            // Hand the whole chunk over, then await it: the dispatcher
            // commits what arrives together in one batch.
            let mut waiting = Vec::with_capacity(fetched.len());
            for (uid, raw) in fetched {
                let (done, outcome) = oneshot::channel();
                let job = Job {
                    parsed: crate::sources::verify::parse_checked(
                        &raw,
                        &self.account.name,
                        self.verifier,
                    )
                    .await,
                    raw,
                    source: format!(
                        "imap://{}/{}/{uid}",
                        self.account.name, self.account.mailbox
                    ),
                    receipt: Some(ImapReceipt {
                        account: self.account.name.clone(),
                        uidvalidity,
                        uid,
                    }),
                    done,
                };
                self.jobs
                    .send(Task::Mail(Box::new(job)))
                    .await
                    .map_err(|_| ImapError::NotCommitted("the dispatcher stopped".into()))?;
                waiting.push((uid, outcome));
            }
            let mut committed = Vec::new();
            let mut failure = None;
            for (uid, outcome) in waiting {
                match outcome.await {
                    Ok(Ok(_)) => committed.push(uid),
                    Ok(Err(error)) => {
                        failure.get_or_insert(format!("mail UID {uid} not committed: {error}"));
                    }
                    Err(_) => {
                        failure.get_or_insert("the dispatcher stopped".to_string());
                    }
                }
            }
            if let Some(&highest) = committed.iter().max() {
                last_uid = last_uid.max(highest);
            }
            self.acknowledge(session, uidvalidity, &committed).await?;
            if let Some(error) = failure {
                // Not committed: not acknowledged either; the next
                // connection fetches it again.
                return Err(ImapError::NotCommitted(error));
            }
        }
    }

    /// The first of `uids` whose sizes add up to at most
    /// `max_in_flight_bytes` (the first one whatever its size): what one
    /// round trip fetches and hands over, so memory is bounded by bytes.
    async fn within_bytes(
        &self,
        session: &mut ImapSession,
        uids: &[u32],
    ) -> Result<Vec<u32>, ImapError> {
        let sizes: std::collections::HashMap<u32, usize> =
            fetch_each(session, uids, "(UID RFC822.SIZE)", |fetch| {
                fetch.size.map(|size| size as usize)
            })
            .await?
            .into_iter()
            .collect();
        let mut total = 0usize;
        let mut taken = Vec::with_capacity(uids.len());
        for &uid in uids {
            let size = sizes.get(&uid).copied().unwrap_or(0);
            if !taken.is_empty() && total.saturating_add(size) > self.max_in_flight_bytes {
                break;
            }
            total = total.saturating_add(size);
            taken.push(uid);
        }
        Ok(taken)
    }

    /// Flags (or moves) committed mails, then forgets them as pending.
    async fn acknowledge(
        &mut self,
        session: &mut ImapSession,
        uidvalidity: u32,
        uids: &[u32],
    ) -> Result<(), ImapError> {
        if uids.is_empty() {
            return Ok(());
        }
        let set = uid_set(uids);
        match &self.account.move_to {
            Some(folder) => session
                .uid_mv(&set, folder)
                .await
                .map_err(failed(format!("UID MOVE to {folder}")))?,
            None => {
                let stream = session
                    .uid_store(&set, "+FLAGS.SILENT (\\Seen)")
                    .await
                    .map_err(failed("UID STORE"))?;
                let _: Vec<_> = stream.try_collect().await.map_err(failed("UID STORE"))?;
            }
        }
        self.store
            .imap_acknowledged(&self.account.name, uidvalidity, uids)
            .map_err(ImapError::from)
    }

    /// Acknowledges what committed before a crash or a dropped connection.
    async fn acknowledge_pending(
        &mut self,
        session: &mut ImapSession,
        uidvalidity: u32,
    ) -> Result<(), ImapError> {
        let pending = self
            .store
            .imap_pending(&self.account.name, uidvalidity)
            .map_err(ImapError::from)?;
        if !pending.is_empty() {
            tracing::info!(account = %self.account.name, count = pending.len(), "acknowledging mails processed before the last disconnection");
        }
        for chunk in pending.chunks(FETCH_CHUNK as usize) {
            self.acknowledge(session, uidvalidity, chunk).await?;
        }
        Ok(())
    }

    /// Deletes processed mail older than the account's `delete-after-days`
    /// from the server (the store keeps it).
    async fn expire(
        &mut self,
        session: &mut ImapSession,
        uidvalidity: u32,
    ) -> Result<(), ImapError> {
        let Some(days) = self.account.delete_after_days else {
            return Ok(());
        };
        if self
            .last_expiry
            .is_some_and(|at| at.elapsed() < EXPIRY_CHECK)
        {
            return Ok(());
        }
        *self.last_expiry = Some(Instant::now());
        if let Some(folder) = &self.account.move_to {
            return self.expire_moved(session, folder, days, uidvalidity).await;
        }
        let expired = self
            .store
            .imap_expired(&self.account.name, uidvalidity, days)
            .map_err(ImapError::from)?;
        for chunk in expired.chunks(FETCH_CHUNK as usize) {
            delete(session, chunk, &self.account.mailbox).await?;
            self.store
                .imap_deleted(&self.account.name, uidvalidity, chunk)
                .map_err(ImapError::from)?;
            tracing::info!(account = %self.account.name, count = chunk.len(), days, "deleted processed mail from the server");
        }
        Ok(())
    }

    /// With `move-to`, processed mail lives in that folder, under UIDs of
    /// its own: there, mail that arrived `days` days ago or more is deleted
    /// (by its arrival date, which a move keeps), then the watched mailbox
    /// is selected again.
    async fn expire_moved(
        &mut self,
        session: &mut ImapSession,
        folder: &str,
        days: u32,
        uidvalidity: u32,
    ) -> Result<(), ImapError> {
        session
            .select(folder)
            .await
            .map_err(failed(format!("SELECT {folder}")))?;
        // IMAP's BEFORE compares dates: the day after the cut-off keeps
        // nothing younger than `days` days.
        let cutoff = (chrono::Utc::now() - chrono::Duration::days(i64::from(days))).date_naive()
            + chrono::Duration::days(1);
        let query = format!("BEFORE {}", cutoff.format("%d-%b-%Y"));
        let mut expired: Vec<u32> = session
            .uid_search(&query)
            .await
            .map_err(failed(format!("UID SEARCH {query} in {folder}")))?
            .into_iter()
            .collect();
        expired.sort_unstable();
        for chunk in expired.chunks(FETCH_CHUNK as usize) {
            delete(session, chunk, folder).await?;
            tracing::info!(account = %self.account.name, folder, count = chunk.len(), days, "deleted processed mail from the server");
        }
        let mailbox = session
            .select(&self.account.mailbox)
            .await
            .map_err(failed(format!("SELECT {}", self.account.mailbox)))?;
        if mailbox.uid_validity != Some(uidvalidity) {
            return Err(ImapError::UidValidityChanged);
        }
        Ok(())
    }

    /// Waits in IDLE for new mail, a renewal, or shutdown.
    async fn idle(&mut self, session: ImapSession) -> Result<ImapSession, ImapError> {
        let mut handle = session.idle();
        handle.init().await.map_err(failed("IDLE"))?;
        let renew = self
            .account
            .idle_check_ms
            .map(|ms| Duration::from_millis(ms).min(IDLE_RENEW))
            .unwrap_or(IDLE_RENEW);
        let (wait, stop) = handle.wait_with_timeout(renew);
        let mut shutdown = self.shutdown.clone();
        let response = tokio::select! {
            response = wait => response.map_err(failed("IDLE"))?,
            _ = shutdown.changed() => {
                drop(stop);
                IdleResponse::ManualInterrupt
            }
        };
        if let IdleResponse::NewData(data) = &response {
            tracing::debug!(account = %self.account.name, response = ?data.parsed(), "IDLE: server news");
        }
        handle.done().await.map_err(failed("IDLE DONE"))
    }
}

/// Deletes these UIDs of the selected `mailbox` from the server: flagged
/// `\\Deleted`, then expunged (those only, with UIDPLUS's `UID EXPUNGE`).
async fn delete(session: &mut ImapSession, uids: &[u32], mailbox: &str) -> Result<(), ImapError> {
    let set = uid_set(uids);
    let stream = session
        .uid_store(&set, "+FLAGS.SILENT (\\Deleted)")
        .await
        .map_err(failed(format!("UID STORE \\Deleted in {mailbox}")))?;
    let _: Vec<_> = stream
        .try_collect()
        .await
        .map_err(failed(format!("UID STORE \\Deleted in {mailbox}")))?;
    let stream = session
        .uid_expunge(&set)
        .await
        .map_err(failed(format!("UID EXPUNGE in {mailbox}")))?;
    let _: Vec<_> = stream
        .try_collect()
        .await
        .map_err(failed(format!("UID EXPUNGE in {mailbox}")))?;
    Ok(())
}

/// `1,3:5,9` from sorted UIDs.
fn uid_set(uids: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end + 1 {
            i += 1;
            end = uids[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// Connects and logs in.
async fn connect(account: &Account) -> Result<ImapSession, ImapError> {
    let address = (account.host.as_str(), account.port());
    let tcp = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::net::TcpStream::connect(address),
    )
    .await
    .map_err(|_| ImapError::Timeout {
        host: account.host.clone(),
        port: account.port(),
    })?
    .map_err(|source| ImapError::Connect {
        host: account.host.clone(),
        port: account.port(),
        source,
    })?;
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Stream> = match account.security {
        Security::Plain => Box::new(tcp),
        Security::Tls => Box::new(tls(&account.host, tcp).await?),
    };
    let mut client = async_imap::Client::new(stream);
    client
        .read_response()
        .await
        .map_err(|e| ImapError::Command {
            command: "no greeting".into(),
            detail: e.to_string(),
        })?
        .ok_or(ImapError::NoGreeting)?;
    let password = account.password.resolve().map_err(ImapError::Password)?;
    client
        .login(&account.username, password.expose())
        .await
        .map_err(|(e, _)| ImapError::Login {
            user: account.username.clone(),
            detail: e.to_string(),
        })
}

async fn tls(
    host: &str,
    tcp: tokio::net::TcpStream,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, ImapError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ImapError::Tls {
        host: host.to_string(),
        detail: e.to_string(),
    })?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name =
        rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| ImapError::Tls {
            host: host.to_string(),
            detail: format!("invalid server name: {e}"),
        })?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| ImapError::Tls {
            host: host.to_string(),
            detail: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::uid_set;

    #[test]
    fn uid_sets_compress_runs() {
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(uid_set(&[42]), "42");
    }
}
