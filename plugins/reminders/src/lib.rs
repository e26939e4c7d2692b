//! Reminders: a scheduled check that reminds customers of the requests
//! waiting on them (the seed's exchanges typed "Relance").
//!
//! The plugin only decides; the host acts. [`decide`] takes a `schedule`
//! event and returns one [`Effect::SendMail`] per request to remind, to its
//! requester, recorded by the host as an exchange sent on the request and
//! typed [`REMINDER`] (`relance`). Other events give no effect (a debug log
//! line).
//!
//! # Which requests
//!
//! The host lists the requests in one of `states` (`waiting-customer`)
//! with no activity (a save, an exchange, a direct message) for
//! `after-days` whole days counted from the time the schedule fired, the
//! longest idle first, at most `limit`. Since a reminder is itself an
//! exchange, the next one waits `after-days` again: a daily rule reminds
//! every `after-days`, not every day. A request is then left out, with an
//! info log line giving the reason, when:
//!
//! 1. the customer spoke last (its last exchange was received): the state
//!    says the customer should answer, the exchanges say it did, so staff
//!    owe the next move and a reminder would be wrong;
//! 2. it already had `max-reminders` reminders since the customer last
//!    spoke: it is left to staff (a person should call);
//! 3. it is not publishable: the customer does not see it;
//! 4. it has no requester, the requester is unknown, or has no `email`
//!    (Mail 1, the address the seed's exchanges are sent to): a warning.
//!
//! # The mail
//!
//! The template (`relance`) is rendered in the customer's language, else
//! the rule's `language` (`fr`), with a
//! [`ReminderContext`](relais_sdk::ReminderContext): `request`,
//! `customer`, `contact` (the requester) and `reminder` (which one it is,
//! the maximum, the idle days, since when). The subject is the template's
//! subject line, else `Relance : SUBJECT`; the host adds the ticket tag, so
//! the customer's answer comes back to the request, is recorded as a
//! received exchange, and stops the reminders.
//!
//! Host query and template errors fail the run (`PluginError::Host`) so
//! that it can be retried; a bad rule config or a `fired-at` that is not a
//! time is a `PluginError::Plugin`.
#![deny(missing_docs)]

mod config;
mod plugin;

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use relais_sdk::{
    Effect, Event, Host, Level, PluginError, REMINDER, Reminder, ReminderContext, RequestActivity,
    RequestQuery, Side,
};
use serde_json::Value;

pub use config::Config;
pub use plugin::{CAPABILITIES, CONFIG_SCHEMA, Reminders};

/// The plugin's name, as rule files write it (`run: { plugin: reminders }`).
pub const NAME: &str = "reminders";

/// Decides which requests to remind about, and how.
///
/// # Errors
///
/// [`PluginError::Plugin`] for a bad config or a `fired-at` that is not an
/// RFC 3339 time; [`PluginError::Host`] when a query or the template fails.
pub fn decide(
    event: &Event,
    config: &Value,
    host: &(impl Host + ?Sized),
) -> Result<Vec<Effect>, PluginError> {
    let config = Config::from_value(config)?;
    let Event::Schedule(fired) = event else {
        host.log(
            Level::Debug,
            "reminders run on schedule events only; nothing to do",
        );
        return Ok(Vec::new());
    };
    let now = DateTime::parse_from_rfc3339(&fired.fired_at)
        .map_err(|error| {
            PluginError::Plugin(format!(
                "fired-at `{}` is not an RFC 3339 time: {error}",
                fired.fired_at
            ))
        })?
        .with_timezone(&Utc);
    let idle_since = now - TimeDelta::days(i64::from(config.after_days));
    let query = RequestQuery {
        states: config.states.clone(),
        idle_since: Some(idle_since.to_rfc3339_opts(SecondsFormat::Millis, true)),
        limit: config.limit,
    };
    let found = host.find_requests(&query)?;
    host.log(
        Level::Info,
        &format!(
            "{} request(s) in {} idle since {}",
            found.len(),
            config.states.join(", "),
            idle_since.format("%Y-%m-%d %H:%M UTC")
        ),
    );
    if found.len() as u32 >= config.limit {
        host.log(
            Level::Warn,
            &format!(
                "the limit of {} requests per run was reached: the others wait for the next run",
                config.limit
            ),
        );
    }
    let mut effects = Vec::new();
    for activity in &found {
        if let Some(effect) = remind(activity, &config, now, host)? {
            effects.push(effect);
        }
    }
    Ok(effects)
}

/// The reminder about one request, or `None` (logged) when it gets none.
fn remind(
    activity: &RequestActivity,
    config: &Config,
    now: DateTime<Utc>,
    host: &(impl Host + ?Sized),
) -> Result<Option<Effect>, PluginError> {
    let request = &activity.request;
    let number = request.number;
    let skip = |level: Level, why: String| {
        host.log(level, &format!("request {number}: no reminder: {why}"));
        Ok(None)
    };
    let exchanges = &activity.exchanges;
    if exchanges.last_side == Some(Side::Customer) {
        return skip(
            Level::Info,
            format!(
                "the customer spoke last ({}): the next move is staff's",
                exchanges.last_at.as_deref().unwrap_or("?")
            ),
        );
    }
    if exchanges.reminders >= config.max_reminders {
        return skip(
            Level::Info,
            format!(
                "already reminded {} time(s) since the customer last spoke (max-reminders {}): left to staff",
                exchanges.reminders, config.max_reminders
            ),
        );
    }
    if !request.publishable {
        return skip(
            Level::Info,
            "not publishable: the customer does not see it".to_string(),
        );
    }
    let Some(requester) = &request.requester else {
        return skip(Level::Warn, "it has no requester to remind".to_string());
    };
    let Some(contact) = host.contact(requester)? else {
        return skip(
            Level::Warn,
            format!("its requester `{requester}` is not in the directory"),
        );
    };
    let Some(email) = contact.email.clone() else {
        return skip(
            Level::Warn,
            format!("its requester `{requester}` has no email address (Mail 1)"),
        );
    };
    let Some(customer) = host.customer(&request.customer)? else {
        return skip(
            Level::Warn,
            format!(
                "its customer `{}` is not in the directory",
                request.customer
            ),
        );
    };
    let last = DateTime::parse_from_rfc3339(&activity.last_activity)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now);
    let context = ReminderContext {
        request: request.clone(),
        customer: customer.clone(),
        contact,
        reminder: Reminder {
            number: exchanges.reminders + 1,
            max: config.max_reminders,
            idle_days: (now - last).num_days().max(0) as u32,
            since: last.format("%Y-%m-%d").to_string(),
            exchanges: exchanges.count,
        },
    };
    let language = customer.language.as_deref().unwrap_or(&config.language);
    let value = serde_json::to_value(&context)
        .map_err(|error| PluginError::Plugin(format!("reminder context: {error}")))?;
    let rendered = host.render(&config.template, Some(language), &value)?;
    let subject = rendered.subject.unwrap_or_else(|| {
        format!(
            "Relance : {}",
            request.subject.as_deref().unwrap_or_default()
        )
        .trim_end()
        .to_string()
    });
    host.log(
        Level::Info,
        &format!(
            "request {number}: reminder {} of {} to {email} (idle {} days)",
            context.reminder.number, config.max_reminders, context.reminder.idle_days
        ),
    );
    Ok(Some(Effect::SendMail {
        to: vec![email],
        subject,
        body: rendered.body,
        request: Some(number),
        exchange: Some(REMINDER.to_string()),
    }))
}

#[cfg(target_arch = "wasm32")]
relais_sdk::export_plugin!(Reminders);
