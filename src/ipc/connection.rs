//! A message connection: requests in both directions, correlated by id.
//!
//! [`Connection::spawn`] starts two tasks. The *reader* decodes frames and dispatches them: it
//! completes our pending requests, runs each incoming request in a task of its own (so a slow
//! handler never holds up the next request), routes cancels, and hands notifications and
//! heartbeats to the owner through [`Events`]. The *writer* drains a queue of encoded frames,
//! batching small ones into one write. The queue is bounded in bytes
//! ([`ConnectionConfig::max_queued_bytes`]) and senders wait for room; an answer waiting for
//! room keeps its request's in-flight slot, so a peer that stops reading its answers holds at
//! most the queue plus `max_incoming` answers, and is disconnected once it has read nothing for
//! [`ConnectionConfig::stall_timeout`]. The reader does not wait for the queue (refusals it
//! cannot queue at once wait in tasks, up to 256 of them), so answers, heartbeats and cancels
//! from the peer keep flowing. Callers hold cheap [`Connection`] clones.
//!
//! The table of pending requests sits behind a `std::sync::Mutex` that is only held to insert or
//! remove one entry and never across an `.await`; the alternative, routing every registration
//! through the reader task, costs a channel hop per request for no gain in safety.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde_json::value::RawValue;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use super::codec::{DEFAULT_MAX_FRAME, EncodeError, FrameError, MessageCodec, encode_message};
use super::message::{ErrorCode, ErrorObject, MAX_REQUEST_ID, Message, RequestId};

/// The default of [`ConnectionConfig::max_queued_bytes`].
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 8 * 1024 * 1024;

/// Tunables of one connection.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Largest frame body accepted or sent, in bytes.
    pub max_frame: usize,
    /// Deadline for requests sent with [`Connection::request`].
    pub request_timeout: Duration,
    /// Incoming requests handled at once; beyond this the peer gets `Busy` errors.
    pub max_incoming: usize,
    /// Malformed frames tolerated before the connection is closed.
    pub max_bad_frames: u32,
    /// Notifications buffered for the owner before further ones are dropped.
    pub event_buffer: usize,
    /// Bytes of encoded frames waiting for the peer to read them, at most; senders wait for
    /// room beyond it (a frame larger than this goes out alone). With `max_incoming`, this
    /// bounds what a peer that stops reading makes us hold: the queue, plus at most
    /// `max_incoming` answers waiting for room.
    pub max_queued_bytes: usize,
    /// How long the peer may read nothing while frames wait for it before the connection is
    /// closed ([`CloseReason::Stalled`]).
    pub stall_timeout: Duration,
}

impl Default for ConnectionConfig {
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

/// An incoming request, as handed to a [`RequestHandler`].
#[derive(Debug)]
pub struct IncomingRequest {
    /// Who sent it: fixed when the connection was made, never read from a message.
    pub peer: Arc<str>,
    /// The peer's id for the request.
    pub id: RequestId,
    /// What to run.
    pub method: String,
    /// Arguments, unparsed.
    pub params: Option<Box<RawValue>>,
    /// Fires when the peer cancels the request or the connection closes.
    pub cancel: CancellationToken,
}

/// What a handler returns.
pub type HandlerResult = Result<Box<RawValue>, ErrorObject>;

/// A boxed handler future.
pub type HandlerFuture = Pin<Box<dyn Future<Output = HandlerResult> + Send>>;

/// Serves requests that the peer sends.
pub trait RequestHandler: Send + Sync + 'static {
    /// Handles one request. Runs in a task of its own; dropping the future (on cancel) must be safe.
    fn handle(&self, request: IncomingRequest) -> HandlerFuture;
}

/// A handler that knows no methods.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoMethods;

impl RequestHandler for NoMethods {
    fn handle(&self, request: IncomingRequest) -> HandlerFuture {
        let message = format!("no handler for method `{}`", request.method);
        Box::pin(async move { Err(ErrorObject::new(ErrorCode::MethodNotFound, message)) })
    }
}

