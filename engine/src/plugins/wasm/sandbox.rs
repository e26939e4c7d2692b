//! One event's sandbox: its store with WASI granting nothing and the
//! event's limits, the linker of the declared capabilities, and the host
//! functions behind them, each checking the wall clock first.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use relais_sdk::{Host, HostError, Level};
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::relais::plugin::{
    contracts, directory, log, mail, requests, settings, templates, types as wit,
};
use super::runtime::TICK;
use super::{EngineError, Limits, convert};

/// A fault of the host during a query: the event fails and can be retried.
#[derive(Debug)]
pub(super) struct HostFault(pub(super) String);

impl fmt::Display for HostFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HostFault {}

/// The wall clock ran out while the host was answering a query.
#[derive(Debug)]
pub(super) struct WallClock;

impl fmt::Display for WallClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("wall-clock limit reached during a host call")
    }
}

impl std::error::Error for WallClock {}

/// Store data of one event.
pub(super) struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    host: Arc<dyn Host + Send + Sync>,
    deadline: Instant,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl State {
    /// Every query first checks the wall clock: epoch interruption only
    /// stops wasm code, not a slow host call.
    fn query<T, U>(
        &mut self,
        ask: impl FnOnce(&dyn Host) -> Result<T, HostError>,
        convert: impl FnOnce(T) -> U,
    ) -> wasmtime::Result<Result<U, String>> {
        if Instant::now() > self.deadline {
            return Err(wasmtime::Error::new(WallClock));
        }
        match ask(self.host.as_ref()) {
            Ok(value) => Ok(Ok(convert(value))),
            // A store failure is ours, not the plugin's: trap with a fault
            // the host recognises, rather than hand the guest an error.
            Err(error) => Err(wasmtime::Error::new(HostFault(error.0))),
        }
    }
}

impl wit::Host for State {}

impl requests::Host for State {
    fn get_request(
        &mut self,
        number: u64,
    ) -> wasmtime::Result<Result<Option<wit::Request>, String>> {
        self.query(|h| h.request(number), |r| r.map(convert::request_out))
    }

    fn get_request_type(
        &mut self,
        code: String,
    ) -> wasmtime::Result<Result<Option<wit::RequestType>, String>> {
        self.query(|h| h.request_type(&code), |t| t.map(convert::request_type))
    }

    fn find_requests(
        &mut self,
        query: wit::RequestQuery,
    ) -> wasmtime::Result<Result<Vec<wit::RequestActivity>, String>> {
        let query = convert::request_query(query);
        self.query(
            |h| h.find_requests(&query),
            |found| found.into_iter().map(convert::request_activity).collect(),
        )
    }
}

impl directory::Host for State {
    fn address_owners(
        &mut self,
        email: String,
    ) -> wasmtime::Result<Result<Vec<wit::AddressOwner>, String>> {
        self.query(
            |h| h.address_owners(&email),
            |o| o.into_iter().map(convert::address_owner).collect(),
        )
    }

    fn get_contact(
        &mut self,
        id: String,
    ) -> wasmtime::Result<Result<Option<wit::Recipient>, String>> {
        self.query(|h| h.contact(&id), |c| c.map(convert::recipient))
    }
}

impl settings::Host for State {
    fn get_settings(&mut self) -> wasmtime::Result<Result<wit::Settings, String>> {
        self.query(|h| h.settings(), convert::settings)
    }
}

impl contracts::Host for State {
    fn get_contract(
        &mut self,
        code: String,
    ) -> wasmtime::Result<Result<Option<wit::ContractDetails>, String>> {
        self.query(|h| h.contract(&code), |c| c.map(convert::contract))
    }

    fn get_customer(
        &mut self,
        code: String,
    ) -> wasmtime::Result<Result<Option<wit::Customer>, String>> {
        self.query(|h| h.customer(&code), |c| c.map(convert::customer))
    }
}

impl templates::Host for State {
    fn render(
        &mut self,
        name: String,
        language: Option<String>,
        context: String,
    ) -> wasmtime::Result<Result<wit::Rendered, String>> {
        // The context is the plugin's own data: JSON it cannot write is
        // its error, answered as such rather than as a host fault.
        let context: serde_json::Value = match serde_json::from_str(&context) {
            Ok(context) => context,
            Err(error) => return Ok(Err(format!("template context is not JSON: {error}"))),
        };
        self.query(
            |h| h.render(&name, language.as_deref(), &context),
            convert::rendered,
        )
    }
}

impl mail::Host for State {
    fn thread(
        &mut self,
        message_id: String,
    ) -> wasmtime::Result<Result<Vec<wit::ThreadMail>, String>> {
        self.query(
            |h| h.thread(&message_id),
            |t| t.into_iter().map(convert::thread_mail).collect(),
        )
    }

