//! Prometheus metrics, served by the HTTP API at `/metrics`: events
//! processed per trigger and outcome, plugin failures per plugin and kind,
//! the outbox by status, and the rule set in force.

use std::sync::Mutex;
use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::dispatch::Report;
use crate::store::{Store, StoreError};

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
        Metrics {
            registry,
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

    /// Counts a processed event and its plugin failures.
    pub fn record(&self, report: &Report) {
        self.events
            .get_or_create(&EventLabels {
                trigger: report.trigger.clone(),
                outcome: report.outcome.as_str().to_string(),
            })
            .inc();
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
    pub fn render(&self, store: &Store) -> Result<String, StoreError> {
        for (status, count) in store.outbox_counts()? {
            self.outbox
                .get_or_create(&StatusLabels { status })
                .set(count as i64);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .map_err(|_| StoreError::Refused("cannot encode the metrics".to_string()))?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::{Outcome, RuleTrace};

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
            duration_us: 0,
            event: None,
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
