//! The single store writer of the ingest path: batches from all connections are grouped
//! into one transaction (group commit), so acknowledgements come after data is durable
//! without one fsync per batch.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use protocol::messages::SeqEvent;

use crate::clock::Clock;
use crate::config::TimingConfig;
use crate::score::Scorer;
use crate::store::Store;

/// A batch to store.
pub struct Job {
    pub device: String,
    pub contract_id: u64,
    pub events: Vec<SeqEvent>,
    /// What was stored (durably), or why not.
    pub reply: oneshot::Sender<Result<super::process::Stored, String>>,
}

/// Sends jobs to the writer.
#[derive(Clone)]
pub struct WriterHandle(mpsc::Sender<Job>);

impl WriterHandle {
    /// Store a batch; resolves once it is committed.
    pub async fn store(
        &self,
        device: &str,
        contract_id: u64,
        events: Vec<SeqEvent>,
    ) -> Result<super::process::Stored, String> {
        let (tx, rx) = oneshot::channel();
        self.0
            .send(Job {
                device: device.to_string(),
                contract_id,
                events,
                reply: tx,
            })
            .await
            .map_err(|_| "the store writer stopped".to_string())?;
        rx.await
            .map_err(|_| "the store writer dropped the batch".to_string())?
    }

    /// Whether the writer thread is still running (its queue's receiver lives in it, so a
    /// panic or an exit of the thread closes the queue).
    pub fn alive(&self) -> bool {
        !self.0.is_closed()
    }

    /// Resolves when the writer thread has stopped (panicked or exited): the service must
    /// not keep running without it (ingest would fail every batch).
    pub async fn stopped(&self) {
        self.0.closed().await
    }
}

/// Counters of the writer.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub commits: std::sync::atomic::AtomicU64,
    pub events: std::sync::atomic::AtomicU64,
    pub duplicates: std::sync::atomic::AtomicU64,
    pub failures: std::sync::atomic::AtomicU64,
}

/// Most jobs folded into one transaction.
const MAX_GROUP: usize = 256;

/// Start the writer thread. `after_commit` runs after each commit (wakes the notifier).
pub fn spawn(
    store: Arc<Store>,
    scorer: Scorer,
    timing: TimingConfig,
    clock: Arc<dyn Clock>,
    stats: Arc<WriterStats>,
) -> WriterHandle {
    let (tx, mut rx) = mpsc::channel::<Job>(4096);
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || {
            let mut jobs: Vec<Job> = Vec::with_capacity(MAX_GROUP);
            while let Some(first) = rx.blocking_recv() {
                jobs.push(first);
                while jobs.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(j) => jobs.push(j),
                        Err(_) => break,
                    }
                }
                let now = clock.now_ms();
                let res = store.write(|tx| {
                    let mut out = Vec::with_capacity(jobs.len());
                    for j in &jobs {
                        let r = super::process::store_batch(tx, &scorer, &timing, now, &j.device, j.contract_id, &j.events)?;
                        out.push(r);
                    }
                    Ok(out)
                });
                use std::sync::atomic::Ordering::Relaxed;
                match res {
                    Ok(outs) => {
                        stats.commits.fetch_add(1, Relaxed);
                        for (j, stored) in jobs.drain(..).zip(outs) {
                            stats.events.fetch_add(stored.new, Relaxed);
                            stats.duplicates.fetch_add(stored.duplicates, Relaxed);
                            let _ = j.reply.send(Ok(stored));
                        }
                    }
                    Err(e) => {
                        // nothing was committed: no job is acknowledged (each connection
                        // ends and its appliance sends the batch again). An I/O error of
                        // the database is latched by the store; the service then exits for
                        // its supervisor (serve).
                        stats.failures.fetch_add(1, Relaxed);
                        tracing::error!(error = %e, jobs = jobs.len(), "storing a batch failed; connections will retry");
                        for j in jobs.drain(..) {
                            let _ = j.reply.send(Err(e.to_string()));
                        }
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            }
        })
        .expect("spawning the store writer");
    WriterHandle(tx)
}

#[cfg(test)]
mod test {
    use super::*;

    #[tokio::test]
    async fn a_panicking_writer_is_seen_as_stopped() {
        let (tx, mut rx) = mpsc::channel::<Job>(4);
        let h = WriterHandle(tx);
        let t = std::thread::spawn(move || {
            let _ = rx.blocking_recv();
            panic!("writer bug");
        });
        assert!(h.alive());
        let r = h.store("dev", 1, Vec::new()).await;
        assert!(r.is_err(), "the batch is not acknowledged");
        assert!(t.join().is_err());
        tokio::time::timeout(Duration::from_secs(5), h.stopped())
            .await
            .expect("stopped() resolves after the panic");
        assert!(!h.alive());
    }
}
