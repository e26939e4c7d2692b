//! A plugin that misbehaves on purpose, as its rule config's `do` key says;
//! see `tests/plugins/README.md` for the list.

use std::hint::black_box;

use relais_sdk::{
    Author, Effect, Event, Host, Level, MessageSource, Metadata, PartyKind, Plugin, PluginError,
    Side,
};
use serde_json::Value;

/// Default body size of `huge`: far beyond any sane mail.
const HUGE_BODY_BYTES: u64 = 64 << 20;
/// A request number no test store holds.
const GHOST_REQUEST: u64 = 99_999_999;
/// The request `query` asks for.
const QUERIED_REQUEST: u64 = 23_010_203;

struct Misbehave;

impl Plugin for Misbehave {
    fn metadata() -> Metadata {
        Metadata::new("misbehave", env!("CARGO_PKG_VERSION"), &["requests"])
            .handles(&relais_sdk::TRIGGERS)
    }

    fn handle(
        _event: &Event,
        config: &Value,
        host: &(impl Host + ?Sized),
    ) -> Result<Vec<Effect>, PluginError> {
        match config.get("do").and_then(Value::as_str) {
            Some("trap") => panic!("misbehave: told to trap"),
            Some("loop") => spin(),
            Some("alloc") => hoard(),
            Some("huge") => Ok(huge(config)),
            Some("ghost") => Ok(vec![Effect::PostMessage {
                request: GHOST_REQUEST,
                author: Author {
                    kind: PartyKind::Contact,
                    id: "ct-ghost".to_string(),
                },
                side: Side::Customer,
                source: MessageSource::Plugin,
                body: "boo".to_string(),
                notify_by_email: None,
            }]),
            Some("stdout") => {
                println!("misbehave: first line on stdout");
                println!("misbehave: second line on stdout");
                eprintln!("misbehave: one line on stderr");
                Ok(Vec::new())
            }
            Some("query") => query(host),
            // One mail to the address `to` names, though the plugin may
            // not mail anyone: the host refuses it unless it is staff's or
            // a contact's.
            Some("mail") => Ok(vec![Effect::SendMail {
                to: vec![
                    config
                        .get("to")
                        .and_then(Value::as_str)
                        .unwrap_or("outsider@elsewhere.example")
                        .to_string(),
                ],
                subject: "hello".to_string(),
                body: "from misbehave".to_string(),
                request: None,
                exchange: None,
            }]),
            // Holds the dispatcher `ms` milliseconds (a slow run, no fuel).
            Some("sleep") => {
                let ms = config.get("ms").and_then(Value::as_u64).unwrap_or(1000);
                host.log(Level::Info, "misbehave: sleeping");
                std::thread::sleep(std::time::Duration::from_millis(ms));
                Ok(Vec::new())
            }
            _ => Ok(Vec::new()),
        }
    }
}

/// Never returns; `black_box` keeps the loop from being optimised away.
fn spin() -> ! {
    let mut turns: u64 = 0;
    loop {
        turns = black_box(turns.wrapping_add(1));
    }
}

/// Allocates 1 MiB at a time, and writes it, until allocation fails (an
/// abort, so a trap) or the host stops it.
fn hoard() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 1 << 20]);
        black_box(&hoard);
    }
}

/// `effects` send-mail effects (default 1), each with a body of
/// `body-bytes` bytes (default 64 MiB).
fn huge(config: &Value) -> Vec<Effect> {
    let count = config.get("effects").and_then(Value::as_u64).unwrap_or(1);
    let bytes = config
        .get("body-bytes")
        .and_then(Value::as_u64)
        .unwrap_or(HUGE_BODY_BYTES);
    // Beyond the 32-bit address space: `repeat` then fails, and the plugin traps.
    let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
    (0..count)
        .map(|_| Effect::SendMail {
            to: vec!["victim@example.com".to_string()],
            subject: "huge".to_string(),
            body: "x".repeat(bytes),
            request: None,
            exchange: None,
        })
        .collect()
}

fn query(host: &(impl Host + ?Sized)) -> Result<Vec<Effect>, PluginError> {
    match host.request(QUERIED_REQUEST) {
        Ok(Some(request)) => {
            let json = serde_json::to_string(&request).unwrap_or_default();
            host.log(Level::Info, &format!("request {QUERIED_REQUEST}: {json}"));
            Ok(Vec::new())
        }
        Ok(None) => {
            host.log(
                Level::Info,
                &format!("request {QUERIED_REQUEST}: not found"),
            );
            Ok(Vec::new())
        }
        Err(error) => {
            host.log(Level::Warn, &format!("request {QUERIED_REQUEST}: {error}"));
            Err(error.into())
        }
    }
}

relais_sdk::export_plugin!(Misbehave);
