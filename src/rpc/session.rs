//! What one connection's tasks and handles share: who the peer is, the settings, the table of
//! our pending requests, the outbound queue and the close signal.

use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use tokio_util::sync::CancellationToken;

use super::config::PeerConfig;
use super::error::CloseReason;
use super::outbox::Outbox;
use super::pending::PendingRequests;
use crate::wire::{EncodeError, ErrorCode, ErrorObject, Message, encode_message};

pub(super) struct Session {
    pub(super) peer: Arc<str>,
    pub(super) config: PeerConfig,
    pub(super) pending: PendingRequests,
    pub(super) outbox: Outbox,
    pub(super) closing: Closing,
}

impl Session {
    pub(super) fn encode(&self, message: &Message) -> Result<Bytes, EncodeError> {
        let mut buf = BytesMut::new();
        encode_message(message, self.config.max_frame, &mut buf)?;
        Ok(buf.freeze())
    }

    /// Queues a message, waiting for room. Answers are never dropped: a peer that stops reading
    /// them eventually stops being read from, which is the backpressure it asked for. An answer
    /// too large to send becomes an error answer, so the peer is not left waiting.
    ///
    /// # Cancel safety
    /// Dropping the future drops the message, unless it was already queued.
    pub(super) async fn queue(&self, message: Message) {
        let frame = match (self.encode(&message), message) {
            (Ok(frame), _) => frame,
            (Err(err), Message::Response { id, .. }) => {
                let error = ErrorObject::new(
                    ErrorCode::Internal,
                    format!("the result could not be sent: {err}"),
                );
                match self.encode(&Message::Response {
                    id,
                    outcome: Err(error),
                }) {
                    Ok(frame) => frame,
                    Err(_) => return,
                }
            }
            (Err(err), _) => {
                tracing::error!(peer = %self.peer, error = %err, "could not encode a message");
                return;
            }
        };
        tokio::select! {
            _ = self.outbox.send(frame) => {}
            () = self.closing.closed() => {}
        }
    }

    /// Queues a message only if there is room now; for `Drop`, which cannot wait. Used for
    /// cancels, whose loss costs the peer some wasted work and nothing else.
    pub(super) fn try_queue(&self, message: &Message) {
        match self.encode(message) {
            Ok(frame) => {
                if !self.outbox.try_send(frame) && !self.closing.is_closed() {
                    tracing::debug!(peer = %self.peer, kind = %message.kind(), "outbound queue full; message not sent");
                }
            }
            Err(err) => {
                tracing::error!(peer = %self.peer, error = %err, "could not encode a message");
            }
        }
    }
}

/// The end of a connection: a signal every task watches, and the first reason given for it.
pub(super) struct Closing {
    token: CancellationToken,
    reason: OnceLock<CloseReason>,
}

impl Closing {
    pub(super) fn new() -> Self {
        Self {
            token: CancellationToken::new(),
            reason: OnceLock::new(),
        }
    }

    /// Ends the connection; the first reason given is the one reported.
    pub(super) fn close(&self, reason: CloseReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    pub(super) fn is_closed(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Why the connection ended; [`CloseReason::Local`] if it ended without a reason (the last
    /// handle went) or has not ended.
    pub(super) fn reason(&self) -> CloseReason {
        self.reason.get().cloned().unwrap_or(CloseReason::Local)
    }

    /// Resolves once the connection has ended.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub(super) async fn closed(&self) {
        self.token.cancelled().await;
    }

    /// A token that fires when the connection ends, or earlier if cancelled itself.
    pub(super) fn child_token(&self) -> CancellationToken {
        self.token.child_token()
    }

    /// The signal itself, for a guard that ends the connection without a reason.
    pub(super) fn token(&self) -> CancellationToken {
        self.token.clone()
    }
}