/// Why a request sent with [`Connection::request`] did not produce a result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The peer answered with an error.
    #[error("{0}")]
    Remote(ErrorObject),
    /// No answer arrived before the deadline; the peer was sent a cancel.
    #[error("request `{method}` timed out after {after:?}")]
    Timeout {
        /// The method that timed out.
        method: String,
        /// The deadline that passed.
        after: Duration,
    },
    /// The caller cancelled the request; the peer was sent a cancel.
    #[error("request `{method}` was cancelled")]
    Cancelled {
        /// The cancelled method.
        method: String,
    },
    /// The connection closed before an answer arrived.
    #[error("connection closed before an answer arrived: {0}")]
    Closed(CloseReason),
    /// The request could not be encoded.
    #[error("request could not be encoded")]
    Encode(#[from] EncodeError),
}

impl RequestError {
    /// The error as a wire error object, for forwarding to another peer.
    #[must_use]
    pub fn to_error_object(&self) -> ErrorObject {
        match self {
            Self::Remote(error) => error.clone(),
            Self::Timeout { .. } => ErrorObject::new(ErrorCode::Timeout, self.to_string()),
            Self::Cancelled { .. } => ErrorObject::new(ErrorCode::Cancelled, self.to_string()),
            Self::Closed(_) => ErrorObject::new(ErrorCode::NotRunning, self.to_string()),
            Self::Encode(_) => ErrorObject::new(ErrorCode::InvalidParams, self.to_string()),
        }
    }
}

/// Why sending a one-way message failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The connection is closed.
    #[error("connection is closed: {0}")]
    Closed(CloseReason),
    /// The message could not be encoded.
    #[error("message could not be encoded")]
    Encode(#[from] EncodeError),
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer closed its end.
    Eof,
    /// This side called [`Connection::close`] or dropped every handle.
    Local,
    /// The byte stream broke (oversize frame, cut frame, i/o error).
    Frame(String),
    /// The peer sent too many malformed frames.
    TooManyBadFrames(u32),
    /// The peer read nothing for this long while our frames waited for it.
    Stalled(Duration),
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Eof => f.write_str("peer closed the connection"),
            Self::Local => f.write_str("closed by this side"),
            Self::Frame(reason) => write!(f, "protocol error: {reason}"),
            Self::TooManyBadFrames(n) => write!(f, "peer sent {n} malformed frames"),
            Self::Stalled(after) => write!(
                f,
                "peer read nothing for {} ms while frames waited for it",
                after.as_millis()
            ),
        }
    }
}

/// Messages for the connection's owner, in arrival order.
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

/// The owner's side of a connection: notifications and heartbeats.
#[derive(Debug)]
pub struct Events {
    /// Notifications and unexpected messages, bounded; excess notifications are dropped and logged.
    pub messages: mpsc::Receiver<Event>,
    /// The sequence number of the latest heartbeat (0 before the first).
    pub heartbeats: watch::Receiver<u64>,
}

type Pending = Mutex<HashMap<RequestId, oneshot::Sender<HandlerResult>>>;

struct Shared {
    peer: Arc<str>,
    config: ConnectionConfig,
    next_id: AtomicU64,
    pending: Pending,
    outbound: Outbox,
    closed: CancellationToken,
    close_reason: OnceLock<CloseReason>,
}

impl Shared {
    fn close(&self, reason: CloseReason) {
        let _ = self.close_reason.set(reason);
        self.closed.cancel();
    }

    fn reason(&self) -> CloseReason {
        self.close_reason
            .get()
            .cloned()
            .unwrap_or(CloseReason::Local)
    }

    fn encode(&self, message: &Message) -> Result<Bytes, EncodeError> {
        let mut buf = BytesMut::new();
        encode_message(message, self.config.max_frame, &mut buf)?;
        Ok(buf.freeze())
    }

