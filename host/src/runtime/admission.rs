//! Admission control: what the instance pool can really hold at once, what
//! one plugin instance takes from it (its core instances, memories and
//! tables), and the bounded wait for capacity. A call that cannot be
//! admitted in time ends as `overloaded`, a host condition, never as a
//! plugin failure.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::Component;

use crate::runtime::failure::{Failure, FailureKind};

/// Default of [`crate::RuntimeConfig::admission_wait`]: how long a call waits
/// for pool capacity before it ends as `overloaded`. A checkpoint of a
/// hundred Python validators on two cores queues for a few seconds; thirty
/// leaves a wide margin and still fails a stuck host well within a CI job.
pub const DEFAULT_ADMISSION_WAIT: Duration = Duration::from_secs(30);

/// How many of each pooled resource the runtime holds. Every call takes one
/// component instance (and one fiber stack), plus its plugin's
/// [`InstanceFootprint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolCapacity {
    pub component_instances: u32,
    pub core_instances: u32,
    pub memories: u32,
    pub tables: u32,
}

/// What one instance of a plugin takes from the pool. Rust components
/// create 1-3 core instances; componentize-py output 14 and
/// componentize-js output 4 (the bundled secrets scanners), so fewer of
/// them fit at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceFootprint {
    pub core_instances: u32,
    pub memories: u32,
    pub tables: u32,
}

impl InstanceFootprint {
    /// The footprint of `component`: its core instantiations as counted in
    /// its binary (nested components included), its memories and tables as
    /// wasmtime will allocate them.
    pub(crate) fn new(core_instances: u32, component: &Component) -> InstanceFootprint {
        match component.resources_required() {
            Some(resources) => InstanceFootprint {
                core_instances,
                memories: resources.num_memories,
                tables: resources.num_tables,
            },
            // A component that imports core modules (none the linker
            // accepts): assume the pool's per-module maxima (1 memory, 4
            // tables) for every core instance.
            None => InstanceFootprint {
                core_instances,
                memories: core_instances,
                tables: core_instances.saturating_mul(4),
            },
        }
    }
}

/// The pool's capacity as semaphores, one per resource. Calls take permits
/// in one fixed order (so waiters cannot deadlock each other) and hold them
/// until their store, and with it the instance, is dropped.
#[derive(Debug)]
pub(crate) struct Admission {
    capacity: PoolCapacity,
    wait: Duration,
    component_instances: Arc<Semaphore>,
    core_instances: Arc<Semaphore>,
    memories: Arc<Semaphore>,
    tables: Arc<Semaphore>,
    waiting: AtomicUsize,
}

/// Capacity held by one admitted call; released on drop.
#[derive(Debug)]
pub(crate) struct Admitted {
    _permits: [OwnedSemaphorePermit; 4],
}

impl Admission {
    pub(crate) fn new(capacity: PoolCapacity, wait: Duration) -> Self {
        let semaphore = |n: u32| Arc::new(Semaphore::new(n as usize));
        Self {
            capacity,
            wait,
            component_instances: semaphore(capacity.component_instances),
            core_instances: semaphore(capacity.core_instances),
            memories: semaphore(capacity.memories),
            tables: semaphore(capacity.tables),
            waiting: AtomicUsize::new(0),
        }
    }

    pub(crate) fn capacity(&self) -> PoolCapacity {
        self.capacity
    }

    /// Calls waiting for capacity right now.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Whether an instance of this footprint can ever be admitted.
    pub(crate) fn fits(&self, footprint: &InstanceFootprint) -> bool {
        footprint.core_instances <= self.capacity.core_instances
            && footprint.memories <= self.capacity.memories
            && footprint.tables <= self.capacity.tables
    }

