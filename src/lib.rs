//! Runs editor extensions in sandboxed, supervised hosts.
#![deny(unsafe_code)]

pub mod broker;
pub mod config;
pub mod control;
pub mod extension;
pub mod ipc;
pub mod lifecycle;
pub mod process;
pub mod runtime;
