//! The outbound queue and the task that writes it to the socket.
//!
//! The queue is bounded in bytes ([`PeerConfig::max_queued_bytes`](super::PeerConfig)), not in
//! frames: a thousand 1 MiB answers and a thousand heartbeats are not the same amount of memory.
//! Senders wait for room. The writer batches small frames into one write, and closes the
//! connection ([`CloseReason::Stalled`]) when the peer reads nothing for the stall timeout while
//! frames wait for it.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::error::CloseReason;
use super::session::Session;

/// Frames below this size are copied into one batch so a burst costs one `write` call.
const BATCH_LIMIT: usize = 64 * 1024;

/// What a queued frame costs of the byte budget beyond its length: the bookkeeping around it,
/// so a flood of tiny frames is bounded too.
const FRAME_OVERHEAD: usize = 64;

/// A frame waiting for the writer, holding its share of the byte budget until it is written.
pub(super) struct Queued {
    frame: Bytes,
    permit: OwnedSemaphorePermit,
}

/// The writer's queue; see the module docs.
pub(super) struct Outbox {
    frames: mpsc::UnboundedSender<Queued>,
    budget: Arc<Semaphore>,
    capacity: usize,
}

/// The writer's end of the [`Outbox`].
pub(super) type OutboxQueue = mpsc::UnboundedReceiver<Queued>;

impl Outbox {
    pub(super) fn new(capacity: usize) -> (Self, OutboxQueue) {
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
    ///
    /// # Cancel safety
    /// Dropping the future before it completes leaves the frame unqueued.
    pub(super) async fn send(&self, frame: Bytes) -> bool {
        let cost = self.cost(&frame);
        match Arc::clone(&self.budget).acquire_many_owned(cost).await {
            Ok(permit) => self.frames.send(Queued { frame, permit }).is_ok(),
            Err(_) => false,
        }
    }

    /// Queues `frame` only if the budget has room for it now.
    pub(super) fn try_send(&self, frame: Bytes) -> bool {
        let cost = self.cost(&frame);
        match Arc::clone(&self.budget).try_acquire_many_owned(cost) {
            Ok(permit) => self.frames.send(Queued { frame, permit }).is_ok(),
            Err(_) => false,
        }
    }

    /// Bytes queued and not yet written, overhead included.
    pub(super) fn queued_bytes(&self) -> usize {
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

/// Drains the queue into the socket until the connection closes or a write fails.
pub(super) async fn write_loop(
    mut queue: OutboxQueue,
    mut socket: OwnedWriteHalf,
    session: Arc<Session>,
) {
    let mut batch = BytesMut::with_capacity(BATCH_LIMIT);
    // The budget of the frames copied into `batch`: they count as queued until written.
    let mut held: Vec<OwnedSemaphorePermit> = Vec::new();
    let stall = session.config.stall_timeout;
    loop {
        let queued = tokio::select! {
            biased;
            queued = queue.recv() => queued,
            () = session.closing.closed() => None,
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
            () = session.closing.closed() => break,
        };
        if let Err(err) = result {
            let reason = if err.kind() == std::io::ErrorKind::TimedOut {
                tracing::warn!(peer = %session.peer, queued = session.outbox.queued_bytes(), "peer stopped reading; closing connection");
                CloseReason::Stalled { after: stall }
            } else {
                tracing::debug!(peer = %session.peer, error = %err, "write failed; closing connection");
                CloseReason::Write(Arc::new(err))
            };
            session.closing.close(reason);
            break;
        }
    }
    session.outbox.close();
    let _ = socket.shutdown().await;
}
