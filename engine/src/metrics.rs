//! Prometheus metrics, served by the HTTP API at `/metrics`: events
//! processed per trigger and outcome, plugin failures per plugin and kind,
//! how long events, plugin calls and outbox deliveries take, the outbox by
//! status, the rule set in force, the build, and the process.
//!
//! Counters of every known label set exist at zero from the start, so a
//! dashboard's rate is 0, not "no data". The OpenMetrics text is served to
//! who asks for it (Prometheus does); everyone else (curl, promtool) gets
//! the classic text format ([`classic`]).

use std::sync::Mutex;
use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::dispatch::Report;
use crate::store::StoreError;
use crate::store::prelude::*;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    trigger: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    plugin: String,
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleSetLabels {
    hash: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabels {
    trigger: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    wit: String,
}

/// Seconds, from 100 µs to 30 s: a plugin call, an event, an SMTP
/// delivery.
fn seconds_histogram() -> Histogram {
    Histogram::new([
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0, 30.0,
    ])
}

/// The outcomes and failure kinds every counter starts at zero with (for
/// every trigger).
const OUTCOMES: [&str; 6] = [
    "applied",
    "no-match",
    "dry-run",
    "failed",
    "rejected",
    "duplicate",
];
const FAILURE_KINDS: [&str; 3] = ["refused", "fault", "host"];
const DELIVERY_OUTCOMES: [&str; 3] = ["sent", "retry", "failed"];

/// The engine's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    events: Family<EventLabels, Counter>,
    plugin_failures: Family<FailureLabels, Counter>,
    outbox: Family<StatusLabels, Gauge>,
    rule_set: Family<RuleSetLabels, Gauge>,
    reload_ok: Gauge,
    reload_time: Gauge<i64, AtomicI64>,
    reload_failures: Counter,
    schedule_skipped: Family<RuleLabels, Counter>,
    event_seconds: Family<TriggerLabels, Histogram, fn() -> Histogram>,
    plugin_seconds: Family<PluginLabels, Histogram, fn() -> Histogram>,
    delivery_seconds: Family<DeliveryLabels, Histogram, fn() -> Histogram>,
    process: Registry,
    process_resident: Gauge<i64, AtomicI64>,
    process_cpu: Counter<f64, std::sync::atomic::AtomicU64>,
    process_fds: Gauge<i64, AtomicI64>,
    current_hash: Mutex<String>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("relais");
        let events = Family::<EventLabels, Counter>::default();
        registry.register(
            "events",
            "Events processed, by trigger and outcome",
            events.clone(),
        );
        let plugin_failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "plugin_failures",
            "Plugin runs that failed, by plugin and kind (refused, fault, host)",
            plugin_failures.clone(),
        );
        let outbox = Family::<StatusLabels, Gauge>::default();
        registry.register(
            "outbox_mails",
            "Mails in the outbox, by status (queued, sent, failed, suppressed)",
            outbox.clone(),
        );
        let rule_set = Family::<RuleSetLabels, Gauge>::default();
        registry.register(
            "rule_set",
            "The rule set in force (1), by hash",
            rule_set.clone(),
        );
        let reload_ok = Gauge::default();
        registry.register(
            "reload_success",
            "Whether the last load of rules, templates and plugins succeeded (1) or was refused (0)",
            reload_ok.clone(),
        );
        let reload_time = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "reload_timestamp_seconds",
            "When rules, templates and plugins were last loaded or refused (Unix time)",
            reload_time.clone(),
        );
        let reload_failures = Counter::default();
        registry.register(
            "reload_failures",
            "Loads of rules, templates and plugins refused (the errors: relais status)",
            reload_failures.clone(),
        );
        let schedule_skipped = Family::<RuleLabels, Counter>::default();
        registry.register(
            "schedule_skipped",
            "Scheduled times skipped because runs of the rule were still in flight (its mode and max)",
            schedule_skipped.clone(),
        );
        let event_seconds: Family<TriggerLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(seconds_histogram);
        registry.register(
            "event_duration_seconds",
            "How long an event took, from its arrival at the dispatcher to its commit, by trigger",
            event_seconds.clone(),
        );
        let plugin_seconds: Family<PluginLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(seconds_histogram);
        registry.register(
            "plugin_call_duration_seconds",
            "How long one plugin call took (a fresh sandbox, the call, its host queries), by plugin",
            plugin_seconds.clone(),
        );
        let delivery_seconds: Family<DeliveryLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(seconds_histogram);
        registry.register(
            "outbox_delivery_duration_seconds",
            "How long one outbox delivery attempt took (SMTP or the pickup folder), by outcome",
            delivery_seconds.clone(),
        );
        registry.register(
            "build",
            "The running build: Relais's version and the WIT contract it speaks",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
                wit: relais_sdk::WIT_VERSION.to_string(),
            }),
        );
        for trigger in crate::triggers::Trigger::ALL {
            for outcome in OUTCOMES {
                let _ = events.get_or_create(&EventLabels {
                    trigger: trigger.as_str().to_string(),
                    outcome: outcome.to_string(),
                });
            }
        }
        for outcome in DELIVERY_OUTCOMES {
            let _ = delivery_seconds.get_or_create(&DeliveryLabels {
                outcome: outcome.to_string(),
            });
        }
        // The process, under the names every exporter uses.
        let mut process = Registry::default();
        let process_resident = Gauge::<i64, AtomicI64>::default();
        process.register(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            process_resident.clone(),
        );
        let process_cpu = Counter::<f64, std::sync::atomic::AtomicU64>::default();
        process.register(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            process_cpu.clone(),
        );
        let process_fds = Gauge::<i64, AtomicI64>::default();
        process.register(
            "process_open_fds",
            "Number of open file descriptors",
            process_fds.clone(),
        );
        let process_start = Gauge::<i64, AtomicI64>::default();
        process.register(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds",
            process_start.clone(),
        );
        process_start.set(chrono::Utc::now().timestamp());
        Metrics {
            registry,
            event_seconds,
            plugin_seconds,
            delivery_seconds,
            process,
            process_resident,
            process_cpu,
            process_fds,
            events,
            plugin_failures,
            outbox,
            rule_set,
            reload_ok,
            reload_time,
            reload_failures,
            schedule_skipped,
            current_hash: Mutex::new(String::new()),
        }
    }

    /// Counts a scheduled time of `rule` skipped because of its mode.
    pub fn schedule_skipped(&self, rule: &str) {
        self.schedule_skipped
            .get_or_create(&RuleLabels {
                rule: rule.to_string(),
            })
            .inc();
    }

    /// Makes the counters of a rule set in force exist at zero: the
    /// failures of its plugins, the skipped times of its scheduled rules.
    pub fn know(&self, rules: &crate::rules::RuleSet, plugins: &crate::plugins::Plugins) {
        for rule in rules.rules.iter().filter(|r| r.trigger.scheduled()) {
            let _ = self.schedule_skipped.get_or_create(&RuleLabels {
                rule: rule.id.clone(),
            });
        }
        self.know_plugins(plugins.infos().iter().map(|i| i.name.as_str()));
    }

    fn know_plugins<'a>(&self, plugins: impl IntoIterator<Item = &'a str>) {
        for plugin in plugins {
            for kind in FAILURE_KINDS {
                let _ = self.plugin_failures.get_or_create(&FailureLabels {
                    plugin: plugin.to_string(),
                    kind: kind.to_string(),
                });
            }
        }
    }

    /// Times one outbox delivery attempt.
    pub fn delivered(&self, outcome: &str, took: std::time::Duration) {
        self.delivery_seconds
            .get_or_create(&DeliveryLabels {
                outcome: outcome.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// Counts a processed event and its plugin failures, and times it and
    /// its plugin calls.
    pub fn record(&self, report: &Report) {
        self.events
            .get_or_create(&EventLabels {
                trigger: report.trigger.clone(),
                outcome: report.outcome.as_str().to_string(),
            })
            .inc();
        self.event_seconds
            .get_or_create(&TriggerLabels {
                trigger: report.trigger.clone(),
            })
            .observe(report.duration_us as f64 / 1e6);
        for rule in &report.trace {
            if let (Some(plugin), Some(us)) = (&rule.plugin, rule.duration_us) {
                self.plugin_seconds
                    .get_or_create(&PluginLabels {
                        plugin: plugin.clone(),
                    })
                    .observe(us as f64 / 1e6);
            }
        }
        for rule in &report.trace {
            if let (Some(plugin), Some(kind)) = (&rule.plugin, rule.failure) {
                self.plugin_failures
                    .get_or_create(&FailureLabels {
                        plugin: plugin.clone(),
                        kind: kind.to_string(),
                    })
                    .inc();
            }
        }
    }

    /// Records a load of the rule set: `Some(hash)` when it went live,
    /// `None` when it was refused (the previous one stays).
    pub fn loaded(&self, hash: Option<&str>) {
        self.reload_ok.set(i64::from(hash.is_some()));
        self.reload_time.set(chrono::Utc::now().timestamp());
        if hash.is_none() {
            self.reload_failures.inc();
        }
        if let Some(hash) = hash {
            let mut current = self
                .current_hash
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !current.is_empty() {
                self.rule_set.remove(&RuleSetLabels {
                    hash: current.clone(),
                });
            }
            self.rule_set
                .get_or_create(&RuleSetLabels {
                    hash: hash.to_string(),
                })
                .set(1);
            *current = hash.to_string();
        }
    }

    /// The metrics in the Prometheus text format, with the outbox read
    /// from `store` now.
    pub fn render(&self, store: &impl Outbox) -> Result<String, StoreError> {
        for (status, count) in store.outbox_counts()? {
            self.outbox
                .get_or_create(&StatusLabels { status })
                .set(count as i64);
        }
        self.read_process();
        let mut text = String::new();
        let failed = |_| StoreError::Refused("cannot encode the metrics".to_string());
        prometheus_client::encoding::text::encode_registry(&mut text, &self.registry)
            .map_err(failed)?;
        prometheus_client::encoding::text::encode_registry(&mut text, &self.process)
            .map_err(failed)?;
        prometheus_client::encoding::text::encode_eof(&mut text).map_err(failed)?;
        Ok(text)
    }

    /// The process's memory, CPU and descriptors, from `/proc` (Linux);
    /// left as they were elsewhere.
    fn read_process(&self) {
        if let Ok(statm) = std::fs::read_to_string("/proc/self/statm")
            && let Some(pages) = statm
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<i64>().ok())
        {
            self.process_resident.set(pages * 4096);
        }
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
            && let Some((_, rest)) = stat.rsplit_once(')')
        {
            // Fields 14 and 15 (utime, stime), in clock ticks (100 a
            // second on Linux), counted after the command's `)`.
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ticks = |i: usize| {
                fields
                    .get(i)
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            // A counter moves by what was spent since the last scrape.
            let spent = (ticks(11) + ticks(12)) / 100.0;
            let counted = self.process_cpu.get();
            if spent > counted {
                self.process_cpu.inc_by(spent - counted);
            }
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            self.process_fds.set(fds.count() as i64);
        }
    }
}

/// OpenMetrics text (what [`Metrics::render`] writes) as the classic
/// Prometheus text format (0.0.4), for readers that ask for it or for
/// nothing in particular: counters are named with their `_total`, an info
/// metric is a gauge, and there is no `# EOF` nor `# UNIT`.
pub fn classic(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut kinds: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ")
            && let Some((name, kind)) = rest.split_once(' ')
        {
            kinds.insert(name, kind);
        }
    }
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = line
            .strip_prefix("# TYPE ")
            .map(|rest| ("TYPE", rest))
            .or_else(|| line.strip_prefix("# HELP ").map(|rest| ("HELP", rest)));
        match meta {
            Some((what, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let (name, tail) = match (kinds.get(name).copied(), what) {
                    (Some("counter"), _) => (format!("{name}_total"), tail.to_string()),
                    (Some("info"), "TYPE") => (format!("{name}_info"), "gauge".to_string()),
                    (Some("info"), _) => (format!("{name}_info"), tail.to_string()),
                    _ => (name.to_string(), tail.to_string()),
                };
                out.push_str(&format!("# {what} {name} {tail}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::{Outcome, RuleTrace};
    use crate::store::Store;

    fn report(trigger: &str, outcome: Outcome, failure: Option<&'static str>) -> Report {
        let mut report = Report {
            run: Some(1),
            trigger: trigger.to_string(),
            source: None,
            message_id: None,
            summary: String::new(),
            rules: Vec::new(),
            effects: Vec::new(),
            grants: Vec::new(),
            outcome,
            error: None,
            warnings: Vec::new(),
            authentication: None,
            trace: Vec::new(),
            not_matched: 0,
            rule_set: None,
            duration_us: 0,
            event: None,
            retry_of: None,
        };
        report.trace.push(RuleTrace {
            id: "r".into(),
            source: "r.yaml:1:1".into(),
            matched: true,
            reason: None,
            plugin: Some("alert-dispatch".into()),
            effects: Vec::new(),
            logs: Vec::new(),
            error: failure.map(|_| "boom".to_string()),
            failure,
            duration_us: None,
        });
        report
    }

    #[test]
    fn counts_events_failures_outbox_and_loads() {
        let metrics = Metrics::new();
        metrics.record(&report("request-saved", Outcome::Applied, None));
        metrics.record(&report("request-saved", Outcome::Applied, None));
        metrics.record(&report("request-saved", Outcome::Failed, Some("fault")));
        metrics.loaded(Some("abc"));
        metrics.loaded(Some("def"));
        metrics.loaded(None);
        let store = Store::open_in_memory().expect("store");
        let text = metrics.render(&store).expect("renders");
        for line in [
            "relais_events_total{trigger=\"request-saved\",outcome=\"applied\"} 2",
            "relais_events_total{trigger=\"request-saved\",outcome=\"failed\"} 1",
            "relais_plugin_failures_total{plugin=\"alert-dispatch\",kind=\"fault\"} 1",
            "relais_outbox_mails{status=\"queued\"} 0",
            "relais_rule_set{hash=\"def\"} 1",
            "relais_reload_success 0",
            "relais_reload_failures_total 1",
        ] {
            assert!(text.contains(line), "{line} in:\n{text}");
        }
        assert!(
            !text.contains("hash=\"abc\""),
            "the old rule set is gone:\n{text}"
        );
    }
}
