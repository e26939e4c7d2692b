//! Scheduled rules: each `on: schedule` rule fires at the times of its
//! `cron` expression, read in its `timezone`. The rule set in use is read
//! at every tick, so a reload re-arms the schedules at once.
//!
//! When each rule last fired is kept in the store. A rule seen for the
//! first time is armed from now. After a stop, a rule whose time passed
//! meanwhile runs once at start-up (`missed: run-once`, the default: a
//! daily reminder missed overnight still goes, once), or waits for its
//! next time (`missed: skip`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use relais_sdk::{Event, ScheduleFired};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

use super::dispatcher::{Call, Command, CommandTask, Task};
use crate::metrics::Metrics;
use crate::reload::Active;
use crate::rules::Missed;
use crate::rules::Rule;
use crate::store::Store;
use crate::store::prelude::*;

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

/// What the scheduler keeps of each rule between ticks: when it last
/// fired (ahead of the store while its run waits on the dispatcher), and
/// its runs in flight.
///
/// Runs in flight are counted per rule *content* ([`Rule::hash`]): across
/// a reload, a rule whose definition did not change keeps its count (its
/// queued runs go on and still count against `mode`/`max`), while a
/// changed rule starts from none: its old runs finish on the set they
/// started with.
#[derive(Debug, Default)]
pub struct State {
    fired: HashMap<String, (DateTime<Utc>, String)>,
    in_flight: HashMap<String, Arc<AtomicU32>>,
}

impl State {
    /// When `rule` last fired on its current schedule: the later of what
    /// the store and this state say. A schedule that changed counts as
    /// never fired (the rule is armed again).
    fn last(
        &self,
        rule: &Rule,
        schedule: &str,
        stored: Option<(DateTime<Utc>, Option<String>)>,
    ) -> Option<DateTime<Utc>> {
        // A row from before schedules were recorded keeps its time.
        let stored = stored
            .filter(|(_, recorded)| recorded.as_deref().is_none_or(|r| r == schedule))
            .map(|(at, _)| at);
        let remembered = self
            .fired
            .get(&rule.id)
            .filter(|(_, key)| key == schedule)
            .map(|(at, _)| *at);
        stored.max(remembered)
    }

    /// The in-flight counter of `rule`'s content.
    fn counter(&mut self, rule: &Rule) -> Arc<AtomicU32> {
        self.in_flight.entry(rule.hash.clone()).or_default().clone()
    }

    /// Runs of `rule`'s content in flight.
    pub fn in_flight(&self, rule: &Rule) -> u32 {
        self.in_flight
            .get(&rule.hash)
            .map_or(0, |count| count.load(Ordering::SeqCst))
    }

    /// Forgets rules no longer in the set whose runs are all done.
    fn prune(&mut self, hashes: &[&str]) {
        self.in_flight.retain(|hash, count| {
            hashes.contains(&hash.as_str()) || count.load(Ordering::SeqCst) > 0
        });
    }
}

/// Fires the scheduled rules of the set in use until `shutdown`. `store`
/// is a read connection; runs and their times are written through the
/// dispatcher.
///
/// A run does not hold the scheduler up: each goes to the dispatcher on
/// its own, and the rule's `mode` says what happens when its time comes
/// while runs of it are still in flight: `single` skips that time,
/// `queued` and `parallel` let up to `max` be in flight (the dispatcher
/// runs them one after the other) and skip beyond. A skipped time is
/// logged and counted (`relais_schedule_skipped_total`).
pub async fn run(
    active: Arc<Active>,
    store: Store,
    tasks: mpsc::Sender<Task>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut state = State::default();
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            _ = ticks.tick() => {}
        }
        let generation = active.current();
        let scheduled: Vec<&Rule> = generation
            .rules
            .for_trigger(crate::rules::Trigger::Schedule)
            .collect();
        state.prune(
            &scheduled
                .iter()
                .map(|r| r.hash.as_str())
                .collect::<Vec<_>>(),
        );
        for rule in scheduled {
            let Some(schedule) = rule.schedule_key() else {
                continue;
            };
            let stored = match store.last_fired(&rule.id) {
                Ok(stored) => stored,
                Err(error) => {
                    tracing::warn!(rule = %rule.id, error = %error, "cannot read when the rule last fired");
                    continue;
                }
            };
            let now = Utc::now();
            let action = action(rule, state.last(rule, &schedule, stored), now);
            let stamp = |at: DateTime<Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let (event, recorded) = match action {
                Action::Wait => continue,
                Action::Arm => (None, now),
                Action::Skip => {
                    tracing::info!(rule = %rule.id, "a scheduled run was missed while stopped; skipped (missed: skip)");
                    (None, now)
                }
                Action::Fire { at, missed } => {
                    if missed {
                        tracing::info!(rule = %rule.id, "a scheduled run was missed while stopped; running it once now");
                    }
                    let in_flight = state.in_flight(rule);
                    if in_flight >= rule.run_limit() {
                        tracing::warn!(
                            rule = %rule.id,
                            in_flight,
                            "a scheduled time came while {in_flight} run(s) of the rule are still in flight; skipped (mode {:?}, max {})",
                            rule.mode,
                            rule.run_limit()
                        );
                        metrics.schedule_skipped(&rule.id);
                        (None, at.max(now))
                    } else {
                        let event = Event::Schedule(ScheduleFired {
                            rule: rule.id.clone(),
                            fired_at: stamp(at),
                        });
                        (Some(event), at.max(now))
                    }
                }
            };
            state
                .fired
                .insert(rule.id.clone(), (recorded, schedule.clone()));
            let fire = Fire {
                rule: rule.id.clone(),
                event,
                recorded,
                schedule,
            };
            // Only a run counts as in flight; arming and skipping record
            // a time.
            let counter = fire.event.is_some().then(|| state.counter(rule));
            if let Some(counter) = &counter {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            let tasks = tasks.clone();
            tokio::spawn(async move {
                fire.send(&tasks).await;
                if let Some(counter) = counter {
                    counter.fetch_sub(1, Ordering::SeqCst);
                }
            });
        }
    }
}

