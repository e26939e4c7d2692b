//! Run traces: what each event did and why.

use rusqlite::types::Value as SqlValue;
use rusqlite::{OptionalExtension, params};

use chrono::{DateTime, Utc};

use super::search::Filter;
use super::{
    Cached, LastFired, RunWrites, Runs, ScheduleState, Store, StoreError, Tx, from_json,
    parse_stamp, stamp,
};

/// A run trace to record.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct RunRecord {
    /// The run's id (0 before it is recorded).
    pub id: i64,
    /// Trigger name (`mail-received`, ...).
    pub trigger: String,
    /// One line saying what the event was.
    pub summary: String,
    /// The mail's Message-ID, for mail events.
    pub message_id: Option<String>,
    /// `applied`, `no-match`, `failed`, `rejected`, `duplicate`, `dry-run`.
    pub outcome: String,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// When it started, RFC 3339.
    pub started_at: String,
    /// How long it took, in microseconds.
    pub duration_us: u64,
    /// The full trace: rules matched and not, effects, plugin logs.
    #[schema(value_type = Object)]
    pub trace: serde_json::Value,
}

/// Which runs a listing shows, newest first; each filter given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunQuery {
    /// Only runs that ended so (`failed`, `applied`...).
    pub outcome: Option<String>,
    /// Only runs of this trigger (`mail-received`, `manual`...).
    pub trigger: Option<String>,
    /// Only runs in which this rule matched.
    pub rule: Option<String>,
    /// Only runs in which this plugin ran.
    pub plugin: Option<String>,
    /// Started at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Started before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only runs older than this one (the page after one that ended there).
    pub before: Option<i64>,
    /// Rows per page, at most [`MAX_PAGE`](super::MAX_PAGE).
    pub limit: usize,
}

/// One page of runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct RunPage {
    /// The runs, newest first.
    pub runs: Vec<RunSummary>,
    /// `before` for the next page, when there may be one.
    pub next_before: Option<i64>,
}

/// A run as listed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct RunSummary {
    /// The run's id.
    pub id: i64,
    /// Trigger name.
    pub trigger: String,
    /// What the event was.
    pub summary: String,
    /// Its outcome.
    pub outcome: String,
    /// Why it failed.
    pub error: Option<String>,
    /// When it started.
    pub started_at: String,
    /// How long it took, in microseconds.
    pub duration_us: u64,
}

/// A run's row as listed: id, trigger, summary, outcome, error, started
/// at, duration.
fn summary_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunSummary> {
    Ok(RunSummary {
        id: r.get(0)?,
        trigger: r.get(1)?,
        summary: r.get(2)?,
        outcome: r.get(3)?,
        error: r.get(4)?,
        started_at: r.get(5)?,
        duration_us: r.get::<_, i64>(6)? as u64,
    })
}

