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
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use super::dispatcher::{Job, Task};
use crate::dispatch::Outcome;

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
    loop {
        if *shutdown.borrow() {
            break;
        }
        let files = list(&dir);
        if files.is_empty() {
            tokio::select! {
                _ = hints.recv() => {}
                _ = tokio::time::sleep(RESCAN) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        if !process(&dir, &files, &jobs, verifier.as_ref(), settings, &shutdown).await {
            // The dispatcher is gone or the store failed: wait, retry.
            tokio::select! {
                _ = tokio::time::sleep(RESCAN) => {}
                _ = shutdown.changed() => {}
            }
        }
        // Changes seen while processing are covered by the next scan.
        while hints.try_recv().is_ok() {}
    }
    tracing::info!("spool source stopped");
}

/// Processes `files`, keeping up to [`IN_FLIGHT`] mails, and at most
/// `max_in_flight_bytes` of them, handed to the dispatcher while the
/// outcomes of the oldest come back, so that reading files and moving them
/// never leaves the dispatcher idle and memory stays bounded whatever the
/// mails' size. False when the store could not commit some of them (they
/// stay in place).
async fn process(
    dir: &Path,
    files: &[PathBuf],
    jobs: &mpsc::Sender<Task>,
    verifier: Option<&crate::sources::verify::Verifier>,
    settings: Settings,
    shutdown: &watch::Receiver<bool>,
) -> bool {
    let mut waiting: std::collections::VecDeque<(PathBuf, usize, Settled)> =
        std::collections::VecDeque::with_capacity(IN_FLIGHT);
    let mut in_flight = 0usize;
    let mut all_committed = true;
    for file in files {
        if *shutdown.borrow() {
            break;
        }
        // Room for this one first: a file is read only when what waits
        // leaves space for it, or nothing waits.
        let size = std::fs::metadata(file).map_or(0, |m| m.len() as usize);
        while !waiting.is_empty()
            && (waiting.len() >= IN_FLIGHT
                || in_flight.saturating_add(size) > settings.max_in_flight_bytes)
        {
            let Some((file, bytes, outcome)) = waiting.pop_front() else {
                break;
            };
            in_flight -= bytes;
            all_committed &= settle(dir, &file, outcome, settings).await;
        }
        // Spool files are local and small next to the limit: a plain read
        // is cheaper than a hop to a blocking thread for each.
        let raw = match std::fs::read(file) {
            Ok(raw) => raw,
            // Gone meanwhile (taken by another process, or renamed).
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => {
                tracing::warn!(file = %file.display(), error = %error, "cannot read a spool file; moved to failed/");
                move_to(dir, file, "failed");
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
            return false;
        }
        in_flight += bytes;
        waiting.push_back((file.clone(), bytes, outcome));
    }
    while let Some((file, _, outcome)) = waiting.pop_front() {
        all_committed &= settle(dir, &file, outcome, settings).await;
    }
    all_committed
}

/// Where a mail's outcome comes back once committed.
type Settled = oneshot::Receiver<Result<crate::dispatch::Report, String>>;

/// Waits for one file's outcome and removes or moves it; false if not
/// committed.
async fn settle(dir: &Path, file: &Path, outcome: Settled, settings: Settings) -> bool {
    match outcome.await {
        Ok(Ok(report)) => {
            match report.outcome {
                Outcome::Failed | Outcome::Rejected => move_to(dir, file, "failed"),
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
