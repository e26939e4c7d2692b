//! The spool source: a watched folder for machines with no IMAP server.
//!
//! Drop `*.eml` files in the folder (write them under another name, or
//! elsewhere, then rename them in: a file being written is not a mail yet),
//! or point it at a Maildir (its `new/` and `cur/`). A file is removed (or,
//! with `spool-done: keep`, moved to `done/`), or moved to `failed/`, only
//! after its processing committed; after a crash, a file still in place is
//! processed again and recognised by its Message-ID. The folder is rescanned on every change the system reports,
//! and every few seconds for file systems that report none.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};

use super::dispatcher::{Job, Task};

/// How often the folder is rescanned without a change notice.
const RESCAN: Duration = Duration::from_secs(2);

/// Mails handed to the dispatcher and not yet settled, at most.
const IN_FLIGHT: usize = 512;

/// How the spool source settles what it read.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Keep a committed file in `done/` rather than remove it.
    pub keep_done: bool,
    /// Bytes of mail read and not yet committed, at most (one mail at
    /// least).
    pub max_in_flight_bytes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            keep_done: false,
            max_in_flight_bytes: 32 << 20,
        }
    }
}

/// The account name spool mail is received on.
pub const ACCOUNT: &str = "spool";

/// Watches `dir` until `shutdown` turns true.
pub async fn run(
    dir: PathBuf,
    jobs: mpsc::Sender<Task>,
    verifier: Option<crate::sources::verify::Verifier>,
    settings: Settings,
    mut shutdown: watch::Receiver<bool>,
) {
    for sub in ["done", "failed"] {
        if let Err(error) = std::fs::create_dir_all(dir.join(sub)) {
            tracing::error!(dir = %dir.display(), error = %error, "cannot create the spool folders; spool source stopped");
            return;
        }
    }
    let (hint_tx, mut hints) = mpsc::unbounded_channel::<()>();
    let _watcher = watch_dir(&dir, hint_tx);
    tracing::info!(dir = %dir.display(), "spool source started");
    let mut intake = Intake::default();
    let mut rescan = tokio::time::interval(RESCAN);
    rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = *shutdown.borrow();
        if stopping && intake.pending.is_empty() {
            break;
        }
        if !stopping {
            // Changes seen so far are covered by the listing about to be
            // made; one seen after it wakes the loop again.
            while hints.try_recv().is_ok() {
                intake.relist = true;
            }
            intake
                .hand_out(&dir, &jobs, verifier.as_ref(), settings)
                .await;
        }
        tokio::select! {
            Some((file, bytes, outcome)) = intake.pending.next(), if !intake.pending.is_empty() => {
                intake.settled(&dir, &file, bytes, outcome, settings);
            }
            _ = hints.recv() => intake.relist = true,
            _ = rescan.tick() => intake.relist = true,
            _ = shutdown.changed(), if !stopping => {}
        }
    }
    tracing::info!("spool source stopped");
}

/// A mail handed to the dispatcher: its file, its size, and where its
/// outcome comes back.
type InFlight =
    std::pin::Pin<Box<dyn std::future::Future<Output = (PathBuf, usize, Outcome)> + Send>>;

/// What comes back for a mail: the report once committed, or why not.
type Outcome = Result<Result<crate::dispatch::Report, String>, oneshot::error::RecvError>;

/// The files of the spool on their way: listed, handed to the dispatcher,
/// settled as each outcome comes back, in whatever order it comes. A mail
/// whose plugin is slow holds up only itself: the source goes on reading
/// and handing out the others.
#[derive(Default)]
struct Intake {
    /// Listed and not yet read.
    queue: std::collections::VecDeque<PathBuf>,
    /// Read, handed out and not yet settled: not listed again.
    taken: std::collections::HashSet<PathBuf>,
    /// Their outcomes, as they come.
    pending: futures::stream::FuturesUnordered<InFlight>,
    /// Bytes of the mails handed out and not yet settled.
    in_flight: usize,
    /// Whether the folder may hold files not listed yet.
    relist: bool,
    /// After a mail that could not be committed, when to look again (its
    /// file stays in place).
    retry_at: Option<Instant>,
}

