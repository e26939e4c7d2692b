//! Applies `retention:` while the engine runs: at start, then every hour,
//! in small batches, each its own call on the dispatcher, so that events
//! go on between them.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use super::dispatcher::{Call, CallError, Task};
use crate::config::Retention;
use crate::store::prelude::*;

/// How often the store is looked at.
const EVERY: Duration = Duration::from_secs(3600);

/// Removes what `retention` says is too old, until `shutdown`.
pub async fn run(
    retention: Retention,
    tasks: mpsc::Sender<Task>,
    mut shutdown: watch::Receiver<bool>,
) {
    if !retention.is_on() {
        return;
    }
    loop {
        let cutoffs = retention.cutoffs();
        let mut total = crate::store::Expired::default();
        loop {
            if *shutdown.borrow() {
                return;
            }
            let (done, answer) = oneshot::channel();
            let cut = cutoffs.clone();
            let batch = retention.batch;
            let work = Box::new(move |dispatcher: &mut crate::dispatch::Dispatcher<'_>| {
                dispatcher
                    .store
                    .expire(&cut, batch)
                    .map(|e| serde_json::json!([e.runs, e.raw_mails, e.outbox]))
                    .map_err(|e| CallError::Internal(e.to_string()))
            });
            if tasks.send(Task::Call(Call { work, done })).await.is_err() {
                return;
            }
            let expired = match answer.await {
                Ok(Ok(counts)) => crate::store::Expired {
                    runs: counts[0].as_u64().unwrap_or(0) as usize,
                    raw_mails: counts[1].as_u64().unwrap_or(0) as usize,
                    outbox: counts[2].as_u64().unwrap_or(0) as usize,
                },
                Ok(Err(error)) => {
                    tracing::warn!(error = %error, "retention: a batch failed; trying again later");
                    break;
                }
                Err(_) => return,
            };
            if expired.is_empty() {
                break;
            }
            total.runs += expired.runs;
            total.raw_mails += expired.raw_mails;
            total.outbox += expired.outbox;
        }
        if !total.is_empty() {
            tracing::info!(
                runs = total.runs,
                raw_mails = total.raw_mails,
                outbox = total.outbox,
                "retention: removed what is past its time"
            );
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = shutdown.changed() => return,
        }
    }
}