    /// Queues a frame, waiting for room. Replies are never dropped: a peer that stops reading
    /// its answers eventually stops being read from, which is the backpressure it asked for.
    /// A response too large to send becomes an error response, so the peer is not left waiting.
    async fn queue(&self, message: Message) {
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
            _ = self.outbound.send(frame) => {}
            () = self.closed.cancelled() => {}
        }
    }

    /// Queues a frame only if there is room; for `Drop`, which cannot wait. Used for cancels,
    /// whose loss costs the peer some wasted work and nothing else.
    fn try_queue(&self, message: &Message) {
        match self.encode(message) {
            Ok(frame) => {
                if !self.outbound.try_send(frame) && !self.closed.is_cancelled() {
                    tracing::debug!(peer = %self.peer, kind = message.type_name(), "outbound queue full; cancel not sent");
                }
            }
            Err(err) => {
                tracing::error!(peer = %self.peer, error = %err, "could not encode a message");
            }
        }
    }
}

/// A cloneable handle to one connection. Dropping every clone closes it.
#[derive(Clone)]
pub struct Connection {
    shared: Arc<Shared>,
    _close_on_drop: Arc<CloseOnDrop>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.shared.peer)
            .finish_non_exhaustive()
    }
}

struct CloseOnDrop(CancellationToken);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Abandons a pending request when the future awaiting it is dropped or gives up, and tells the
/// peer with a cancel so it can stop working on it.
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: RequestId,
    reason: &'static str,
    /// Whether the request went into the queue: the peer is told of a cancel only then.
    queued: &'a std::sync::atomic::AtomicBool,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        let was_pending = self
            .shared
            .pending
            .lock()
            .expect("pending table")
            .remove(&self.id);
        if was_pending.is_some()
            && self.queued.load(Ordering::Relaxed)
            && !self.shared.closed.is_cancelled()
        {
            self.shared.try_queue(&Message::Cancel {
                id: self.id,
                reason: Some(self.reason.to_owned()),
            });
        }
    }
}

impl Connection {
    /// Wraps a connected stream and starts its reader and writer tasks.
    ///
    /// `peer` names the other side for logs and handlers; it comes from how the connection was
    /// made, never from anything the peer sends.
    #[must_use]
    pub fn new(
        stream: UnixStream,
        peer: impl Into<Arc<str>>,
        config: ConnectionConfig,
        handler: Arc<dyn RequestHandler>,
    ) -> (Self, Events) {
        let (read, write) = stream.into_split();
        let frames = FramedRead::new(read, MessageCodec::new(config.max_frame));
        Self::spawn(frames, write, peer, config, handler)
    }

    /// Like [`Connection::new`], for a stream whose reader is already framed (after a handshake,
    /// the reader may hold bytes of the frames that followed it).
    ///
    /// # Panics
    /// Outside a tokio runtime.
    #[must_use]
    pub fn spawn(
        frames: FramedRead<OwnedReadHalf, MessageCodec>,
        write: OwnedWriteHalf,
        peer: impl Into<Arc<str>>,
        config: ConnectionConfig,
        handler: Arc<dyn RequestHandler>,
    ) -> (Self, Events) {
        let (outbound, outbound_rx) = Outbox::new(config.max_queued_bytes);
        let (event_tx, event_rx) = mpsc::channel(config.event_buffer.max(1));
        let (heartbeat_tx, heartbeat_rx) = watch::channel(0);
        let closed = CancellationToken::new();
        let shared = Arc::new(Shared {
            peer: peer.into(),
            config,
            next_id: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            outbound,
            closed: closed.clone(),
            close_reason: OnceLock::new(),
        });
        tokio::spawn(write_loop(outbound_rx, write, Arc::clone(&shared)));
        let reader = Reader {
            shared: Arc::clone(&shared),
            handler,
            events: event_tx,
            heartbeats: heartbeat_tx,
            incoming: Arc::new(Mutex::new(HashMap::new())),
            permits: Arc::new(Semaphore::new(shared.config.max_incoming)),
            error_replies: Arc::new(Semaphore::new(MAX_WAITING_ERROR_REPLIES)),
            bad_frames: 0,
            dropped_events: 0,
        };
        tokio::spawn(reader.run(frames));
        let connection = Self {
            shared,
            _close_on_drop: Arc::new(CloseOnDrop(closed)),
        };
        (
            connection,
            Events {
                messages: event_rx,
                heartbeats: heartbeat_rx,
            },
        )
    }

