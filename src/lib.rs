//! Runs editor extensions in sandboxed, supervised hosts.
#![deny(unsafe_code)]

pub mod ipc;
