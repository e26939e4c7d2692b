//! One engine per store: `relais run` holds a lock on `STORE.lock` for its
//! whole life.
//!
//! Two engines on one store would both deliver the outbox (every alert
//! twice) and both take the same mail. The lock is an OS file lock
//! (`flock`), so the kernel frees it when the process ends, however it
//! ends: a crash or a SIGKILL never leaves a stale lock behind. The file
//! also says which process holds it, for the message a second engine gets
//! and for `relais status`.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Why the engine cannot start on this store.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another engine holds the store.
    #[error(
        "another engine is running on {store} ({holder}); stop it first, or give this one another store"
    )]
    Held {
        /// The store.
        store: String,
        /// What the lock file says of its holder.
        holder: String,
    },
    /// The lock file cannot be opened or locked.
    #[error("cannot lock {path}: {source}")]
    Io {
        /// The lock file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The lock, held until dropped (or the process ends).
#[derive(Debug)]
pub struct EngineLock {
    _file: File,
    path: PathBuf,
}

/// The lock file of a store: beside it, `relais.db.lock`.
pub fn lock_path(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl EngineLock {
    /// Takes the store's lock, or says who holds it.
    pub fn acquire(store: &Path) -> Result<EngineLock, LockError> {
        let path = lock_path(store);
        let io = |source| LockError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(LockError::Held {
                    store: store.display().to_string(),
                    holder: describe(&holder),
                });
            }
            Err(TryLockError::Error(error)) => return Err(io(error)),
        }
        let stamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "pid {} since {stamp}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(EngineLock { _file: file, path })
    }

    /// Where the lock is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn describe(holder: &str) -> String {
    let holder = holder.trim();
    if holder.is_empty() {
        "a process that has not said which yet".to_string()
    } else {
        holder.to_string()
    }
}

/// Whether an engine holds the store's lock now: `Some(holder)` when one
/// does, `None` when none does (the lock is free or was never taken).
pub fn holder(store: &Path) -> Option<String> {
    let path = lock_path(store);
    let mut file = File::open(&path).ok()?;
    match file.try_lock_shared() {
        // Free: no engine; the shared lock ends with the file.
        Ok(()) => None,
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            Some(describe(&text))
        }
        Err(TryLockError::Error(_)) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_holder_and_freed_on_drop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("relais.db");
        assert_eq!(holder(&store), None, "never locked");
        let first = EngineLock::acquire(&store).expect("first");
        let error = EngineLock::acquire(&store).expect_err("second");
        let message = error.to_string();
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        assert!(holder(&store).is_some_and(|h| h.starts_with("pid ")));
        drop(first);
        assert_eq!(holder(&store), None, "freed");
        EngineLock::acquire(&store).expect("taken again");
    }
}
