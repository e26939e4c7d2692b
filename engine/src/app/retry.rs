//! Retrying a failed run: its event (a dead letter) replayed through the
//! rule set running now, as a new run that names the one it retries; the
//! failed run is kept as it was.

use super::{CallError, Command};
use crate::store::RunRecord;
use crate::store::prelude::*;

/// The command that retries run `id`, once checked: the run exists, it
/// failed, and its event can be rebuilt (from its trace, or from the
/// stored mail while retention keeps it).
pub fn prepare(store: &(impl Runs + Mails + DirectoryRead), id: i64) -> Result<Command, CallError> {
    let Some(run) = store.run(id)? else {
        return Err(CallError::NotFound(format!("no run {id}")));
    };
    if run.outcome != "failed" {
        return Err(CallError::Conflict(format!(
            "run {id} did not fail ({}): only a failed run is retried",
            run.outcome
        )));
    }
    let Some(event) = crate::explain::event_of(store, &run)? else {
        return Err(CallError::Conflict(format!(
            "run {id}'s event cannot be rebuilt: {}",
            why_not_rebuilt(&run)
        )));
    };
    Ok(Command::Retry {
        of: id,
        event,
        authentication: authentication(&run),
    })
}

/// Who a mail's first run found its sender to be.
fn authentication(run: &RunRecord) -> Option<relais_sdk::SenderAuthentication> {
    let found = run.trace.get("authentication")?;
    serde_json::from_value(found.clone()).ok()
}

fn why_not_rebuilt(run: &RunRecord) -> &'static str {
    if run.message_id.is_some() {
        "its raw mail is no longer stored (retention) or does not parse"
    } else {
        "its trace holds no event (a run of a manual write is not replayed)"
    }
}