    /// Who the peer is.
    #[must_use]
    pub fn peer(&self) -> &str {
        &self.shared.peer
    }

    /// Sends a request and waits for its answer, with the connection's default timeout.
    ///
    /// # Errors
    /// See [`RequestError`].
    ///
    /// # Cancel safety
    /// Dropping the future abandons the request and sends the peer a cancel; a late answer is
    /// then ignored.
    pub async fn request(
        &self,
        method: &str,
        params: Option<Box<RawValue>>,
    ) -> Result<Box<RawValue>, RequestError> {
        self.request_with(method, params, self.shared.config.request_timeout, None)
            .await
    }

    /// Sends a request with an explicit deadline and an optional cancellation token.
    ///
    /// # Errors
    /// See [`RequestError`].
    ///
    /// # Cancel safety
    /// As [`Connection::request`].
    pub async fn request_with(
        &self,
        method: &str,
        params: Option<Box<RawValue>>,
        timeout: Duration,
        cancel: Option<&CancellationToken>,
    ) -> Result<Box<RawValue>, RequestError> {
        let shared = &*self.shared;
        if shared.closed.is_cancelled() {
            return Err(RequestError::Closed(shared.reason()));
        }
        // Ids wrap long before 2^53 would be reached in practice; wrapping keeps them JS-safe.
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed) % MAX_REQUEST_ID;
        let frame = shared.encode(&Message::Request {
            id,
            method: method.to_owned(),
            params,
        })?;
        let (tx, rx) = oneshot::channel();
        shared.pending.lock().expect("pending table").insert(id, tx);
        let queued = std::sync::atomic::AtomicBool::new(false);
        let mut guard = PendingGuard {
            shared,
            id,
            reason: "abandoned by caller",
            queued: &queued,
        };
        let never = CancellationToken::new();
        let cancel = cancel.unwrap_or(&never);
        // One deadline covers both waiting for room in the outbound queue (a peer that stops
        // reading fills it) and waiting for the answer.
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let answer = async {
            if !shared.outbound.send(frame).await {
                return Err(RequestError::Closed(shared.reason()));
            }
            queued.store(true, Ordering::Relaxed);
            match rx.await {
                Ok(Ok(result)) => Ok(result),
                Ok(Err(error)) => Err(RequestError::Remote(error)),
                Err(_) => Err(RequestError::Closed(shared.reason())),
            }
        };
        tokio::select! {
            biased;
            result = answer => result,
            () = &mut deadline => {
                guard.reason = "timeout";
                Err(RequestError::Timeout { method: method.to_owned(), after: timeout })
            }
            () = cancel.cancelled() => {
                guard.reason = "cancelled";
                Err(RequestError::Cancelled { method: method.to_owned() })
            }
            // The reader clears the pending table when it closes, but an entry inserted in the
            // same moment would be missed; watching the close directly cannot miss it.
            () = shared.closed.cancelled() => Err(RequestError::Closed(shared.reason())),
        }
    }

    /// Sends a notification.
    ///
    /// # Errors
    /// See [`SendError`].
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

    /// Sends any message as is (a heartbeat, a shutdown).
    ///
    /// # Errors
    /// See [`SendError`].
    pub async fn send(&self, message: &Message) -> Result<(), SendError> {
        let frame = self.shared.encode(message)?;
        if self.shared.outbound.send(frame).await {
            Ok(())
        } else {
            Err(SendError::Closed(self.shared.reason()))
        }
    }

    /// Bytes of frames queued for the peer and not yet written to the socket.
    #[must_use]
    pub fn queued_bytes(&self) -> usize {
        self.shared.outbound.queued_bytes()
    }

    /// How many of our requests are waiting for an answer.
    #[must_use]
    pub fn pending_requests(&self) -> usize {
        self.shared.pending.lock().expect("pending table").len()
    }

    /// Closes the connection: pending requests fail, incoming handlers are cancelled.
    pub fn close(&self) {
        self.shared.close(CloseReason::Local);
    }

    /// Whether the connection has ended.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.shared.closed.is_cancelled()
    }

    /// Waits until the connection ends and says why.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn closed(&self) -> CloseReason {
        self.shared.closed.cancelled().await;
        self.shared.reason()
    }
}

