//! Where events come from. For mail: files, directories of `.eml` files
//! and Maildir folders (`relais ingest`), parsed by [`mail`].

pub mod auth;
pub mod files;
pub mod mail;
pub mod verify;
