//! The store: everything Relais keeps, in one SQLite file (WAL, versioned
//! migrations). Nothing outside this module writes SQL; the rest of the
//! engine speaks to it through the narrow API below, so that a server
//! database can stand in later.

pub mod apart;
mod directory;
mod exchanges;
mod imap;
mod mail;
mod messages;
mod outbox;
mod ports;
mod retention;
mod runs;
mod search;
mod threads;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, Params, Row};

pub use directory::DirectoryCounts;
pub use exchanges::{ExchangeRecord, NewExchange};
pub use imap::ImapReceipt;
pub use mail::{MailRecord, MailStatus, NewAttachment, NewMail, StoredAttachment, sha256_hex};
pub use messages::{MessageRecord, NewMessage};
/// Stores for tests of the layers above.
#[cfg(test)]
pub(crate) mod fixtures {
    pub(crate) use super::threads::tests::{receive, store as directory_store};
}

/// The store's traits, for calling their methods on [`Store`] and [`Tx`].
pub mod prelude {
    pub use super::ports::*;
}

pub use outbox::{Delivery, DeliveryMark, OutboxRecord, OutgoingMail};
pub use ports::{
    Conversations, DirectoryRead, DirectoryWrites, EventTx, ExchangeWrites, Exchanges, Expiry,
    ImapState, Import, LastFired, LinkWrites, MailSearch, MailStore, MailWrites, Mails,
    MessageWrites, Messages, Outbox, OutboxWrites, ReceiptWrites, RunWrites, Runs, ScheduleState,
    SourceState, Threads, UnitOfWork,
};
pub use retention::{Cutoffs, Expired};
pub use runs::{RunPage, RunQuery, RunRecord, RunSummary};
pub use search::{MAX_PAGE, MailPage, MailQuery, MailRow};
pub use threads::{Direction, LinkChange, SenderRequest, ThreadNode};

/// A store failure, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or migrated.
    #[error("cannot open the store {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What the database said.
        source: DatabaseError,
    },
    /// The database was written by a newer Relais.
    #[error(
        "the store {path} has schema version {found}, newer than this Relais ({supported}); upgrade Relais"
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Version found in the file.
        found: i64,
        /// Latest version this build knows.
        supported: i64,
    },
    /// The database failed a statement.
    #[error("store: {0}")]
    Database(#[from] DatabaseError),
    /// A stored JSON column did not decode.
    #[error("store: corrupt JSON column: {0}")]
    Json(#[from] serde_json::Error),
    /// A write that the data does not allow (an unknown request, a locked
    /// conversation, a second ticket for one mail...).
    #[error("{0}")]
    Refused(String),
}

/// What the database said when it failed, kept opaque so that no type of
/// the database's driver leaves the store.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct DatabaseError(Box<dyn std::error::Error + Send + Sync>);

impl From<rusqlite::Error> for DatabaseError {
    fn from(error: rusqlite::Error) -> Self {
        DatabaseError(Box::new(error))
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        StoreError::Database(error.into())
    }
}

/// The schema version from which stored mail is indexed for search as it
/// is today (version 9 made it searchable, 10 rebuilt the index without a
/// copy of the text).
const SEARCHABLE_SINCE: i64 = 10;

/// Migrations, in order; the store's `user_version` is how many ran.
const MIGRATIONS: &[&str] = &[
    include_str!("schema.sql"),
    include_str!("schema2.sql"),
    include_str!("schema3.sql"),
    include_str!("schema4.sql"),
    include_str!("schema5.sql"),
    include_str!("schema6.sql"),
    include_str!("schema7.sql"),
    include_str!("schema8.sql"),
    include_str!("schema9.sql"),
    include_str!("schema10.sql"),
];

/// Handle on the store. Clones share one connection (plugins' queries read
/// through a clone while the dispatcher holds the original); one writer at a
/// time, and readers see committed data.
#[derive(Debug, Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl Store {
    /// Opens (creating if needed) the store at `path` and brings its schema
    /// up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open = || -> Result<Connection, rusqlite::Error> {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_CREATE
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            // Checkpoint less often than SQLite's default (1,000 pages): the
            // pages every event rewrites (indexes, the tails of tables) are
            // then copied back once for many events.
            conn.pragma_update(None, "wal_autocheckpoint", 8000)?;
            Ok(conn)
        };
        let conn = open().map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source: source.into(),
        })?;
        Self::setup(conn, path)
    }

    /// A store in memory, for tests and dry runs.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let conn = Connection::open_in_memory()?;
        Self::setup(conn, Path::new(":memory:"))
    }

    fn setup(conn: Connection, path: &Path) -> Result<Store, StoreError> {
        // FULL: a commit survives power loss, since a mail is acknowledged
        // to its server only after its processing committed.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // 16 MiB of pages kept per connection (SQLite's default is 2): the
        // indexes of a store of tens of thousands of mails stay in memory,
        // and an event costs the same at 50,000 mails as at the first.
        conn.pragma_update(None, "cache_size", -16384)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Every statement of the store prepared once per connection: the
        // store has about 130, and one evicted is compiled again on the
        // write path.
        conn.set_prepared_statement_cache_capacity(256);
        let mut store = Store {
            conn: Arc::new(Mutex::new(conn)),
        };
        store.migrate(path)?;
        Ok(store)
    }

    fn migrate(&mut self, path: &Path) -> Result<(), StoreError> {
        let version: i64 = self
            .conn()
            .pragma_query_value(None, "user_version", |row| row.get(0))?;
        let supported = MIGRATIONS.len() as i64;
        if version > supported {
            return Err(StoreError::TooNew {
                path: path.to_path_buf(),
                found: version,
                supported,
            });
        }
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", index as i64 + 1)?;
            tx.commit()?;
        }
        // The mails stored before the index was what it is are indexed
        // from their raw message, once.
        if version > 0 && version < SEARCHABLE_SINCE {
            let indexed = self.index_unsearchable()?;
            tracing::info!(mails = indexed, "mail store indexed for search");
        }
        Ok(())
    }

    /// The connection, for one statement or transaction. A panic while it
    /// was held cannot leave a transaction open ([`Tx`] rolls back on drop),
    /// so a poisoned lock is safe to take over.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn backup_to(&self, path: &Path) -> Result<(), StoreError> {
        let target = path.to_string_lossy().into_owned();
        self.conn().execute("VACUUM INTO ?1", [target])?;
        Ok(())
    }

    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn()
            .pragma_query_value(None, "user_version", |row| row.get(0))?)
    }
}