    fn linked_ticket(
        &mut self,
        message_id: String,
    ) -> wasmtime::Result<Result<Option<u64>, String>> {
        self.query(|h| h.linked_ticket(&message_id), |t| t)
    }
}

impl log::Host for State {
    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            log::Level::Debug => Level::Debug,
            log::Level::Info => Level::Info,
            log::Level::Warn => Level::Warn,
            log::Level::Error => Level::Error,
        };
        // A log line is bounded like stdout: a plugin must not fill the
        // trace with one enormous line.
        let message: String = message.chars().take(4096).collect();
        self.host.log(level, &message);
        Ok(())
    }
}

/// Answers nothing: the host of the probe instance that reads metadata.
pub(super) struct NoQueries;

impl Host for NoQueries {
    fn request(&self, _: u64) -> Result<Option<relais_sdk::Request>, HostError> {
        Err(unavailable())
    }
    fn request_type(&self, _: &str) -> Result<Option<relais_sdk::RequestType>, HostError> {
        Err(unavailable())
    }
    fn find_requests(
        &self,
        _: &relais_sdk::RequestQuery,
    ) -> Result<Vec<relais_sdk::RequestActivity>, HostError> {
        Err(unavailable())
    }
    fn address_owners(&self, _: &str) -> Result<Vec<relais_sdk::AddressOwner>, HostError> {
        Err(unavailable())
    }
    fn contact(&self, _: &str) -> Result<Option<relais_sdk::Recipient>, HostError> {
        Err(unavailable())
    }
    fn settings(&self) -> Result<relais_sdk::Settings, HostError> {
        Err(unavailable())
    }
    fn contract(&self, _: &str) -> Result<Option<relais_sdk::ContractDetails>, HostError> {
        Err(unavailable())
    }
    fn customer(&self, _: &str) -> Result<Option<relais_sdk::Customer>, HostError> {
        Err(unavailable())
    }
    fn render(
        &self,
        _: &str,
        _: Option<&str>,
        _: &serde_json::Value,
    ) -> Result<relais_sdk::Rendered, HostError> {
        Err(unavailable())
    }
    fn thread(&self, _: &str) -> Result<Vec<relais_sdk::ThreadMail>, HostError> {
        Err(unavailable())
    }
    fn linked_ticket(&self, _: &str) -> Result<Option<u64>, HostError> {
        Err(unavailable())
    }
    fn log(&self, _: Level, _: &str) {}
}

fn unavailable() -> HostError {
    HostError("queries are not available while a plugin loads".to_string())
}

/// A linker with WASI (nothing granted), `log`, and the given query
/// interfaces.
pub(super) fn linker(
    engine: &Engine,
    capabilities: &[String],
) -> Result<Linker<State>, EngineError> {
    let mut linker = Linker::<State>::new(engine);
    let failed = |e: wasmtime::Error| EngineError::Link(e.to_string());
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(failed)?;
    log::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s).map_err(failed)?;
    wit::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s).map_err(failed)?;
    for capability in capabilities {
        match capability.as_str() {
            "requests" => requests::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s),
            "directory" => directory::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s),
            "settings" => settings::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s),
            "contracts" => contracts::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s),
            "mail" => mail::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s),
            "templates" => templates::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s),
            _ => Ok(()),
        }
        .map_err(failed)?;
    }
    Ok(linker)
}

/// A store for one event, with its limits set.
pub(super) fn new_store(
    engine: &Engine,
    limits: &Limits,
    host: Arc<dyn Host + Send + Sync>,
) -> Result<Store<State>, EngineError> {
    new_store_with_output(engine, limits, host, None)
}

pub(super) fn new_store_with_output(
    engine: &Engine,
    limits: &Limits,
    host: Arc<dyn Host + Send + Sync>,
    output: Option<(MemoryOutputPipe, MemoryOutputPipe)>,
) -> Result<Store<State>, EngineError> {
    let mut wasi = WasiCtxBuilder::new();
    wasi.allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    if let Some((stdout, stderr)) = output {
        wasi.stdout(stdout).stderr(stderr);
    }
    let state = State {
        wasi: wasi.build(),
        table: ResourceTable::new(),
        limits: StoreLimitsBuilder::new()
            .memory_size(limits.memory_bytes)
            .trap_on_grow_failure(true)
            .instances(16)
            .memories(16)
            .tables(32)
            .build(),
        host,
        deadline: Instant::now() + limits.wall_clock,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limits);
    store
        .set_fuel(limits.fuel)
        .map_err(|e| EngineError::Config(e.to_string()))?;
    let ticks = (limits.wall_clock.as_millis() / TICK.as_millis()).max(1) as u64;
    store.set_epoch_deadline(ticks);
    Ok(store)
}
