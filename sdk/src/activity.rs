//! Requests by state and idleness, with their exchanges summed up: what a
//! scheduled check (the shipped reminders) reads to find requests waiting
//! on the customer.

use serde::{Deserialize, Serialize};

use crate::{Request, Side};

/// The exchange type of a reminder (the seed's "échange typé Relance").
pub const REMINDER: &str = "relance";

/// A request's exchanges with its customer, summed up: mail received from
/// the customer on the request, mail sent to the customer and recorded as
/// an exchange, and exchanges recorded by hand.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub struct ExchangeSummary {
    /// How many, received and sent.
    pub count: u32,
    /// Who spoke last: the customer (received) or staff (sent).
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "last_side")]
    pub last_side: Option<Side>,
    /// When the last exchange was (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "last_at")]
    pub last_at: Option<String>,
    /// Reminders (exchanges typed [`REMINDER`]) sent since the customer
    /// last spoke.
    pub reminders: u32,
}

impl ExchangeSummary {
    /// The summary of a request's exchanges, given oldest first as (who
    /// spoke, its exchange type, when): who spoke last is the side of the
    /// last one, and the reminders counted are those staff sent since the
    /// customer last spoke.
    pub fn of<'a>(exchanges: impl IntoIterator<Item = (Side, &'a str, &'a str)>) -> Self {
        let mut summary = ExchangeSummary::default();
        for (side, kind, at) in exchanges {
            summary.count += 1;
            summary.last_side = Some(side);
            summary.last_at = Some(at.to_string());
            match side {
                Side::Customer => summary.reminders = 0,
                Side::Staff if kind == REMINDER => summary.reminders += 1,
                Side::Staff => {}
            }
        }
        summary
    }
}

/// Which requests [`Host::find_requests`](crate::Host::find_requests) lists.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RequestQuery {
    /// In one of these states.
    pub states: Vec<String>,
    /// Idle since at least this time (RFC 3339): no save, exchange or
    /// direct message since. `None`: however recent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_since: Option<String>,
    /// At most this many (the host caps it at [`RequestQuery::MAX_LIMIT`]).
    pub limit: u32,
}

impl RequestQuery {
    /// The most requests one query returns.
    pub const MAX_LIMIT: u32 = 1000;
}

/// A request with what tells how long it has waited, and on whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestActivity {
    /// The request.
    pub request: Request,
    /// Its last activity: a save, an exchange or a direct message (RFC 3339).
    pub last_activity: String,
    /// Its exchanges.
    pub exchanges: ExchangeSummary,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_side_speaks_and_a_customers_word_resets_the_reminders() {
        let summary = ExchangeSummary::of([
            (Side::Staff, REMINDER, "2026-11-01T10:00:00.000Z"),
            (Side::Customer, "mail", "2026-11-02T10:00:00.000Z"),
            (Side::Staff, REMINDER, "2026-11-03T10:00:00.000Z"),
            (Side::Staff, "mail", "2026-11-04T10:00:00.000Z"),
            (Side::Staff, REMINDER, "2026-11-05T10:00:00.000Z"),
        ]);
        assert_eq!(summary.count, 5);
        assert_eq!(summary.last_side, Some(Side::Staff));
        assert_eq!(summary.last_at.as_deref(), Some("2026-11-05T10:00:00.000Z"));
        assert_eq!(summary.reminders, 2);
        assert_eq!(ExchangeSummary::of([]), ExchangeSummary::default());
    }
}
