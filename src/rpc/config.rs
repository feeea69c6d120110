//! The tunables of one connection.

use std::time::Duration;

use crate::wire::DEFAULT_MAX_FRAME;

/// The default of [`PeerConfig::max_queued_bytes`]: 8 MiB.
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 8 * 1024 * 1024;

/// Tunables of one connection. Every bound here is what a peer can make this side hold.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Largest frame body accepted or sent, in bytes.
    pub max_frame: usize,
    /// Deadline for requests sent with [`Peer::request`](super::Peer::request).
    pub request_timeout: Duration,
    /// Incoming requests handled at once; beyond this the peer gets `Busy` errors.
    pub max_incoming: usize,
    /// Malformed frames (and answers to requests never sent) tolerated before the connection
    /// is closed.
    pub max_bad_frames: u32,
    /// Notifications buffered for the owner before further ones are dropped (and logged).
    pub event_buffer: usize,
    /// Bytes of encoded frames waiting for the peer to read them, at most; senders wait for
    /// room beyond it (a frame larger than this goes out alone). With `max_incoming`, this
    /// bounds what a peer that stops reading makes us hold: the queue, plus at most
    /// `max_incoming` answers waiting for room.
    pub max_queued_bytes: usize,
    /// How long the peer may read nothing while frames wait for it before the connection is
    /// closed ([`CloseReason::Stalled`](super::CloseReason::Stalled)).
    pub stall_timeout: Duration,
}

impl Default for PeerConfig {
    fn default() -> Self {
        Self {
            max_frame: DEFAULT_MAX_FRAME,
            request_timeout: Duration::from_secs(30),
            max_incoming: 4096,
            max_bad_frames: 32,
            event_buffer: 1024,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            stall_timeout: Duration::from_secs(30),
        }
    }
}
