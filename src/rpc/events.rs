//! What a connection hands its owner besides answers: notifications, unexpected messages and
//! heartbeats.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, watch};

use crate::wire::Message;

/// A message for the connection's owner.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// A notification from the peer.
    Notification {
        /// Its method.
        method: String,
        /// Its params, unparsed.
        params: Option<Box<RawValue>>,
    },
    /// A handshake or shutdown the peer should not have sent at this point.
    Unexpected(Message),
}

/// The owner's side of a connection: its [`Event`]s in arrival order, bounded by
/// [`PeerConfig::event_buffer`](super::PeerConfig::event_buffer) (excess notifications are
/// dropped and logged), and its [`Heartbeats`]. Also a [`Stream`] of events.
#[derive(Debug)]
pub struct Events {
    messages: mpsc::Receiver<Event>,
    heartbeats: watch::Receiver<u64>,
}

impl Events {
    /// The next event; `None` once the connection has ended and every event was taken.
    ///
    /// # Cancel safety
    /// Cancel safe: an event is never lost to a dropped call.
    pub async fn recv(&mut self) -> Option<Event> {
        self.messages.recv().await
    }

    /// A watcher of the peer's heartbeats; each call gives an independent one.
    #[must_use]
    pub fn heartbeats(&self) -> Heartbeats {
        Heartbeats(self.heartbeats.clone())
    }
}

impl Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.messages.poll_recv(cx)
    }
}

/// The sequence numbers of the peer's heartbeats. Only the latest counts: a watcher that looks
/// rarely sees the newest number, not every one.
#[derive(Debug, Clone)]
pub struct Heartbeats(watch::Receiver<u64>);

impl Heartbeats {
    /// Waits for a heartbeat newer than the last one this watcher saw and returns its sequence
    /// number; `None` once the connection has ended.
    ///
    /// # Cancel safety
    /// Cancel safe: a heartbeat that arrives meanwhile is seen by the next call.
    pub async fn changed(&mut self) -> Option<u64> {
        self.0.changed().await.ok()?;
        Some(*self.0.borrow_and_update())
    }

    /// The sequence number of the latest heartbeat (0 before the first).
    #[must_use]
    pub fn latest(&self) -> u64 {
        *self.0.borrow()
    }
}

/// The connection's side of [`Events`].
pub(super) struct EventSender {
    messages: mpsc::Sender<Event>,
    heartbeats: watch::Sender<u64>,
    dropped: u64,
    peer: std::sync::Arc<str>,
}

impl EventSender {
    pub(super) fn new(buffer: usize, peer: std::sync::Arc<str>) -> (Self, Events) {
        let (messages, messages_rx) = mpsc::channel(buffer.max(1));
        let (heartbeats, heartbeats_rx) = watch::channel(0);
        let sender = Self {
            messages,
            heartbeats,
            dropped: 0,
            peer,
        };
        let events = Events {
            messages: messages_rx,
            heartbeats: heartbeats_rx,
        };
        (sender, events)
    }

    /// Hands `event` to the owner, or drops it if the owner is that far behind: the reader
    /// never waits for the owner.
    pub(super) fn deliver(&mut self, event: Event) {
        if self.messages.try_send(event).is_err() {
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                tracing::warn!(peer = %self.peer, dropped = self.dropped, "peer sends notifications faster than they are consumed; dropping");
            }
        }
    }

    pub(super) fn heartbeat(&self, seq: u64) {
        self.heartbeats.send_replace(seq);
    }
}
