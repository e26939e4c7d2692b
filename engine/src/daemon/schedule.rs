//! Scheduled rules: each `on: schedule` rule fires at the times of its
//! `cron` expression, read in its `timezone`. The rule set in use is read
//! at every tick, so a reload re-arms the schedules at once.
//!
//! When each rule last fired is kept in the store. A rule seen for the
//! first time is armed from now. After a stop, a rule whose time passed
//! meanwhile runs once at start-up (`missed: run-once`, the default: a
//! daily reminder missed overnight still goes, once), or waits for its
//! next time (`missed: skip`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use relais_sdk::{Event, ScheduleFired};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

use super::dispatcher::{Call, CallError, Task};
use crate::metrics::Metrics;
use crate::reload::Active;
use crate::rules::Missed;
use crate::rules::Rule;
use crate::store::Store;

/// How late a time may be seen and still count as on time rather than
/// missed: the scheduler looks every second.
const ON_TIME: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

/// What a scheduled rule should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing is due.
    Wait,
    /// First seen: start counting from now.
    Arm,
    /// Run, for the time `at`; `missed` when that time passed during a stop.
    Fire {
        /// The time the run is for.
        at: DateTime<Utc>,
        /// Whether it is a catch-up run.
        missed: bool,
    },
    /// A time passed during a stop and the rule skips missed runs.
    Skip,
}

/// What `rule`, last fired at `last`, should do at `now`.
pub fn action(rule: &Rule, last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Action {
    let Some(cron) = &rule.cron else {
        return Action::Wait;
    };
    let Some(last) = last else {
        return Action::Arm;
    };
    let after = last.with_timezone(&rule.timezone);
    // The latest time in (last, now].
    let due = cron
        .after(&after)
        .take_while(|at| at.with_timezone(&Utc) <= now)
        .last();
    match due {
        None => Action::Wait,
        Some(at) => {
            let at = at.with_timezone(&Utc);
            let first = cron
                .after(&after)
                .next()
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or(at);
            if now - at <= ON_TIME && first == at {
                Action::Fire { at, missed: false }
            } else {
                match rule.missed {
                    Missed::RunOnce => Action::Fire {
                        at: now,
                        missed: true,
                    },
                    Missed::Skip => Action::Skip,
                }
            }
        }
    }
}

/// Fires the scheduled rules of the set in use until `shutdown`. `store`
/// is a read connection; runs and their times are written through the
/// dispatcher.
pub async fn run(
    active: Arc<Active>,
    store: Store,
    tasks: mpsc::Sender<Task>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            _ = ticks.tick() => {}
        }
        let generation = active.current();
        for rule in generation.rules.for_trigger("schedule") {
            let last = match store.last_fired(&rule.id) {
                Ok(last) => last.and_then(|t| DateTime::parse_from_rfc3339(&t).ok()),
                Err(error) => {
                    tracing::warn!(rule = %rule.id, error = %error, "cannot read when the rule last fired");
                    continue;
                }
            };
            let now = Utc::now();
            let action = action(rule, last.map(|t| t.with_timezone(&Utc)), now);
            let stamp = |at: DateTime<Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let (event, recorded) = match action {
                Action::Wait => continue,
                Action::Arm => (None, stamp(now)),
                Action::Skip => {
                    tracing::info!(rule = %rule.id, "a scheduled run was missed while stopped; skipped (missed: skip)");
                    (None, stamp(now))
                }
                Action::Fire { at, missed } => {
                    if missed {
                        tracing::info!(rule = %rule.id, "a scheduled run was missed while stopped; running it once now");
                    }
                    let event = Event::Schedule(ScheduleFired {
                        rule: rule.id.clone(),
                        fired_at: stamp(at),
                    });
                    (Some(event), stamp(at.max(now)))
                }
            };
            if !fire(&tasks, rule.id.clone(), event, recorded, metrics.clone()).await {
                return;
            }
        }
    }
}

/// Runs `event` (when there is one) and records when the rule fired, in
/// the dispatcher's transaction. False when the dispatcher is gone.
async fn fire(
    tasks: &mpsc::Sender<Task>,
    rule: String,
    event: Option<Event>,
    recorded: String,
    metrics: Arc<Metrics>,
) -> bool {
    let (done, answer) = oneshot::channel();
    let call = Call {
        work: Box::new(move |dispatcher| {
            if let Some(event) = &event {
                let report = dispatcher
                    .handle_event(event, false)
                    .map_err(|e| CallError::Internal(e.to_string()))?;
                super::dispatcher::log_report(&report);
                metrics.record(&report);
            }
            dispatcher.store.set_last_fired(&rule, &recorded)?;
            Ok(Value::Null)
        }),
        done,
    };
    if tasks.send(Task::Call(call)).await.is_err() {
        return false;
    }
    match answer.await {
        Ok(Ok(_)) => true,
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "a scheduled run failed to record");
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(cron: &str, timezone: &str, missed: Missed) -> Rule {
        let text = format!(
            "rules:\n  - id: r\n    on: schedule\n    cron: \"{cron}\"\n    timezone: {timezone}\n    missed: {}\n    run: {{ plugin: catchmail }}\n",
            match missed {
                Missed::RunOnce => "run-once",
                Missed::Skip => "skip",
            }
        );
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("r.yaml"), text).expect("write");
        let runtime =
            crate::plugins::Runtime::new(crate::plugins::Limits::default()).expect("runtime");
        let plugins = crate::Plugins::bundled(&runtime, &Default::default()).expect("bundled");
        let set = crate::rules::load_dir(dir.path(), &plugins).expect("valid");
        set.rules.into_iter().next().expect("one rule")
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn a_rule_fires_at_its_time_in_its_zone_and_catches_up_once_or_skips() {
        // 08:00 in Paris is 07:00 UTC in winter.
        let daily = rule("0 0 8 * * *", "Europe/Paris", Missed::RunOnce);
        assert_eq!(
            action(&daily, None, at("2026-11-23T06:00:00Z")),
            Action::Arm
        );
        let last = Some(at("2026-11-22T07:00:00Z"));
        assert_eq!(
            action(&daily, last, at("2026-11-23T06:59:59Z")),
            Action::Wait
        );
        assert_eq!(
            action(&daily, last, at("2026-11-23T07:00:01Z")),
            Action::Fire {
                at: at("2026-11-23T07:00:00Z"),
                missed: false
            }
        );
        // Stopped for three days: one run now, not three.
        let now = at("2026-11-25T12:00:00Z");
        assert_eq!(
            action(&daily, last, now),
            Action::Fire {
                at: now,
                missed: true
            }
        );
        let skipping = rule("0 0 8 * * *", "Europe/Paris", Missed::Skip);
        assert_eq!(action(&skipping, last, now), Action::Skip);
    }
}
