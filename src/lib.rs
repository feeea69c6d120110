//! Runs editor extensions in supervised, contained Node.js hosts, one process per extension, and
//! is the broker for everything privileged they do.
//!
//! # Layout
//!
//! - [`wire`]: the bytes and the envelope, with no I/O. [`wire::MessageCodec`] frames (4-byte
//!   big-endian length, JSON body, size checked before allocating, an explicit decode state)
//!   and sorts bad input into frame-level and message-level errors, named as the conformance
//!   vectors name them ([`wire::DecodeErrorKind`]); [`wire::Message`] is the typed envelope,
//!   with the per-type id rules part of the type and free-form parts kept as raw JSON.
//! - [`rpc`]: the conversation. [`rpc::Peer`] is the cloneable handle that makes requests (with
//!   a deadline and cancellation) and notifications; behind it, a table of our pending requests,
//!   the peer's requests in flight (capped, duplicate ids refused), a byte-bounded outbox with
//!   its writer task, and a reader task that dispatches what arrives. [`rpc::Transport`] is the
//!   framed socket for the handshake before that; [`rpc::PrivateListener`] is the private,
//!   peer-checked socket for control clients, [`rpc::IpcManager`] its client.
//! - [`lifecycle`]: keeping hosts alive. [`lifecycle::state`] is the pure transition table,
//!   [`lifecycle::backoff`] the pure restart budget. The private `machine` builds the sans-IO
//!   lifecycle on both: `Machine::step(now, input)` returns actions and does no I/O, and its
//!   table tests pin every path down. The private `actor`, one task per host, owns the child and
//!   turns control messages, the child's exit, timers, the watchdog and the connection into
//!   inputs, then performs the actions, with the effects by concern in `launch` (sandbox,
//!   spawn, stage report, cgroup), `handshake` (handshake and activation), `watchdog`
//!   (heartbeats and limits), `stop` (shutdown message and signals) and `notifications`.
//!   [`lifecycle::HostHandle`] and [`lifecycle::ExtensionHostManager`] are what callers hold.
//! - [`process`]: spawning a host with a cleared environment, its IPC socket at fd 3, its output
//!   captured, and a PID namespace so nothing it starts outlives it. [`process::sys`] holds the
//!   only `unsafe` code.
//! - [`broker`]: serving the host API. [`broker::Broker`] parses each request once into a typed
//!   call that names its permission and scope, then runs it through identity, rate limit and
//!   permission layers to its handler (files, secrets, the embedder's [`broker::UiHandler`] and
//!   [`broker::CommandRouter`]); [`broker::DenyAll`] refuses everything and is the manager's
//!   default.
//! - [`permissions`]: permission strings with path, host and command scopes, grants, and the
//!   effective set (asked for ∩ granted, deny wins).
//! - [`paths`]: turning the paths extensions send into files opened beneath an allowed root.
//! - [`ratelimit`]: per-extension token buckets for the host API.
//! - [`secrets`]: per-extension secrets in the OS keyring (Secret Service or keyutils).
//! - [`extension`]: reading an extension's `package.json`.
//! - [`runtime`]: the embedded Node.js host and the private runtime directory.
//! - [`config`] and [`control`]: the standalone `dscode-exthost run` and its control socket.
//!
//! # Theory of operation
//!
//! [`lifecycle::HostHandle::start`] sends a message to the host's actor, whose machine answers
//! Starting and a spawn; the actor spawns the host: a shim process that unshares a PID
//! namespace and forks the real host as its PID 1, with one end of a socketpair at fd 3. Each
//! step that follows is an action the machine asks for once the last one reported back: the
//! sandbox stage's report, the handshake (the actor frames its end as an [`rpc::Transport`],
//! reads the host's `handshake` and answers with the authoritative extension id and settings),
//! the move into the cgroup, and activation (the transport goes to [`rpc::Peer::start`] and the
//! request `extension/activate` is sent). Its answer (the registered commands) makes the host
//! Running.
//!
//! A call such as [`lifecycle::HostHandle::execute_command`] takes a fresh id and a one-shot
//! waiter for it from the peer's pending table in one step, encodes a `request` with that id
//! ([`wire::encode_message`], straight into the frame buffer), and queues the frame in the
//! outbox, waiting for room if the host is slow to read; the writer task drains the outbox into
//! the socket. The host runs the command and writes a `response` with the same id; the reader
//! task decodes the frame ([`wire::MessageCodec`]) and completes the waiter. If the deadline
//! passes or the caller drops the future first, the waiter is removed and, if the request had
//! left the outbox, the host is sent a `cancel`, which aborts the extension's cancellation
//! token; a late answer is then ignored.
//!
//! Requests the host makes (`fs/readFile`, ...) arrive on the same connection; each is admitted
//! (at most `max_incoming` in flight, beyond that `Busy`; an id already in flight is refused),
//! runs in a task of its own and goes to the broker with the caller's identity taken from the
//! connection, never from the message. Heartbeats from the host's event loop reset the
//! watchdog's deadline in the host's actor; when the deadline passes, or the process exits, the
//! actor tells its machine, which publishes why (Unhealthy), has the process group killed, and
//! arms the backoff before the next start, until the restart budget is spent. A stop is the
//! same: the machine sends the shutdown message, then SIGTERM and SIGKILL as its grace timers
//! fire, and a backoff it interrupts ends at once.

#![deny(unsafe_code)]

pub mod broker;
pub mod config;
pub mod control;
pub mod extension;
pub mod lifecycle;
pub mod paths;
pub mod permissions;
pub mod process;
pub mod ratelimit;
pub mod rpc;
pub mod runtime;
pub mod sandbox;
pub mod secrets;
pub mod supervisor;

pub use supervisor::{Supervisor, SupervisorBuilder, SupervisorError};

/// Raises this process's soft limit on open files to its hard limit and returns the new limit.
/// Each running host costs the supervisor about five descriptors (its socket, two output pipes,
/// its process handle, its cgroup files while it starts), so a supervisor of many hosts should
/// call this first; `dscode-exthost run` does.
///
/// # Errors
/// If the limit cannot be read or set.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    process::sys::raise_fd_limit()
}
pub mod wire;

/// The README's code blocks, compiled as doc tests so the embedding example cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
