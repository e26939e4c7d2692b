//! Listing runs, as `GET /runs` and `relais runs` ask: the filters as a
//! person writes them, checked and turned into the store's query.

use serde::Deserialize;

use super::CallError;
use super::mails::{given, page_size, time_range};
use crate::store::RunQuery;
use crate::triggers::Trigger;

/// The outcomes a run can have.
pub const OUTCOMES: [&str; 6] = [
    "applied",
    "no-match",
    "failed",
    "rejected",
    "duplicate",
    "dry-run",
];

/// The trigger of the runs of writes made by hand.
pub const MANUAL: &str = "manual";

/// The filters of a run listing; each one given must hold.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[into_params(parameter_in = Query, rename_all = "kebab-case")]
pub struct RunFilters {
    /// Only runs that ended so: `applied`, `no-match`, `failed`,
    /// `rejected`, `duplicate` or `dry-run`.
    #[serde(default)]
    pub outcome: Option<String>,
    /// Only runs of this trigger (`mail-received`, `request-saved`,
    /// `contract-event`, `schedule`, or `manual` for writes made by hand).
    #[serde(default)]
    pub trigger: Option<String>,
    /// Only runs in which this rule matched.
    #[serde(default)]
    pub rule: Option<String>,
    /// Only runs in which this plugin ran.
    #[serde(default)]
    pub plugin: Option<String>,
    /// Started at or after this time (RFC 3339, or a date: `2026-11-30`).
    #[serde(default)]
    pub since: Option<String>,
    /// Started before this time (RFC 3339, or a date: up to that day's
    /// start).
    #[serde(default)]
    pub until: Option<String>,
    /// The page after the one whose `next-before` this is.
    #[serde(default)]
    pub before: Option<i64>,
    /// Rows per page (50 by default, at most 500).
    #[serde(default)]
    pub limit: Option<usize>,
}

impl RunFilters {
    /// The store's query, or which filter is wrong.
    pub fn query(&self) -> Result<RunQuery, CallError> {
        let invalid = |field: &str, message: String| CallError::Invalid {
            field: Some(field.to_string()),
            message,
        };
        let outcome = given(&self.outcome);
        if let Some(outcome) = &outcome
            && !OUTCOMES.contains(&outcome.as_str())
        {
            return Err(invalid(
                "outcome",
                format!("`{outcome}` is none of {}", OUTCOMES.join(", ")),
            ));
        }
        let trigger = given(&self.trigger);
        if let Some(trigger) = &trigger
            && trigger != MANUAL
            && !Trigger::ALL.iter().any(|t| t.as_str() == trigger)
        {
            let known: Vec<&str> = Trigger::ALL.iter().map(|t| t.as_str()).collect();
            return Err(invalid(
                "trigger",
                format!("`{trigger}` is none of {}, {MANUAL}", known.join(", ")),
            ));
        }
        let limit = page_size(self.limit)?;
        let (since, until) = time_range(&self.since, &self.until)?;
        Ok(RunQuery {
            outcome,
            trigger,
            rule: given(&self.rule),
            plugin: given(&self.plugin),
            since,
            until,
            before: self.before,
            limit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_outcomes_and_triggers_pass_and_others_name_their_field() {
        let filters = RunFilters {
            outcome: Some("failed".into()),
            trigger: Some("manual".into()),
            since: Some("2026-11-30".into()),
            ..RunFilters::default()
        };
        let query = filters.query().expect("valid");
        assert_eq!(query.outcome.as_deref(), Some("failed"));
        assert_eq!(query.trigger.as_deref(), Some("manual"));
        assert!(query.since.is_some());
        for (filters, field) in [
            (
                RunFilters {
                    outcome: Some("broken".into()),
                    ..RunFilters::default()
                },
                "outcome",
            ),
            (
                RunFilters {
                    trigger: Some("mail".into()),
                    ..RunFilters::default()
                },
                "trigger",
            ),
            (
                RunFilters {
                    limit: Some(0),
                    ..RunFilters::default()
                },
                "limit",
            ),
        ] {
            match filters.query() {
                Err(CallError::Invalid { field: Some(f), .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }
}
