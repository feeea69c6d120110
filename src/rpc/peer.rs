//! The handle to one conversation: requests and notifications to the peer, and its end.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;
use tokio::net::UnixStream;
use tokio_util::sync::CancellationToken;

use super::config::PeerConfig;
use super::error::{CloseReason, RequestError, SendError};
use super::events::{EventSender, Events};
use super::handler::RequestHandler;
use super::inbound::Inbound;
use super::outbox::{Outbox, write_loop};
use super::pending::{PendingCall, PendingRequests};
use super::reader::Reader;
use super::session::{Closing, Session};
use super::transport::Transport;
use crate::wire::Message;

/// A cloneable handle to one connection. Dropping every clone closes it.
///
/// Starting one spawns two tasks: a reader, which dispatches what the peer sends (answers,
/// requests, cancels, notifications, heartbeats), and a writer, which drains the byte-bounded
/// outbound queue. Many requests are in flight at once in both directions.
#[derive(Clone)]
pub struct Peer {
    session: Arc<Session>,
    _close_on_drop: Arc<CloseOnDrop>,
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer")
            .field("peer", &self.session.peer)
            .finish_non_exhaustive()
    }
}

struct CloseOnDrop(CancellationToken);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

impl Peer {
    /// Frames a connected stream and starts the conversation on it.
    ///
    /// `peer` names the other side for logs and handlers; it comes from how the connection was
    /// made, never from anything the peer sends. `handler` serves the peer's requests.
    ///
    /// # Panics
    /// Outside a tokio runtime, or if `config.max_frame` does not fit the 4-byte length header.
    #[must_use]
    pub fn new(
        stream: UnixStream,
        peer: impl Into<Arc<str>>,
        config: PeerConfig,
        handler: Arc<dyn RequestHandler>,
    ) -> (Self, Events) {
        let transport = Transport::new(stream, config.max_frame);
        Self::start(transport, peer, config, handler)
    }

    /// Like [`Peer::new`], on a transport that has already exchanged messages (a handshake);
    /// bytes of later frames it has read are not lost. From here on `config.max_frame` is the
    /// limit in both directions.
    ///
    /// # Panics
    /// As [`Peer::new`].
    #[must_use]
    pub fn start(
        mut transport: Transport,
        peer: impl Into<Arc<str>>,
        config: PeerConfig,
        handler: Arc<dyn RequestHandler>,
    ) -> (Self, Events) {
        transport
            .frames
            .decoder_mut()
            .0
            .set_max_frame(config.max_frame);
        let peer = peer.into();
        let (outbox, queue) = Outbox::new(config.max_queued_bytes);
        let (events, events_rx) = EventSender::new(config.event_buffer, Arc::clone(&peer));
        let session = Arc::new(Session {
            peer,
            config,
            pending: PendingRequests::new(),
            outbox,
            closing: Closing::new(),
        });
        let Transport { frames, write } = transport;
        tokio::spawn(write_loop(queue, write, Arc::clone(&session)));
        let reader = Reader {
            inbound: Inbound::new(Arc::clone(&session), handler),
            session: Arc::clone(&session),
            events,
            bad_frames: 0,
        };
        tokio::spawn(reader.run(frames));
        let close_on_drop = Arc::new(CloseOnDrop(session.closing.token()));
        let peer = Self {
            session,
            _close_on_drop: close_on_drop,
        };
        (peer, events_rx)
    }

    /// Who the peer is.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.session.peer
    }

    /// Sends a request and waits for its answer, with the connection's default timeout.
    ///
    /// # Errors
    /// See [`RequestError`].
    ///
    /// # Cancel safety
    /// Dropping the future abandons the request; a peer that was sent it is sent a cancel, and
    /// a late answer is ignored.
    pub async fn request(
        &self,
        method: &str,
        params: Option<Box<RawValue>>,
    ) -> Result<Box<RawValue>, RequestError> {
        self.request_with(method, params, self.session.config.request_timeout, None)
            .await
    }

    /// Sends a request with an explicit deadline and an optional cancellation token. The
    /// deadline covers waiting for room in the outbound queue as well as waiting for the answer.
    ///
    /// # Errors
    /// See [`RequestError`]; a timeout or cancel says how far the request had got.
    ///
    /// # Cancel safety
    /// As [`Peer::request`].
    pub async fn request_with(
        &self,
        method: &str,
        params: Option<Box<RawValue>>,
        timeout: Duration,
        cancel: Option<&CancellationToken>,
    ) -> Result<Box<RawValue>, RequestError> {
        let session = &*self.session;
        if session.closing.is_closed() {
            return Err(RequestError::Closed {
                reason: session.closing.reason(),
            });
        }
        let mut call = PendingCall::new(session);
        let frame = session.encode(&Message::Request {
            id: call.id(),
            method: method.to_owned(),
            params,
        })?;
        let never = CancellationToken::new();
        let cancel = cancel.unwrap_or(&never);
        tokio::select! {
            biased;
            answer = call.exchange(frame) => match answer {
                Ok(Ok(result)) => Ok(result),
                Ok(Err(error)) => Err(RequestError::Remote(error)),
                Err(reason) => Err(RequestError::Closed { reason }),
            },
            () = tokio::time::sleep(timeout) => {
                let stage = call.stage();
                call.abandon("timeout");
                Err(RequestError::Timeout { method: method.to_owned(), after: timeout, stage })
            }
            () = cancel.cancelled() => {
                let stage = call.stage();
                call.abandon("cancelled");
                Err(RequestError::Cancelled { method: method.to_owned(), stage })
            }
            // The reader fails every waiter when it closes, but one registered in the same
            // moment would be missed; watching the close directly cannot miss it.
            () = session.closing.closed() => Err(RequestError::Closed { reason: session.closing.reason() }),
        }
    }

    /// Sends a notification.
    ///
    /// # Errors
    /// See [`SendError`].
    ///
    /// # Cancel safety
    /// Dropping the future before it completes leaves the notification unsent.
    pub async fn notify(
        &self,
        method: &str,
        params: Option<Box<RawValue>>,
    ) -> Result<(), SendError> {
        self.send(&Message::Notification {
            method: method.to_owned(),
            params,
        })
        .await
    }

    /// Sends any message as is (a heartbeat, a shutdown), waiting for room in the queue.
    ///
    /// # Errors
    /// See [`SendError`].
    ///
    /// # Cancel safety
    /// As [`Peer::notify`].
    pub async fn send(&self, message: &Message) -> Result<(), SendError> {
        let frame = self.session.encode(message)?;
        if self.session.outbox.send(frame).await {
            Ok(())
        } else {
            Err(SendError::Closed {
                reason: self.session.closing.reason(),
            })
        }
    }

    /// Bytes of frames queued for the peer and not yet written to the socket.
    #[must_use]
    pub fn queued_bytes(&self) -> usize {
        self.session.outbox.queued_bytes()
    }

    /// How many of our requests are waiting for an answer.
    #[must_use]
    pub fn pending_requests(&self) -> usize {
        self.session.pending.len()
    }

    /// Closes the connection: pending requests fail, incoming handlers are cancelled.
    pub fn close(&self) {
        self.session.closing.close(CloseReason::Local);
    }

    /// Whether the connection has ended.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.session.closing.is_closed()
    }

    /// Waits until the connection ends and says why.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn closed(&self) -> CloseReason {
        self.session.closing.closed().await;
        self.session.closing.reason()
    }
}