struct Reader {
    shared: Arc<Shared>,
    handler: Arc<dyn RequestHandler>,
    events: mpsc::Sender<Event>,
    heartbeats: watch::Sender<u64>,
    incoming: Arc<Mutex<HashMap<RequestId, CancellationToken>>>,
    permits: Arc<Semaphore>,
    /// Error answers the reader could not queue at once, each waiting in a task of its own.
    error_replies: Arc<Semaphore>,
    bad_frames: u32,
    dropped_events: u64,
}

/// Error answers (`Busy`, malformed requests) that may wait for room in tasks of their own
/// before the reader itself waits.
const MAX_WAITING_ERROR_REPLIES: usize = 256;

impl Reader {
    async fn run(mut self, mut frames: FramedRead<OwnedReadHalf, MessageCodec>) {
        let closed = self.shared.closed.clone();
        let reason = loop {
            let item = tokio::select! {
                biased;
                () = closed.cancelled() => break CloseReason::Local,
                item = frames.next() => item,
            };
            match item {
                None => break CloseReason::Eof,
                Some(Err(err)) => {
                    tracing::warn!(peer = %self.shared.peer, error = %err, "closing connection");
                    break CloseReason::Frame(frame_error_text(&err));
                }
                Some(Ok(Err(err))) => {
                    tracing::warn!(peer = %self.shared.peer, kind = err.kind(), error = %err, cause = ?std::error::Error::source(&err).map(ToString::to_string), "dropped a malformed frame");
                    if let Some(id) = err.request_id() {
                        let error = ErrorObject::new(
                            ErrorCode::InvalidRequest,
                            format!("malformed request: {err}"),
                        );
                        self.reply(id, Err(error)).await;
                    }
                    if self.strike() {
                        break CloseReason::TooManyBadFrames(self.bad_frames);
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
        self.bad_frames > self.shared.config.max_bad_frames
    }

    /// Answers a request the reader refused. The reader must keep reading (answers to our
    /// requests, heartbeats and cancels follow in the stream), so an answer that finds the queue
    /// full waits in a task; only a peer with hundreds of such answers unread makes the reader
    /// wait, and that peer is disconnected at its stall timeout.
    async fn reply(&self, id: RequestId, outcome: HandlerResult) {
        let message = Message::Response { id, outcome };
        match Arc::clone(&self.error_replies).try_acquire_owned() {
            Ok(permit) => {
                let shared = Arc::clone(&self.shared);
                tokio::spawn(async move {
                    shared.queue(message).await;
                    drop(permit);
                });
            }
            Err(_) => self.shared.queue(message).await,
        }
    }

    async fn dispatch(&mut self, message: Message) -> Result<(), CloseReason> {
        match message {
            Message::Request { id, method, params } => self.start_request(id, method, params).await,
            Message::Response { id, outcome } => {
                let waiter = self
                    .shared
                    .pending
                    .lock()
                    .expect("pending table")
                    .remove(&id);
                match waiter {
                    // The caller may have given up between the lookup and now; that is fine.
                    Some(waiter) => drop(waiter.send(outcome)),
                    None if id < self.shared.next_id.load(Ordering::Relaxed) => {
                        tracing::debug!(peer = %self.shared.peer, id, "ignored a late response to an abandoned request");
                    }
                    None => {
                        tracing::warn!(peer = %self.shared.peer, id, "response to a request that was never sent");
                        if self.strike() {
                            return Err(CloseReason::TooManyBadFrames(self.bad_frames));
                        }
                    }
                }
            }
            Message::Cancel { id, .. } => {
                if let Some(token) = self.incoming.lock().expect("incoming table").get(&id) {
                    token.cancel();
                }
            }
            Message::Heartbeat { seq } => {
                self.heartbeats.send_replace(seq);
            }
            Message::Notification { method, params } => {
                self.deliver(Event::Notification { method, params });
            }
            other => self.deliver(Event::Unexpected(other)),
        }
        Ok(())
    }

    fn deliver(&mut self, event: Event) {
        if self.events.try_send(event).is_err() {
            self.dropped_events += 1;
            if self.dropped_events.is_power_of_two() {
                tracing::warn!(peer = %self.shared.peer, dropped = self.dropped_events, "peer sends notifications faster than they are consumed; dropping");
            }
        }
    }

    async fn start_request(
        &mut self,
        id: RequestId,
        method: String,
        params: Option<Box<RawValue>>,
    ) {
        // Handlers quote the method in their errors; a megabyte-long name would make every reply
        // a megabyte, and the outbound queue would hold a thousand of them.
        if method.len() > MAX_METHOD_LEN {
            let error = ErrorObject::new(
                ErrorCode::InvalidRequest,
                format!("method names are at most {MAX_METHOD_LEN} bytes"),
            );
            return self.reply(id, Err(error)).await;
        }
        let admitted = {
            let mut incoming = self.incoming.lock().expect("incoming table");
            match incoming.entry(id) {
                std::collections::hash_map::Entry::Occupied(_) => Err(ErrorObject::new(
                    ErrorCode::InvalidRequest,
                    format!("request id {id} is already in flight"),
                )),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
                        let token = self.shared.closed.child_token();
                        slot.insert(token.clone());
                        Ok((token, permit))
                    } else {
                        let limit = self.shared.config.max_incoming;
                        Err(ErrorObject::new(
                            ErrorCode::Busy,
                            format!("more than {limit} requests in flight; retry later"),
                        ))
                    }
                }
            }
        };
        let token = match admitted {
            Ok(admitted) => admitted,
            Err(error) => return self.reply(id, Err(error)).await,
        };
        let (token, permit) = token;
        let request = IncomingRequest {
            peer: Arc::clone(&self.shared.peer),
            id,
            method,
            params,
            cancel: token.clone(),
        };
        let work = self.handler.handle(request);
        let shared = Arc::clone(&self.shared);
        let incoming = Arc::clone(&self.incoming);
        tokio::spawn(async move {
            let outcome = tokio::select! {
                outcome = work => outcome,
                () = token.cancelled() => Err(ErrorObject::new(ErrorCode::Cancelled, "request was cancelled")),
            };
            incoming.lock().expect("incoming table").remove(&id);
            // The slot is held until the answer is queued: an answer waiting for room in the
            // queue still counts against `max_incoming`.
            shared.queue(Message::Response { id, outcome }).await;
            drop(permit);
        });
    }

    fn shutdown(self, reason: CloseReason) {
        tracing::debug!(peer = %self.shared.peer, %reason, "connection closed");
        self.shared.close(reason);
        // Dropping the senders fails every waiter with `Closed`.
        self.shared.pending.lock().expect("pending table").clear();
        for token in self.incoming.lock().expect("incoming table").values() {
            token.cancel();
        }
    }
}

fn frame_error_text(err: &FrameError) -> String {
    match err {
        FrameError::Io(io) => format!("{err}: {io}"),
        _ => err.to_string(),
    }
}

/// The longest method name a peer may call.
pub const MAX_METHOD_LEN: usize = 256;

/// Frames below this size are copied into one batch so a burst costs one `write` call.
const BATCH_LIMIT: usize = 64 * 1024;

/// What a queued frame costs of [`ConnectionConfig::max_queued_bytes`] beyond its length: the
/// bookkeeping around it, so a flood of tiny frames is bounded too.
const FRAME_OVERHEAD: usize = 64;

/// A frame waiting for the writer, holding its share of the byte budget until it is written.
struct Queued {
    frame: Bytes,
    permit: OwnedSemaphorePermit,
}

/// The writer's queue, bounded in bytes rather than in frames: a thousand 1 MiB replies and a
/// thousand heartbeats are not the same amount of memory.
struct Outbox {
    frames: mpsc::UnboundedSender<Queued>,
    budget: Arc<Semaphore>,
    capacity: usize,
}

impl Outbox {
    fn new(capacity: usize) -> (Self, mpsc::UnboundedReceiver<Queued>) {
        let capacity = capacity.clamp(FRAME_OVERHEAD, u32::MAX as usize);
        let (frames, queue) = mpsc::unbounded_channel();
        let outbox = Self {
            frames,
            budget: Arc::new(Semaphore::new(capacity)),
            capacity,
        };
        (outbox, queue)
    }

    /// A frame's share of the budget; never more than all of it, so any frame can go out alone.
    fn cost(&self, frame: &Bytes) -> u32 {
        let cost = (frame.len() + FRAME_OVERHEAD).min(self.capacity);
        u32::try_from(cost).unwrap_or(u32::MAX)
    }

    /// Queues `frame` once the budget has room for it; `false` if the writer is gone.
    async fn send(&self, frame: Bytes) -> bool {
        let cost = self.cost(&frame);
        match Arc::clone(&self.budget).acquire_many_owned(cost).await {
            Ok(permit) => self.frames.send(Queued { frame, permit }).is_ok(),
            Err(_) => false,
        }
    }

    /// Queues `frame` only if the budget has room for it now.
    fn try_send(&self, frame: Bytes) -> bool {
        let cost = self.cost(&frame);
        match Arc::clone(&self.budget).try_acquire_many_owned(cost) {
            Ok(permit) => self.frames.send(Queued { frame, permit }).is_ok(),
            Err(_) => false,
        }
    }

    fn queued_bytes(&self) -> usize {
        self.capacity - self.budget.available_permits()
    }

    /// Fails every sender still waiting for room: nothing will be written any more.
    fn close(&self) {
        self.budget.close();
    }
}

/// Writes all of `bytes`, failing with `TimedOut` if the peer reads none of it for `stall`.
/// A socket with room takes the bytes at once; only a full one arms a timer.
async fn write(socket: &OwnedWriteHalf, bytes: &[u8], stall: Duration) -> std::io::Result<()> {
    let mut rest = bytes;
    while !rest.is_empty() {
        match socket.try_write(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(written) => rest = &rest[written..],
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                tokio::time::timeout(stall, socket.writable())
                    .await
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            }
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

async fn write_loop(
    mut queue: mpsc::UnboundedReceiver<Queued>,
    mut socket: OwnedWriteHalf,
    shared: Arc<Shared>,
) {
    let mut batch = BytesMut::with_capacity(BATCH_LIMIT);
    // The budget of the frames copied into `batch`: they count as queued until written.
    let mut held: Vec<OwnedSemaphorePermit> = Vec::new();
    let stall = shared.config.stall_timeout;
    loop {
        let queued = tokio::select! {
            biased;
            queued = queue.recv() => queued,
            () = shared.closed.cancelled() => None,
        };
        let Some(mut queued) = queued else { break };
        let result = async {
            loop {
                let Queued { frame, permit } = queued;
                if frame.len() >= BATCH_LIMIT {
                    if !batch.is_empty() {
                        write(&socket, &batch, stall).await?;
                        batch.clear();
                        held.clear();
                    }
                    write(&socket, &frame, stall).await?;
                    drop(permit);
                } else {
                    batch.extend_from_slice(&frame);
                    held.push(permit);
                    if batch.len() >= BATCH_LIMIT {
                        write(&socket, &batch, stall).await?;
                        batch.clear();
                        held.clear();
                    }
                }
                match queue.try_recv() {
                    Ok(next) => queued = next,
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                write(&socket, &batch, stall).await?;
                batch.clear();
                held.clear();
            }
            std::io::Result::Ok(())
        };
        // A peer that stops reading blocks the write; closing the connection must still end it.
        let result = tokio::select! {
            result = result => result,
            () = shared.closed.cancelled() => break,
        };
        if let Err(err) = result {
            let reason = if err.kind() == std::io::ErrorKind::TimedOut {
                tracing::warn!(peer = %shared.peer, queued = shared.outbound.queued_bytes(), "peer stopped reading; closing connection");
                CloseReason::Stalled(stall)
            } else {
                tracing::debug!(peer = %shared.peer, error = %err, "write failed; closing connection");
                CloseReason::Frame(format!("write failed: {err}"))
            };
            shared.close(reason);
            break;
        }
    }
    shared.outbound.close();
    let _ = socket.shutdown().await;
}
