//! The store as plugins query it: the read-only [`Host`] each plugin call
//! gets, with its log lines kept for the trace.

use std::sync::{Arc, Mutex, PoisonError};

use relais_sdk::{
    AddressOwner, ContractDetails, Customer, Host, HostError, Level, Rendered, Request,
    RequestType, Settings, ThreadMail,
};

use super::LogLine;
use crate::store::{DirectoryRead, Exchanges, Threads};
use crate::store::{Store, StoreError};
use crate::templates::Templates;

/// The host queries, answered from the store and the templates, with the
/// plugin's logs collected for the trace. What a plugin may read is what
/// `S` offers: the directory, the requests' activity and mail threads,
/// never a write.
#[derive(Debug)]
pub struct StoreHost<S = Store> {
    store: S,
    templates: Arc<Templates>,
    plugin: String,
    logs: Mutex<Vec<LogLine>>,
}

impl<S> StoreHost<S> {
    /// Queries on `store` and `templates` for `plugin`.
    pub fn new(store: S, templates: Arc<Templates>, plugin: &str) -> StoreHost<S> {
        StoreHost {
            store,
            templates,
            plugin: plugin.to_string(),
            logs: Mutex::new(Vec::new()),
        }
    }

    /// The log lines so far, taken out.
    pub fn take_logs(&self) -> Vec<LogLine> {
        std::mem::take(&mut *self.logs.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

fn host_error(error: StoreError) -> HostError {
    HostError(error.to_string())
}

impl<S: DirectoryRead + Exchanges + Threads + Send + Sync> Host for StoreHost<S> {
    fn request(&self, number: u64) -> Result<Option<Request>, HostError> {
        self.store.request(number).map_err(host_error)
    }

    fn request_type(&self, code: &str) -> Result<Option<RequestType>, HostError> {
        self.store.request_type(code).map_err(host_error)
    }

    fn find_requests(
        &self,
        query: &relais_sdk::RequestQuery,
    ) -> Result<Vec<relais_sdk::RequestActivity>, HostError> {
        self.store.find_requests(query).map_err(host_error)
    }

    fn address_owners(&self, email: &str) -> Result<Vec<AddressOwner>, HostError> {
        self.store.address_owners(email).map_err(host_error)
    }

    fn contact(&self, id: &str) -> Result<Option<relais_sdk::Recipient>, HostError> {
        self.store.contact(id).map_err(host_error)
    }

    fn settings(&self) -> Result<Settings, HostError> {
        self.store.settings().map_err(host_error)
    }

    fn contract(&self, code: &str) -> Result<Option<ContractDetails>, HostError> {
        self.store.contract_details(code).map_err(host_error)
    }

    fn customer(&self, code: &str) -> Result<Option<Customer>, HostError> {
        self.store.customer(code).map_err(host_error)
    }

    fn render(
        &self,
        name: &str,
        language: Option<&str>,
        context: &serde_json::Value,
    ) -> Result<Rendered, HostError> {
        self.templates
            .render(name, language, context)
            .map_err(HostError)
    }

    fn thread(&self, message_id: &str) -> Result<Vec<ThreadMail>, HostError> {
        self.store.thread(message_id).map_err(host_error)
    }

    fn linked_ticket(&self, message_id: &str) -> Result<Option<u64>, HostError> {
        self.store.linked_ticket(message_id).map_err(host_error)
    }

    fn log(&self, level: Level, message: &str) {
        match level {
            Level::Debug => tracing::debug!(plugin = %self.plugin, "{message}"),
            Level::Info => tracing::info!(plugin = %self.plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin = %self.plugin, "{message}"),
            Level::Error => tracing::error!(plugin = %self.plugin, "{message}"),
        }
        self.logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(LogLine {
                plugin: self.plugin.clone(),
                level: level.as_str(),
                message: message.to_string(),
            });
    }
}