/// A time a rule fired: its run, if any, and what to record.
struct Fire {
    rule: String,
    event: Option<Event>,
    recorded: DateTime<Utc>,
    schedule: String,
}

impl Fire {
    /// Runs the event (when there is one) and records when the rule fired,
    /// in the dispatcher's transaction, and waits for it to be done.
    async fn send(self, tasks: &mpsc::Sender<Task>) {
        let Fire {
            rule,
            event,
            recorded,
            schedule,
        } = self;
        // A run is a command: decided beside the writer, so that a slow
        // plugin holds up only this rule's next firing. A time that runs
        // nothing (a missed one skipped) is only recorded.
        let failed = if let Some(event) = event {
            let (done, answer) = oneshot::channel();
            let command = Command::Fire {
                event,
                recorded,
                schedule,
            };
            let task = Task::Command(Box::new(CommandTask { command, done }));
            if tasks.send(task).await.is_err() {
                return;
            }
            answer.await.ok().and_then(Result::err)
        } else {
            let (done, answer) = oneshot::channel();
            let call = Call {
                work: Box::new(move |dispatcher| {
                    dispatcher
                        .store
                        .set_last_fired(&rule, recorded, &schedule)?;
                    Ok(Value::Null)
                }),
                done,
            };
            if tasks.send(Task::Call(call)).await.is_err() {
                return;
            }
            answer.await.ok().and_then(Result::err)
        };
        if let Some(error) = failed {
            tracing::warn!(error = %error, "a scheduled run failed to record");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(cron: &str, timezone: &str, missed: Missed) -> Rule {
        let text = format!(
            "rules:\n  - id: r\n    on: schedule\n    cron: \"{cron}\"\n    timezone: {timezone}\n    missed: {}\n    run: {{ plugin: reminders }}\n",
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

    #[test]
    fn a_rule_keeps_its_runs_in_flight_while_its_content_does_not_change() {
        let mut state = State::default();
        let daily = rule("0 0 8 * * *", "Europe/Paris", Missed::RunOnce);
        let counter = state.counter(&daily);
        counter.fetch_add(1, Ordering::SeqCst);
        // The same rule reloaded (same content, same hash): same count.
        let reloaded = rule("0 0 8 * * *", "Europe/Paris", Missed::RunOnce);
        assert_eq!(state.in_flight(&reloaded), 1);
        // Changed: it starts from none, while the old run still counts
        // for the old content until it is done.
        let changed = rule("0 0 8 * * *", "Europe/Paris", Missed::Skip);
        assert_eq!(state.in_flight(&changed), 0);
        state.prune(&[changed.hash.as_str()]);
        assert_eq!(state.in_flight(&daily), 1, "kept while in flight");
        counter.fetch_sub(1, Ordering::SeqCst);
        state.prune(&[changed.hash.as_str()]);
        assert!(
            !state.in_flight.contains_key(&daily.hash),
            "forgotten once done"
        );
    }

    #[test]
    fn a_changed_schedule_is_armed_again_and_an_unchanged_one_keeps_its_time() {
        let mut state = State::default();
        let daily = rule("0 0 8 * * *", "Europe/Paris", Missed::RunOnce);
        let key = daily.schedule_key().expect("scheduled");
        assert_eq!(key, "0 0 8 * * * Europe/Paris");
        let stored = |schedule: Option<&str>| {
            Some((at("2026-11-22T07:00:00Z"), schedule.map(str::to_string)))
        };
        let last = Some(at("2026-11-22T07:00:00Z"));
        assert_eq!(state.last(&daily, &key, stored(Some(&key))), last);
        // A row written before schedules were recorded keeps its time.
        assert_eq!(state.last(&daily, &key, stored(None)), last);
        // The cron or the zone changed: never fired on this schedule.
        assert_eq!(
            state.last(&daily, &key, stored(Some("0 0 9 * * * UTC"))),
            None
        );
        // A run the dispatcher has not recorded yet counts already.
        state
            .fired
            .insert("r".to_string(), (at("2026-11-23T07:00:00Z"), key.clone()));
        assert_eq!(
            state.last(&daily, &key, stored(Some(&key))),
            Some(at("2026-11-23T07:00:00Z"))
        );
        assert_eq!(state.last(&daily, "0 0 9 * * * UTC", None), None);
    }
}
