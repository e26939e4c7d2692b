//! Searching the mail store, as `GET /mails` and `relais mails` ask: the
//! filters as a person writes them, checked and turned into the store's
//! query.

use serde::Deserialize;

use super::CallError;
use crate::store::{MAX_PAGE, MailQuery};

/// The rows of a page unless asked otherwise.
pub const DEFAULT_PAGE: usize = 50;

/// The filters of a mail search; each one given must hold.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[into_params(parameter_in = Query, rename_all = "kebab-case")]
pub struct MailFilters {
    /// `false`: only mail on no ticket (left to link by hand); `true`: only
    /// mail on a ticket.
    #[serde(default)]
    pub linked: Option<bool>,
    /// Only mail on this ticket.
    #[serde(default)]
    pub ticket: Option<u64>,
    /// Only mail of this account.
    #[serde(default)]
    pub account: Option<String>,
    /// The sender's address contains this.
    #[serde(default)]
    pub sender: Option<String>,
    /// The subject contains this.
    #[serde(default)]
    pub subject: Option<String>,
    /// The subject or the text holds these words (or words starting with
    /// them); case and accents do not matter.
    #[serde(default)]
    pub text: Option<String>,
    /// An attachment's file name contains this.
    #[serde(default)]
    pub attachment: Option<String>,
    /// Only mail whose sender is in no directory record.
    #[serde(default)]
    pub unknown_sender: bool,
    /// `false`: no automatic mail (out-of-office, list, bounce); `true`:
    /// only automatic mail.
    #[serde(default)]
    pub automatic: Option<bool>,
    /// Received at or after this time (RFC 3339, or a date: `2026-11-30`).
    #[serde(default)]
    pub since: Option<String>,
    /// Received before this time (RFC 3339, or a date: up to that day's
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

/// `value` (RFC 3339, or a date at UTC midnight) as the store writes
/// times: UTC, milliseconds, `Z`.
fn time(field: &str, value: &str) -> Result<chrono::DateTime<chrono::Utc>, CallError> {
    let value = value.trim();
    let parsed = chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&chrono::Utc))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
                .map(|day| day.and_time(chrono::NaiveTime::MIN).and_utc())
        })
        .map_err(|_| CallError::Invalid {
            field: Some(field.to_string()),
            message: format!("`{value}` is neither an RFC 3339 time nor a date (2026-11-30)"),
        })?;
    Ok(parsed)
}

/// An empty filter is no filter.
pub(super) fn given(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// The rows of a page: `limit`, or [`DEFAULT_PAGE`]; between 1 and
/// [`MAX_PAGE`].
pub fn page_size(limit: Option<usize>) -> Result<usize, CallError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(CallError::Invalid {
            field: Some("limit".to_string()),
            message: format!("between 1 and {MAX_PAGE}"),
        });
    }
    Ok(limit)
}

/// A time range given as `since` and `until` (RFC 3339, or dates).
pub(super) type Range = (
    Option<chrono::DateTime<chrono::Utc>>,
    Option<chrono::DateTime<chrono::Utc>>,
);

/// `since` and `until`, checked.
pub(super) fn time_range(
    since: &Option<String>,
    until: &Option<String>,
) -> Result<Range, CallError> {
    Ok((
        given(since).map(|t| time("since", &t)).transpose()?,
        given(until).map(|t| time("until", &t)).transpose()?,
    ))
}

impl MailFilters {
    /// The store's query, once every filter is checked.
    pub fn query(&self) -> Result<MailQuery, CallError> {
        let limit = page_size(self.limit)?;
        let (since, until) = time_range(&self.since, &self.until)?;
        Ok(MailQuery {
            linked: self.linked,
            ticket: self.ticket,
            account: given(&self.account),
            sender: given(&self.sender),
            subject: given(&self.subject),
            text: given(&self.text),
            attachment: given(&self.attachment),
            unknown_sender: self.unknown_sender,
            automatic: self.automatic,
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
    fn times_and_dates_become_the_stores_form_and_bad_ones_name_their_field() {
        let filters = MailFilters {
            since: Some("2026-11-30".into()),
            until: Some("2026-12-01T10:00:00+01:00".into()),
            ..MailFilters::default()
        };
        let query = filters.query().expect("valid");
        let utc = |text: &str| Some(text.parse::<chrono::DateTime<chrono::Utc>>().expect("time"));
        assert_eq!(query.since, utc("2026-11-30T00:00:00Z"));
        assert_eq!(query.until, utc("2026-12-01T09:00:00Z"));
        assert_eq!(query.limit, DEFAULT_PAGE);
        let bad = MailFilters {
            until: Some("yesterday".into()),
            ..MailFilters::default()
        };
        assert!(matches!(
            bad.query(),
            Err(CallError::Invalid { field: Some(field), .. }) if field == "until"
        ));
        let huge = MailFilters {
            limit: Some(10_000),
            ..MailFilters::default()
        };
        assert!(huge.query().is_err());
    }
}
