//! Load generation: open loop (requests leave on a clock, whatever the answers do) and closed
//! loop (a fixed number of clients, each sending its next request when the last one is answered).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// No single request may hold a run up longer than this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Nearest-rank percentile of sorted values.
pub fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub struct OpenLoopReport {
    pub scheduled: usize,
    pub ok: usize,
    pub failed: usize,
    /// Of successful requests, from the moment each left to its answer, sorted.
    pub latencies: Vec<Duration>,
    /// Successful answers per second over the run (first send to last answer).
    pub throughput: f64,
    /// How late requests left compared with the clock (the generator keeping up), p99.
    pub send_lag_p99: Duration,
}

impl OpenLoopReport {
    pub fn p(&self, p: f64) -> Duration {
        percentile(&self.latencies, p)
    }
}

/// Sends `rate` requests per second for `duration`, each made by `request(i)` (true: success).
/// Requests never wait for earlier ones: a slow server sees the same arrival rate, and the
/// queueing it causes shows up in the latencies.
pub async fn open_loop<F, Fut>(rate: f64, duration: Duration, request: F) -> OpenLoopReport
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = bool> + Send + 'static,
{
    let total = (rate * duration.as_secs_f64()).round() as usize;
    let period = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total);
    let mut lags = Vec::with_capacity(total);
    for i in 0..total {
        let due = start + period * i as u32;
        tokio::time::sleep_until(due).await;
        let now = tokio::time::Instant::now();
        lags.push(now.saturating_duration_since(due));
        let fut = request(i);
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let ok = tokio::time::timeout(REQUEST_TIMEOUT, fut)
                .await
                .unwrap_or(false);
            (ok, sent.elapsed(), Instant::now())
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut failed = 0;
    let mut last = start.into_std();
    for t in tasks {
        match t.await {
            Ok((true, latency, done)) => {
                latencies.push(latency);
                last = last.max(done);
            }
            _ => failed += 1,
        }
    }
    latencies.sort();
    lags.sort();
    let elapsed = last.duration_since(start.into_std()).as_secs_f64();
    OpenLoopReport {
        scheduled: total,
        ok: latencies.len(),
        failed,
        throughput: if elapsed > 0.0 {
            latencies.len() as f64 / elapsed
        } else {
            0.0
        },
        latencies,
        send_lag_p99: percentile(&lags, 0.99),
    }
}

pub struct ClosedLoopReport {
    pub ok: usize,
    pub failed: usize,
    pub elapsed: Duration,
}

impl ClosedLoopReport {
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
}

/// `clients` concurrent clients share `total` requests (or stop at `limit`), each sending the
/// next as soon as the previous one is answered.
pub async fn closed_loop<F, Fut>(
    clients: usize,
    total: usize,
    limit: Duration,
    request: F,
) -> ClosedLoopReport
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let request = Arc::new(request);
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (next, request) = (next.clone(), request.clone());
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0, 0);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total || started.elapsed() > limit {
                        break;
                    }
                    match tokio::time::timeout(REQUEST_TIMEOUT, request(i)).await {
                        Ok(true) => ok += 1,
                        _ => failed += 1,
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let (mut ok, mut failed) = (0, 0);
    for w in workers {
        if let Ok((o, f)) = w.await {
            ok += o;
            failed += f;
        }
    }
    ClosedLoopReport {
        ok,
        failed,
        elapsed: started.elapsed(),
    }
}
