//! Our requests waiting for the peer's answers.
//!
//! The table sits behind a `std::sync::Mutex` that is only held to insert or remove one entry
//! and never across an `.await`; the alternative, routing every registration through the reader
//! task, costs a channel hop per request for no gain in safety.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::error::{CloseReason, RequestStage};
use super::handler::HandlerResult;
use super::session::Session;
use crate::wire::{MAX_REQUEST_ID, Message, RequestId};

/// The ids issued so far and a waiter for each request still unanswered.
pub(super) struct PendingRequests {
    /// How many ids were issued; the next one is this plus one (wrapped into 1..=MAX).
    issued: AtomicU64,
    waiters: Mutex<HashMap<RequestId, oneshot::Sender<HandlerResult>>>,
}

/// What became of an answer from the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Delivery {
    /// It went to the caller waiting for it.
    Delivered,
    /// Its request was issued but already given up (timed out, cancelled): ignored.
    Late,
    /// No request with its id was ever issued: a protocol violation.
    Unknown,
}

impl PendingRequests {
    pub(super) fn new() -> Self {
        Self {
            issued: AtomicU64::new(0),
            waiters: Mutex::new(HashMap::new()),
        }
    }

    /// Issues a fresh id and registers its waiter, in one step: the id is never seen by the
    /// reader before its waiter is in the table.
    fn register(&self) -> (RequestId, oneshot::Receiver<HandlerResult>) {
        // Ids wrap long before 2^53 would be reached in practice; wrapping keeps them JS-safe
        // and never yields 0, which no request carries.
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        let id = n % MAX_REQUEST_ID + 1;
        let (tx, rx) = oneshot::channel();
        self.lock().insert(id, tx);
        (id, rx)
    }

    /// Hands an answer to the request it belongs to.
    pub(super) fn complete(&self, id: RequestId, outcome: HandlerResult) -> Delivery {
        let waiter = self.lock().remove(&id);
        match waiter {
            // The caller may have given up between the lookup and now; that is fine.
            Some(waiter) => {
                drop(waiter.send(outcome));
                Delivery::Delivered
            }
            None if self.was_issued(id) => Delivery::Late,
            None => Delivery::Unknown,
        }
    }

    fn was_issued(&self, id: RequestId) -> bool {
        let issued = self.issued.load(Ordering::Relaxed);
        id != 0 && (id <= issued || issued >= MAX_REQUEST_ID)
    }

    /// Removes a request's waiter; whether it was still there.
    fn abandon(&self, id: RequestId) -> bool {
        self.lock().remove(&id).is_some()
    }

    /// Fails every waiting caller (their senders are dropped): the connection is gone.
    pub(super) fn fail_all(&self) {
        self.lock().clear();
    }

    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<RequestId, oneshot::Sender<HandlerResult>>> {
        self.waiters.lock().expect("pending table")
    }
}

/// One request of ours, from its id to its answer. Dropping it before the answer abandons the
/// request: its waiter goes, and a peer that was sent the request is sent a cancel.
pub(super) struct PendingCall<'a> {
    session: &'a Session,
    id: RequestId,
    answer: oneshot::Receiver<HandlerResult>,
    stage: RequestStage,
    /// Why the request is being abandoned, for the cancel sent to the peer.
    abandoned: &'static str,
}

impl<'a> PendingCall<'a> {
    pub(super) fn new(session: &'a Session) -> Self {
        let (id, answer) = session.pending.register();
        Self {
            session,
            id,
            answer,
            stage: RequestStage::Queueing,
            abandoned: "abandoned by caller",
        }
    }

    pub(super) fn id(&self) -> RequestId {
        self.id
    }

    pub(super) fn stage(&self) -> RequestStage {
        self.stage
    }

    /// Queues the encoded request, waiting for room, then waits for the answer.
    ///
    /// # Errors
    /// Why the connection closed first.
    ///
    /// # Cancel safety
    /// Dropping the future leaves the request where it got to ([`PendingCall::stage`]); drop
    /// the call (or [`PendingCall::abandon`] it) to give it up.
    pub(super) async fn exchange(&mut self, frame: Bytes) -> Result<HandlerResult, CloseReason> {
        if !self.session.outbox.send(frame).await {
            return Err(self.session.closing.reason());
        }
        self.stage = RequestStage::AwaitingAnswer;
        (&mut self.answer)
            .await
            .map_err(|_| self.session.closing.reason())
    }

    /// Gives the request up, telling the peer why if it was sent.
    pub(super) fn abandon(mut self, why: &'static str) {
        self.abandoned = why;
    }
}

impl Drop for PendingCall<'_> {
    fn drop(&mut self) {
        let was_pending = self.session.pending.abandon(self.id);
        if was_pending
            && self.stage == RequestStage::AwaitingAnswer
            && !self.session.closing.is_closed()
        {
            self.session.try_queue(&Message::Cancel {
                id: self.id,
                reason: Some(self.abandoned.to_owned()),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_start_at_one_and_answers_find_their_waiter_once() {
        let pending = PendingRequests::new();
        let (first, mut rx) = pending.register();
        let (second, _rx2) = pending.register();
        assert_eq!((first, second), (1, 2));
        let ok = crate::wire::raw_null();
        assert_eq!(pending.complete(first, Ok(ok.clone())), Delivery::Delivered);
        assert!(rx.try_recv().unwrap().is_ok());
        assert_eq!(pending.complete(first, Ok(ok.clone())), Delivery::Late);
        assert_eq!(pending.complete(3, Ok(ok.clone())), Delivery::Unknown);
        assert_eq!(pending.complete(0, Ok(ok)), Delivery::Unknown);
        assert_eq!(pending.len(), 1);
        pending.fail_all();
        assert_eq!(pending.len(), 0);
    }

    #[test]
    fn ids_wrap_within_the_javascript_safe_range() {
        let pending = PendingRequests::new();
        pending.issued.store(MAX_REQUEST_ID - 1, Ordering::Relaxed);
        assert_eq!(pending.register().0, MAX_REQUEST_ID);
        assert_eq!(pending.register().0, 1);
        assert_eq!(
            pending.complete(7, Ok(crate::wire::raw_null())),
            Delivery::Late
        );
    }
}
