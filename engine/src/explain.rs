//! Why a run's rules did not match. A run traces in full only the rules
//! that matched (their plugin, effects, logs, failure) and counts the
//! others: with a thousand rules, a thousand formatted reasons per mail
//! would cost more than the mail. When someone asks (`relais runs show`),
//! each reason is recomputed from the event as stored (the mail itself,
//! or the event a run without mail keeps) against the rule set.

use relais_sdk::Event;
use serde_json::{Value, json};

use crate::rules::{RuleSet, Trigger};
use crate::store::prelude::*;
use crate::store::{RunRecord, StoreError};

/// The event `run` processed, rebuilt: from its trace for events that carry
/// no mail, else from the stored mail. `None` when it cannot be (the raw
/// mail expired by retention, say).
pub fn event_of(
    store: &(impl Mails + DirectoryRead),
    run: &RunRecord,
) -> Result<Option<Event>, StoreError> {
    if let Some(event) = run.trace.get("event").filter(|e| !e.is_null()) {
        return Ok(serde_json::from_value(event.clone()).ok());
    }
    let Some(message_id) = &run.message_id else {
        return Ok(None);
    };
    let (Some(raw), Some(mail)) = (store.raw_mail(message_id)?, store.mail(message_id)?) else {
        return Ok(None);
    };
    Ok(crate::sources::mail::parse(&raw, &mail.account)
        .ok()
        .map(|parsed| Event::MailReceived(parsed.mail)))
}

/// The rules of `rules` fired by `event` that do not match it, each with
/// why, as trace entries (`recomputed: true`).
pub fn not_matched(rules: &RuleSet, event: &Event) -> Vec<Value> {
    let trigger = Trigger::of(event);
    rules
        .for_trigger(trigger)
        .filter_map(|rule| {
            let reason = rule.condition.as_ref()?.check(event).err()?;
            Some(json!({
                "id": rule.id,
                "source": rule.source,
                "matched": false,
                "reason": reason,
                "recomputed": true,
            }))
        })
        .collect()
}

/// `run`'s trace with the rules it counted as not matched spelled out,
/// recomputed against `rules`; when `rules` is not the set the run ran on,
/// `rule-set-now` says which it is. A run whose event cannot be rebuilt
/// keeps its count.
pub fn explained(
    store: &(impl Mails + DirectoryRead),
    rules: &RuleSet,
    mut run: RunRecord,
) -> Result<RunRecord, StoreError> {
    let counted = run
        .trace
        .get("not-matched")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if counted == 0 {
        return Ok(run);
    }
    let Some(event) = event_of(store, &run)? else {
        return Ok(run);
    };
    let others = not_matched(rules, &event);
    if let Some(list) = run.trace.get_mut("rules").and_then(Value::as_array_mut) {
        list.extend(others);
    }
    if run.trace.get("rule-set").and_then(Value::as_str) != Some(rules.hash.as_str()) {
        run.trace["rule-set-now"] = json!(rules.hash);
    }
    Ok(run)
}