impl Runs for Store {
    fn runs(&self, limit: usize) -> Result<Vec<RunSummary>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT id, trigger, summary, outcome, error, started_at, duration_us
             FROM runs ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = statement.query_map([limit as i64], summary_of)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn find_runs(&self, query: &RunQuery) -> Result<RunPage, StoreError> {
        let mut filter = Filter::default();
        if let Some(outcome) = &query.outcome {
            filter.bind("outcome = ?", SqlValue::Text(outcome.clone()));
        }
        if let Some(trigger) = &query.trigger {
            filter.bind("trigger = ?", SqlValue::Text(trigger.clone()));
        }
        if let Some(rule) = &query.rule {
            filter.bind(
                "EXISTS (SELECT 1 FROM json_each(trace, '$.rules') AS r
                         WHERE r.value ->> '$.id' = ? AND r.value ->> '$.matched')",
                SqlValue::Text(rule.clone()),
            );
        }
        if let Some(plugin) = &query.plugin {
            filter.bind(
                "EXISTS (SELECT 1 FROM json_each(trace, '$.rules') AS r
                         WHERE r.value ->> '$.plugin' = ?)",
                SqlValue::Text(plugin.clone()),
            );
        }
        if let Some(since) = query.since {
            filter.bind("started_at >= ?", SqlValue::Text(stamp(since)));
        }
        if let Some(until) = query.until {
            filter.bind("started_at < ?", SqlValue::Text(stamp(until)));
        }
        if let Some(before) = query.before {
            filter.bind("id < ?", SqlValue::Integer(before));
        }
        let limit = query.limit.clamp(1, super::MAX_PAGE);
        // One more than asked: whether a next page exists.
        let (filter, values) = filter.finish(limit + 1);
        let sql = format!(
            "SELECT id, trigger, summary, outcome, error, started_at, duration_us
             FROM runs {filter} ORDER BY id DESC LIMIT ?"
        );
        let conn = self.conn();
        let mut statement = conn.prepare(&sql)?;
        let mut runs = statement
            .query_map(rusqlite::params_from_iter(values), summary_of)?
            .collect::<Result<Vec<_>, _>>()?;
        let more = runs.len() > limit;
        runs.truncate(limit);
        let next_before = if more {
            runs.last().map(|r| r.id)
        } else {
            None
        };
        Ok(RunPage { runs, next_before })
    }

    fn run(&self, id: i64) -> Result<Option<RunRecord>, StoreError> {
        let row = self
            .conn()
            .one(
                "SELECT id, trigger, summary, message_id, outcome, error, started_at, duration_us, trace
                 FROM runs WHERE id = ?1",
                [id],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, String>(6)?,
                        r.get::<_, i64>(7)?,
                        r.get::<_, String>(8)?,
                    ))
                },
            )
            .optional()?;
        row.map(
            |(id, trigger, summary, message_id, outcome, error, started_at, duration, trace)| {
                Ok(RunRecord {
                    id,
                    trigger,
                    summary,
                    message_id,
                    outcome,
                    error,
                    started_at,
                    duration_us: duration as u64,
                    trace: from_json(&trace)?,
                })
            },
        )
        .transpose()
    }

    fn runs_of_mail(&self, message_id: &str) -> Result<Vec<i64>, StoreError> {
        let conn = self.conn();
        let mut statement =
            conn.prepare_cached("SELECT id FROM runs WHERE message_id = ?1 ORDER BY id DESC")?;
        let rows = statement.query_map([message_id], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn set_engine_status(&self, status: &str) -> Result<(), StoreError> {
        self.conn().run(
            "INSERT INTO engine_status (key, value, updated_at) VALUES ('engine', ?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            rusqlite::params![status, super::now()],
        )?;
        Ok(())
    }

    fn engine_status(&self) -> Result<Option<(String, String)>, StoreError> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn()
            .one(
                "SELECT value, updated_at FROM engine_status WHERE key = 'engine'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }
}

impl RunWrites for Tx<'_> {
    fn record_run(&self, run: &RunRecord) -> Result<i64, StoreError> {
        self.conn.run(
            "INSERT INTO runs (trigger, summary, message_id, outcome, error, started_at, duration_us, trace)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                run.trigger,
                run.summary,
                run.message_id,
                run.outcome,
                run.error,
                run.started_at,
                run.duration_us as i64,
                serde_json::to_string(&run.trace)?
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }
}

impl ScheduleState for Store {
    fn last_fired(&self, rule: &str) -> Result<Option<LastFired>, StoreError> {
        use rusqlite::OptionalExtension;
        let row: Option<(String, Option<String>)> = self
            .conn()
            .one(
                "SELECT last_fired, schedule FROM schedule_state WHERE rule = ?1",
                [rule],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        // A time no Relais wrote is as if the rule never fired.
        Ok(row.and_then(|(at, schedule)| Some((parse_stamp(&at)?, schedule))))
    }

    fn set_last_fired(
        &self,
        rule: &str,
        at: DateTime<Utc>,
        schedule: &str,
    ) -> Result<(), StoreError> {
        self.conn().run(
            "INSERT INTO schedule_state (rule, last_fired, schedule) VALUES (?1, ?2, ?3)
             ON CONFLICT (rule) DO UPDATE SET last_fired = excluded.last_fired,
                schedule = excluded.schedule",
            rusqlite::params![rule, stamp(at), schedule],
        )?;
        Ok(())
    }
}