    /// Waits (up to the runtime's admission wait) until the pool can hold
    /// one instance of `footprint`.
    pub(crate) async fn admit(&self, footprint: &InstanceFootprint) -> Result<Admitted, Failure> {
        if !self.fits(footprint) {
            return Err(self.overloaded(footprint, "never fits in the pool"));
        }
        // The common case, capacity to spare: no timer, no waiting.
        if let Some(admitted) = self.try_admit(footprint) {
            return Ok(admitted);
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let acquired = tokio::time::timeout(self.wait, async {
            let take =
                |semaphore: &Arc<Semaphore>, n: u32| Arc::clone(semaphore).acquire_many_owned(n);
            Ok::<_, tokio::sync::AcquireError>([
                take(&self.component_instances, 1).await?,
                take(&self.core_instances, footprint.core_instances).await?,
                take(&self.memories, footprint.memories).await?,
                take(&self.tables, footprint.tables).await?,
            ])
        })
        .await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        match acquired {
            Ok(Ok(permits)) => Ok(Admitted { _permits: permits }),
            // The semaphores are never closed.
            Ok(Err(_closed)) => Err(self.overloaded(footprint, "admission is closed")),
            Err(_elapsed) => Err(self.overloaded(
                footprint,
                &format!("no capacity within {} ms", self.wait.as_millis()),
            )),
        }
    }

    /// Takes the permits at once if all are free (none are taken
    /// otherwise), unless others are already waiting: they go first.
    fn try_admit(&self, footprint: &InstanceFootprint) -> Option<Admitted> {
        if self.waiting() > 0 {
            return None;
        }
        let take = |semaphore: &Arc<Semaphore>, n: u32| {
            Arc::clone(semaphore).try_acquire_many_owned(n).ok()
        };
        Some(Admitted {
            _permits: [
                take(&self.component_instances, 1)?,
                take(&self.core_instances, footprint.core_instances)?,
                take(&self.memories, footprint.memories)?,
                take(&self.tables, footprint.tables)?,
            ],
        })
    }

    fn overloaded(&self, footprint: &InstanceFootprint, why: &str) -> Failure {
        let capacity = self.capacity;
        Failure::new(
            FailureKind::Overloaded,
            format!(
                "the host was overloaded, not the plugin: {why} for an instance of {} core \
                 instance(s), {} memory(ies), {} table(s) (the pool holds {} instances, {} core \
                 instances, {} memories, {} tables); run fewer plugins at once or raise the \
                 admission wait",
                footprint.core_instances,
                footprint.memories,
                footprint.tables,
                capacity.component_instances,
                capacity.core_instances,
                capacity.memories,
                capacity.tables,
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: InstanceFootprint = InstanceFootprint {
        core_instances: 3,
        memories: 1,
        tables: 1,
    };

    fn admission(wait: Duration) -> Admission {
        Admission::new(
            PoolCapacity {
                component_instances: 8,
                core_instances: 6,
                memories: 8,
                tables: 8,
            },
            wait,
        )
    }

    #[tokio::test]
    async fn admission_counts_core_instances_and_waits_for_release() {
        let admission = admission(Duration::from_secs(5));
        let first = admission.admit(&SMALL).await.unwrap();
        let _second = admission.admit(&SMALL).await.unwrap();
        // The pool's 6 core instances are taken: a third call waits until
        // one is released.
        let third = admission.admit(&SMALL);
        tokio::pin!(third);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut third)
                .await
                .is_err(),
            "a third instance of 3 core instances does not fit in 6"
        );
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), third)
            .await
            .expect("admitted once capacity is released")
            .unwrap();
    }

    #[tokio::test]
    async fn admission_past_its_wait_is_overloaded_not_a_plugin_failure() {
        let admission = admission(Duration::from_millis(20));
        let _held = admission.admit(&SMALL).await.unwrap();
        let _held2 = admission.admit(&SMALL).await.unwrap();
        let failure = tokio::time::timeout(Duration::from_secs(5), admission.admit(&SMALL))
            .await
            .expect("the wait is bounded")
            .unwrap_err();
        assert_eq!(failure.kind, FailureKind::Overloaded);
        assert!(failure.message.contains("host was overloaded"), "{failure}");
        assert_eq!(admission.waiting(), 0);
    }

    #[tokio::test]
    async fn a_footprint_larger_than_the_pool_is_refused_at_once() {
        let admission = admission(Duration::from_secs(60));
        let huge = InstanceFootprint {
            core_instances: 7,
            ..SMALL
        };
        let failure = tokio::time::timeout(Duration::from_secs(5), admission.admit(&huge))
            .await
            .expect("no wait for what can never fit")
            .unwrap_err();
        assert_eq!(failure.kind, FailureKind::Overloaded);
    }
}