impl UnitOfWork for Store {
    type Unit<'a> = Tx<'a>;

    fn begin(&mut self) -> Result<Tx<'_>, StoreError> {
        let conn = self.conn();
        let nested = !conn.is_autocommit();
        conn.execute_batch(if nested {
            "SAVEPOINT event"
        } else {
            "BEGIN IMMEDIATE"
        })?;
        Ok(Tx {
            conn,
            open: true,
            nested,
        })
    }

    fn begin_batch(&mut self) -> Result<(), StoreError> {
        Ok(self.conn().execute_batch("BEGIN IMMEDIATE")?)
    }

    fn commit_batch(&mut self) -> Result<(), StoreError> {
        let conn = self.conn();
        search::flush_search(&conn)?;
        Ok(conn.execute_batch("COMMIT")?)
    }

    fn rollback_batch(&mut self) {
        let conn = self.conn();
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
}

/// A write transaction: everything one event changes, or nothing.
#[derive(Debug)]
pub struct Tx<'a> {
    conn: MutexGuard<'a, Connection>,
    open: bool,
    nested: bool,
}

impl EventTx for Tx<'_> {
    fn commit(mut self) -> Result<(), StoreError> {
        // Inside a batch, the batch's commit indexes its mail.
        if !self.nested {
            search::flush_search(&self.conn)?;
        }
        self.conn.execute_batch(if self.nested {
            "RELEASE event"
        } else {
            "COMMIT"
        })?;
        self.open = false;
        Ok(())
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            // Nothing of an uncommitted event may survive; a failed rollback
            // leaves SQLite to roll back when the connection closes.
            let sql = if self.nested {
                "ROLLBACK TO event; RELEASE event"
            } else {
                "ROLLBACK"
            };
            let _ = self.conn.execute_batch(sql);
        }
    }
}

/// Statements through the connection's statement cache: every event runs
/// the same few queries, so each is parsed once per connection.
pub(crate) trait Cached {
    /// `query_row`, prepared once.
    fn one<T, P: Params>(
        &self,
        sql: &str,
        params: P,
        row: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T>;

    /// `execute`, prepared once.
    fn run<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
}

impl Cached for Connection {
    fn one<T, P: Params>(
        &self,
        sql: &str,
        params: P,
        row: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, row)
    }

    fn run<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }
}

/// A time as the store writes it: RFC 3339 in UTC with milliseconds, one
/// width for every time, so that stored times sort as they compare. The
/// store's API takes and gives [`DateTime`]; the text stays inside.
pub(crate) fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The current time, as the store writes it.
pub(crate) fn now() -> String {
    stamp(Utc::now())
}

/// A stored time read back; `None` for a value no Relais wrote.
fn parse_stamp(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    Ok(serde_json::to_string(value)?)
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    Ok(serde_json::from_str(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_reopens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("relais.db");
        let store = Store::open(&path).expect("open");
        assert_eq!(
            store.schema_version().expect("version"),
            MIGRATIONS.len() as i64
        );
        drop(store);
        let store = Store::open(&path).expect("reopen");
        assert_eq!(
            store.schema_version().expect("version"),
            MIGRATIONS.len() as i64
        );
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("relais.db");
        drop(Store::open(&path).expect("open"));
        let conn = Connection::open(&path).expect("raw open");
        conn.pragma_update(None, "user_version", 99).expect("bump");
        drop(conn);
        let error = Store::open(&path).expect_err("too new");
        assert!(error.to_string().contains("schema version 99"), "{error}");
    }
}
