//! The server's front door: at most `max-concurrent` requests run, at most
//! `max-queue` wait for a slot, and the rest are refused at once (503 with
//! `Retry-After`), so memory stays bounded however hard clients push.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Slots and a bounded waiting line.
#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_queue: usize,
    max_concurrent: usize,
}

/// The queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the server is at capacity ({running} running, {waiting} waiting)")]
pub struct Overloaded {
    pub running: usize,
    pub waiting: usize,
}

/// A held slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

/// Leaves the waiting count when the waiter stops waiting, whether it got a
/// slot or its request was dropped (client gone, deadline).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    pub fn new(max_concurrent: usize, max_queue: usize) -> Admission {
        Admission {
            slots: Arc::new(Semaphore::new(max_concurrent)),
            waiting: AtomicUsize::new(0),
            max_queue,
            max_concurrent,
        }
    }

    /// A slot now, or after waiting in line; refused when the line is full.
    pub async fn enter(&self) -> Result<Slot, Overloaded> {
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(Slot { _permit: permit });
        }
        let queued = self.waiting.fetch_add(1, Ordering::AcqRel);
        let waiting = Waiting(&self.waiting);
        if queued >= self.max_queue {
            drop(waiting);
            return Err(self.overloaded());
        }
        let permit = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(|_| self.overloaded())?;
        drop(waiting);
        Ok(Slot { _permit: permit })
    }

    /// Requests waiting for a slot.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Requests holding a slot.
    pub fn running(&self) -> usize {
        self.max_concurrent - self.slots.available_permits()
    }

    fn overloaded(&self) -> Overloaded {
        Overloaded {
            running: self.running(),
            waiting: self.waiting(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn past_the_slots_and_the_line_requests_are_refused_and_a_freed_slot_serves_again() {
        let admission = Arc::new(Admission::new(2, 1));
        let a = admission.enter().await.expect("slot 1");
        let _b = admission.enter().await.expect("slot 2");
        let queued = {
            let admission = Arc::clone(&admission);
            tokio::spawn(async move { admission.enter().await.map(|_| ()) })
        };
        tokio::time::timeout(Duration::from_secs(5), async {
            while admission.waiting() < 1 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the third request waits");
        let refused = admission.enter().await.expect_err("line full");
        assert_eq!(
            refused,
            Overloaded {
                running: 2,
                waiting: 1
            }
        );
        assert_eq!(
            admission.waiting(),
            1,
            "a refusal leaves the line as it was"
        );
        drop(a);
        tokio::time::timeout(Duration::from_secs(5), queued)
            .await
            .expect("the waiter gets the freed slot")
            .expect("task")
            .expect("slot");
        assert_eq!(admission.waiting(), 0);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_leaves_the_line() {
        let admission = Admission::new(1, 4);
        let _held = admission.enter().await.expect("slot");
        let gave_up = tokio::time::timeout(Duration::from_millis(20), admission.enter()).await;
        assert!(gave_up.is_err());
        assert_eq!(admission.waiting(), 0);
    }
}
