//! The peer's requests to us: each runs in a task of its own, so a slow handler never holds up
//! the next request. At most [`PeerConfig::max_incoming`](super::PeerConfig::max_incoming) run at
//! once (beyond that the peer is answered `Busy`), and an id already in flight is refused.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};

use serde_json::value::RawValue;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::handler::{HandlerResult, IncomingRequest, RequestHandler};
use super::session::Session;
use crate::wire::{ErrorCode, ErrorObject, Message, RequestId};

/// The longest method name a peer may call.
pub const MAX_METHOD_LEN: usize = 256;

/// Refusals (`Busy`, malformed requests) that may wait for room in tasks of their own before
/// the reader itself waits.
const MAX_WAITING_REFUSALS: usize = 256;

type InFlight = Arc<Mutex<HashMap<RequestId, CancellationToken>>>;

pub(super) struct Inbound {
    session: Arc<Session>,
    handler: Arc<dyn RequestHandler>,
    /// The cancellation token of every request being handled, by the peer's id.
    in_flight: InFlight,
    /// One permit per request being handled, held until its answer is queued.
    slots: Arc<Semaphore>,
    /// One permit per refusal waiting for room in a task of its own.
    refusals: Arc<Semaphore>,
}

impl Inbound {
    pub(super) fn new(session: Arc<Session>, handler: Arc<dyn RequestHandler>) -> Self {
        let max_incoming = session.config.max_incoming;
        Self {
            session,
            handler,
            in_flight: Arc::default(),
            slots: Arc::new(Semaphore::new(max_incoming)),
            refusals: Arc::new(Semaphore::new(MAX_WAITING_REFUSALS)),
        }
    }

    /// Admits a request and starts its handler in a task, or refuses it.
    pub(super) async fn start(&self, id: RequestId, method: String, params: Option<Box<RawValue>>) {
        // Handlers quote the method in their errors; a megabyte-long name would make every reply
        // a megabyte, and the outbound queue would hold a thousand of them.
        if method.len() > MAX_METHOD_LEN {
            let error = ErrorObject::new(
                ErrorCode::InvalidRequest,
                format!("method names are at most {MAX_METHOD_LEN} bytes"),
            );
            return self.refuse(id, error).await;
        }
        let (cancel, slot) = match self.admit(id) {
            Ok(admitted) => admitted,
            Err(error) => return self.refuse(id, error).await,
        };
        let request = IncomingRequest {
            peer: Arc::clone(&self.session.peer),
            id,
            method,
            params,
            cancel: cancel.clone(),
        };
        let work = self.handler.handle(request);
        let session = Arc::clone(&self.session);
        let in_flight = Arc::clone(&self.in_flight);
        tokio::spawn(async move {
            let outcome = tokio::select! {
                outcome = work => outcome,
                () = cancel.cancelled() => Err(ErrorObject::new(ErrorCode::Cancelled, "request was cancelled")),
            };
            in_flight.lock().expect("in-flight table").remove(&id);
            // The slot is held until the answer is queued: an answer waiting for room in the
            // queue still counts against `max_incoming`.
            session.queue(Message::Response { id, outcome }).await;
            drop(slot);
        });
    }

    /// Takes a slot for request `id`, with the token that cancels it.
    fn admit(
        &self,
        id: RequestId,
    ) -> Result<(CancellationToken, OwnedSemaphorePermit), ErrorObject> {
        let mut in_flight = self.in_flight.lock().expect("in-flight table");
        let Entry::Vacant(entry) = in_flight.entry(id) else {
            return Err(ErrorObject::new(
                ErrorCode::InvalidRequest,
                format!("request id {id} is already in flight"),
            ));
        };
        let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
            let limit = self.session.config.max_incoming;
            return Err(ErrorObject::new(
                ErrorCode::Busy,
                format!("more than {limit} requests in flight; retry later"),
            ));
        };
        let cancel = self.session.closing.child_token();
        entry.insert(cancel.clone());
        Ok((cancel, slot))
    }

    /// Answers a request that will not be handled. The reader must keep reading (answers to our
    /// requests, heartbeats and cancels follow in the stream), so an answer that finds the queue
    /// full waits in a task; only a peer with hundreds of such answers unread makes the reader
    /// wait, and that peer is disconnected at its stall timeout.
    pub(super) async fn refuse(&self, id: RequestId, error: ErrorObject) {
        let answer = Message::Response {
            id,
            outcome: HandlerResult::Err(error),
        };
        match Arc::clone(&self.refusals).try_acquire_owned() {
            Ok(permit) => {
                let session = Arc::clone(&self.session);
                tokio::spawn(async move {
                    session.queue(answer).await;
                    drop(permit);
                });
            }
            Err(_) => self.session.queue(answer).await,
        }
    }

    /// The peer gave up request `id`; a cancel for one already answered is normal.
    pub(super) fn cancel(&self, id: RequestId) {
        if let Some(token) = self.in_flight.lock().expect("in-flight table").get(&id) {
            token.cancel();
        }
    }

    /// Cancels every handler still running: the connection is gone.
    pub(super) fn cancel_all(&self) {
        for token in self.in_flight.lock().expect("in-flight table").values() {
            token.cancel();
        }
    }
}