impl Intake {
    /// Lists the folder when needed, and hands out mails while at most
    /// [`IN_FLIGHT`] of them and `max_in_flight_bytes` wait (one at
    /// least), so memory stays bounded by bytes whatever the mails' size.
    async fn hand_out(
        &mut self,
        dir: &Path,
        jobs: &mpsc::Sender<Task>,
        verifier: Option<&crate::sources::verify::Verifier>,
        settings: Settings,
    ) {
        let now = Instant::now();
        if self.retry_at.is_some_and(|at| now < at) {
            return;
        }
        self.retry_at = None;
        if self.queue.is_empty() && (self.relist || self.pending.is_empty()) {
            self.relist = false;
            let taken = &self.taken;
            self.queue = list(dir)
                .into_iter()
                .filter(|file| !taken.contains(file))
                .collect();
        }
        while let Some(file) = self.queue.pop_front() {
            // Room for this one first: a file is read only when what waits
            // leaves space for it, or nothing waits.
            let size = std::fs::metadata(&file).map_or(0, |m| m.len() as usize);
            if !self.pending.is_empty()
                && (self.pending.len() >= IN_FLIGHT
                    || self.in_flight.saturating_add(size) > settings.max_in_flight_bytes)
            {
                self.queue.push_front(file);
                return;
            }
            // Spool files are local and small next to the limit: a plain
            // read is cheaper than a hop to a blocking thread for each.
            let raw = match std::fs::read(&file) {
                Ok(raw) => raw,
                // Gone meanwhile (taken by another process, or renamed).
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => {
                    tracing::warn!(file = %file.display(), error = %error, "cannot read a spool file; moved to failed/");
                    move_to(dir, &file, "failed");
                    continue;
                }
            };
            let (done, outcome) = oneshot::channel();
            let bytes = raw.len();
            let job = Job {
                parsed: crate::sources::verify::parse_checked(&raw, ACCOUNT, verifier).await,
                raw,
                source: file.display().to_string(),
                receipt: None,
                done,
            };
            if jobs.send(Task::Mail(Box::new(job))).await.is_err() {
                // The dispatcher is gone: the file stays, for later.
                self.queue.clear();
                self.retry_at = Some(Instant::now() + RESCAN);
                return;
            }
            self.in_flight += bytes;
            self.taken.insert(file.clone());
            self.pending
                .push(Box::pin(async move { (file, bytes, outcome.await) }));
        }
    }

    /// One mail's outcome came back: its file is removed or moved, or left
    /// in place when nothing was committed (then looked at again later).
    fn settled(
        &mut self,
        dir: &Path,
        file: &Path,
        bytes: usize,
        outcome: Outcome,
        settings: Settings,
    ) {
        self.in_flight -= bytes;
        self.taken.remove(file);
        if !settle(dir, file, outcome, settings) {
            self.queue.clear();
            self.retry_at = Some(Instant::now() + RESCAN);
            self.relist = true;
        }
    }
}

/// Removes or moves a file once its mail's outcome came back; false if
/// nothing was committed.
fn settle(dir: &Path, file: &Path, outcome: Outcome, settings: Settings) -> bool {
    match outcome {
        Ok(Ok(report)) => {
            match report.outcome {
                crate::dispatch::Outcome::Failed | crate::dispatch::Outcome::Rejected => {
                    move_to(dir, file, "failed")
                }
                _ if settings.keep_done => move_to(dir, file, "done"),
                _ => {
                    if let Err(error) = std::fs::remove_file(file)
                        && error.kind() != std::io::ErrorKind::NotFound
                    {
                        tracing::error!(file = %file.display(), error = %error, "cannot remove a processed spool file; it will be seen again and skipped as a duplicate");
                    }
                }
            }
            true
        }
        Ok(Err(error)) => {
            tracing::error!(file = %file.display(), error = %error, "spool mail not committed; left in place");
            false
        }
        Err(_) => false,
    }
}

/// Mail files ready in the spool: `*.eml` in the folder itself, and the
/// files of a Maildir's `new/` and `cur/`, by name.
pub fn list(dir: &Path) -> Vec<PathBuf> {
    crate::sources::files::in_spool(dir)
}

/// Moves a processed file into `done/` or `failed/`, keeping its name
/// (with a suffix if the name is taken).
fn move_to(dir: &Path, file: &Path, folder: &str) {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "mail".into());
    let mut target = dir.join(folder).join(&name);
    let mut n = 1;
    while target.exists() {
        target = dir.join(folder).join(format!("{name}.{n}"));
        n += 1;
    }
    if let Err(error) = std::fs::rename(file, &target) {
        tracing::error!(file = %file.display(), error = %error, "cannot move a processed spool file; it will be seen again and skipped as a duplicate");
    }
}

/// A change watcher on the folder; `None` where the system offers none (the
/// rescan covers it).
fn watch_dir(dir: &Path, hints: mpsc::UnboundedSender<()>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Reading the folder is itself an event (an open, an access):
        // only what changes it is a hint, or listing would wake listing.
        if event.is_ok_and(|event| crate::reload::is_change(&event.kind)) {
            let _ = hints.send(());
        }
    })
    .map_err(|error| tracing::warn!(error = %error, "no file change notices; rescanning every few seconds"))
    .ok()?;
    for folder in [dir.to_path_buf(), dir.join("new")] {
        if folder.is_dir() {
            let _ = watcher.watch(&folder, notify::RecursiveMode::NonRecursive);
        }
    }
    Some(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_eml_and_maildir_files_but_not_hidden_or_processed_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for sub in ["done", "failed", "new", "cur", "tmp"] {
            std::fs::create_dir_all(root.join(sub)).expect("mkdir");
        }
        for file in [
            "b.eml",
            "a.EML",
            ".writing.eml",
            "notes.txt",
            "done/old.eml",
            "failed/bad.eml",
            "new/1700000000.M1.host",
            "cur/1700000001.M2.host:2,S",
            "tmp/1700000002.M3.host",
        ] {
            std::fs::write(root.join(file), b"x").expect("write");
        }
        let names: Vec<String> = list(root)
            .iter()
            .map(|p| p.strip_prefix(root).expect("inside").display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "a.EML",
                "b.eml",
                "cur/1700000001.M2.host:2,S",
                "new/1700000000.M1.host"
            ]
        );
    }
}
