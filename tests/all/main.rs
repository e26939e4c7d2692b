//! Integration tests: the `relais` binary against real SQLite files, real
//! rule files and fixture mails. One test binary (see `support` for the
//! helpers every module shares).

mod activity;
mod alerts;
mod api;
mod catchmail;
mod check;
mod demo;
mod import;
mod ingest;
mod links;
mod mailloop;
mod mails;
mod manual;
mod openapi;
mod ops;
mod plugins;
mod reload;
mod reminders;
mod runs;
mod safety;
mod schedule;
mod support;
mod threads;
mod workers;
