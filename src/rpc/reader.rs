//! The task that reads the peer's frames and sends each where it belongs: answers to our pending
//! requests, requests to [`Inbound`], cancels to the request they cancel, notifications and
//! heartbeats to the owner's [`Events`](super::Events).
//!
//! The reader never waits for the owner or (short of hundreds of refusals unread) for the
//! outbound queue, so answers, heartbeats and cancels from the peer keep flowing while the peer
//! is slow to read ours.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::net::unix::OwnedReadHalf;
use tokio_util::codec::FramedRead;

use super::error::CloseReason;
use super::events::{Event, EventSender};
use super::inbound::Inbound;
use super::pending::Delivery;
use super::session::Session;
use super::transport::{StreamCodec, StreamError};
use crate::wire::{ErrorCode, ErrorObject, Message};

pub(super) struct Reader {
    pub(super) session: Arc<Session>,
    pub(super) inbound: Inbound,
    pub(super) events: EventSender,
    /// Protocol violations so far.
    pub(super) bad_frames: u32,
}

impl Reader {
    pub(super) async fn run(mut self, mut frames: FramedRead<OwnedReadHalf, StreamCodec>) {
        let session = Arc::clone(&self.session);
        let reason = loop {
            let item = tokio::select! {
                biased;
                () = session.closing.closed() => break CloseReason::Local,
                item = frames.next() => item,
            };
            match item {
                None => break CloseReason::Eof,
                Some(Err(StreamError::Frame(err))) => {
                    tracing::warn!(peer = %session.peer, error = %err, "closing connection");
                    break CloseReason::Frame(err);
                }
                Some(Err(StreamError::Io(err))) => {
                    tracing::warn!(peer = %session.peer, error = %err, "closing connection");
                    break CloseReason::Read(Arc::new(err));
                }
                Some(Ok(Err(err))) => {
                    tracing::warn!(peer = %session.peer, kind = %err.kind(), error = %err, cause = ?std::error::Error::source(&err).map(ToString::to_string), "dropped a malformed frame");
                    if let Some(id) = err.request_id() {
                        let error = ErrorObject::new(
                            ErrorCode::InvalidRequest,
                            format!("malformed request: {err}"),
                        );
                        self.inbound.refuse(id, error).await;
                    }
                    if self.strike() {
                        break CloseReason::TooManyBadFrames {
                            count: self.bad_frames,
                        };
                    }
                }
                Some(Ok(Ok(message))) => {
                    if let Err(reason) = self.dispatch(message).await {
                        break reason;
                    }
                }
            }
        };
        self.shutdown(reason);
    }

    /// Counts a protocol violation; true once the peer has used up its tolerance.
    fn strike(&mut self) -> bool {
        self.bad_frames += 1;
        self.bad_frames > self.session.config.max_bad_frames
    }

    async fn dispatch(&mut self, message: Message) -> Result<(), CloseReason> {
        match message {
            Message::Request { id, method, params } => self.inbound.start(id, method, params).await,
            Message::Response { id, outcome } => match self.session.pending.complete(id, outcome) {
                Delivery::Delivered => {}
                Delivery::Late => {
                    tracing::debug!(peer = %self.session.peer, id, "ignored a late response to an abandoned request");
                }
                Delivery::Unknown => {
                    tracing::warn!(peer = %self.session.peer, id, "response to a request that was never sent");
                    if self.strike() {
                        return Err(CloseReason::TooManyBadFrames {
                            count: self.bad_frames,
                        });
                    }
                }
            },
            Message::Cancel { id, .. } => self.inbound.cancel(id),
            Message::Heartbeat { seq } => self.events.heartbeat(seq),
            Message::Notification { method, params } => {
                self.events.deliver(Event::Notification { method, params });
            }
            other => self.events.deliver(Event::Unexpected(other)),
        }
        Ok(())
    }

    fn shutdown(self, reason: CloseReason) {
        tracing::debug!(peer = %self.session.peer, %reason, "connection closed");
        self.session.closing.close(reason);
        self.session.pending.fail_all();
        self.inbound.cancel_all();
    }
}
