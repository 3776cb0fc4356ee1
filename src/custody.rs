//! Work that must outlive its caller: once a refresh or a code exchange may have reached
//! a provider, storing its result must not depend on the request that asked for it.
//! Such work runs on its own task (the caller awaits the handle; a caller that goes
//! away only detaches it), every such task is tracked, and shutdown drains them within
//! a deadline, naming whatever it had to cut off.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::Instrument;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The tracker of detached work and the start of the drain; cheap to clone.
#[derive(Clone, Default)]
pub struct Custody(Arc<Inner>);

#[derive(Default)]
struct Inner {
    tracker: TaskTracker,
    /// Cancelled when the drain starts: listeners stop accepting, the refresher stops claiming.
    stop: CancellationToken,
    draining: AtomicBool,
    next_id: AtomicU64,
    /// What each task in flight is doing, for the log of work cut off (never a secret).
    in_flight: Mutex<BTreeMap<u64, String>>,
    /// Woken whenever a task ends.
    ended: Notify,
}

/// Removes a task's label when the task ends, however it ends.
struct Label {
    custody: Custody,
    id: u64,
}

impl Drop for Label {
    fn drop(&mut self) {
        self.custody.labels().remove(&self.id);
        self.custody.0.ended.notify_waiters();
    }
}

impl Custody {
    /// Runs `work` on its own task, tracked until it ends. `label` says what it is in the
    /// log if shutdown has to cut it off (a connection id, or provider and end user).
    pub fn spawn<F>(&self, label: String, work: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        self.labels().insert(id, label);
        let guard = Label {
            custody: self.clone(),
            id,
        };
        // The caller's span (its request id) goes with the work, into its log lines.
        self.0.tracker.spawn(
            async move {
                let _guard = guard;
                let _in_flight = crate::telemetry::metrics::InFlight::start("caller_detached");
                work.await
            }
            .in_current_span(),
        )
    }

    /// Tracks a future that is spawned elsewhere (the refresher's own task set).
    pub fn track<F>(&self, label: String, work: F) -> impl Future<Output = F::Output> + use<F>
    where
        F: Future,
    {
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        self.labels().insert(id, label);
        let guard = Label {
            custody: self.clone(),
            id,
        };
        self.0.tracker.track_future(async move {
            let _guard = guard;
            work.await
        })
    }

    /// How many tracked tasks are in flight.
    pub fn in_flight(&self) -> usize {
        self.0.tracker.len()
    }

    /// Waits until no detached work is in flight (tests wait on this, not on time).
    pub async fn settled(&self) {
        loop {
            let ended = self.0.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if self.labels().is_empty() {
                return;
            }
            ended.await;
        }
    }

    /// The drain has started: `/readyz` answers 503 from now on.
    pub fn draining(&self) -> bool {
        self.0.draining.load(Ordering::Relaxed)
    }

    /// Resolves when the drain starts.
    pub fn stopped(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.0.stop.clone().cancelled_owned()
    }

    /// Starts the drain: not ready any more, stop accepting and claiming.
    pub fn begin_drain(&self) {
        self.0.draining.store(true, Ordering::Relaxed);
        self.0.stop.cancel();
    }

    /// Waits for the tracked work to finish, at most `deadline`; returns the labels of
    /// the work still running at the deadline (empty after a clean drain).
    pub async fn drain(&self, deadline: Duration) -> Vec<String> {
        self.begin_drain();
        self.0.tracker.close();
        if tokio::time::timeout(deadline, self.0.tracker.wait())
            .await
            .is_ok()
        {
            return Vec::new();
        }
        self.labels().values().cloned().collect()
    }

    fn labels(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, String>> {
        self.0
            .in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Awaits detached work; a task that panicked becomes an internal error.
pub async fn join<T>(handle: JoinHandle<T>) -> Result<T, crate::error::AppError> {
    handle.await.map_err(|e| {
        tracing::error!(error = %e, "detached work failed");
        crate::error::AppError::internal(anyhow::anyhow!("detached work failed"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dropped_caller_does_not_cancel_and_the_drain_waits_for_it() {
        let custody = Custody::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let handle = custody.spawn("refresh of connection x".into(), async move {
            let _ = rx.await;
            flag.store(true, Ordering::SeqCst);
        });
        drop(handle);
        assert_eq!(custody.in_flight(), 1);
        let cut = custody.drain(Duration::from_millis(20)).await;
        assert_eq!(cut, vec!["refresh of connection x".to_string()]);
        assert!(custody.draining());
        tx.send(()).expect("task still waiting");
        assert!(custody.drain(Duration::from_secs(5)).await.is_empty());
        assert!(done.load(Ordering::SeqCst));
    }
}
