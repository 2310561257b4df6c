//! Bounded in-call retries for model requests. The durable step around a triage has its own
//! retries; these only smooth over blips (a 503, a short rate-limit window, one malformed
//! answer) without holding the step for long.

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use super::AiError;

/// How hard a provider tries before giving up on one triage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// HTTP attempts for transient failures and rate limits, the first included.
    pub max_attempts: u32,
    /// Extra attempts after a malformed or truncated answer.
    pub bad_output_retries: u32,
    /// First backoff; doubled per retry up to `max_backoff`, plus up to `jitter`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub jitter: Duration,
    /// Timeout of one HTTP attempt.
    pub attempt_timeout: Duration,
    /// Budget for the whole call, waits included; no attempt or wait starts beyond it.
    pub max_elapsed: Duration,
    /// A 429 asking to wait longer than this is returned to the caller (who can reschedule)
    /// instead of being waited out in the call.
    pub max_rate_limit_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            bad_output_retries: 1,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(8),
            jitter: Duration::from_millis(500),
            attempt_timeout: Duration::from_secs(20),
            max_elapsed: Duration::from_secs(30),
            max_rate_limit_wait: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// Millisecond-scale delays, for tests against local fakes.
    pub fn fast() -> Self {
        RetryPolicy {
            max_attempts: 3,
            bad_output_retries: 1,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            jitter: Duration::from_millis(5),
            attempt_timeout: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(10),
            max_rate_limit_wait: Duration::from_millis(300),
        }
    }

    /// Delay before retry number `retry` (1-based): exponential, capped, with jitter.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(retry.saturating_sub(1)));
        let base = exp.min(self.max_backoff);
        let jitter_ms = u64::try_from(self.jitter.as_millis()).unwrap_or(u64::MAX);
        let extra = if jitter_ms == 0 {
            0
        } else {
            rand::rng().random_range(0..=jitter_ms)
        };
        base + Duration::from_millis(extra)
    }
}

/// What an attempt needs to know.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AttemptCtx {
    /// 1-based.
    pub attempt: u32,
    /// Timeout for this attempt (never past the overall budget).
    pub timeout: Duration,
    /// The previous attempt produced unusable output (e.g. truncated): ask for more room.
    pub after_bad_output: bool,
}

/// Runs `call` until it succeeds or the policy says stop. Returns the last result and the
/// number of attempts made.
pub(crate) async fn run<T, F, Fut>(
    policy: &RetryPolicy,
    provider: &'static str,
    mut call: F,
) -> (Result<T, AiError>, u32)
where
    F: FnMut(AttemptCtx) -> Fut,
    Fut: Future<Output = Result<T, AiError>>,
{
    let started = Instant::now();
    let mut attempt = 0u32;
    let mut retryable_attempts = 0u32;
    let mut bad_output_left = policy.bad_output_retries;
    let mut after_bad_output = false;
    loop {
        attempt += 1;
        let remaining = policy.max_elapsed.saturating_sub(started.elapsed());
        let ctx = AttemptCtx {
            attempt,
            timeout: policy
                .attempt_timeout
                .min(remaining)
                .max(Duration::from_millis(1)),
            after_bad_output,
        };
        let err = match call(ctx).await {
            Ok(v) => return (Ok(v), attempt),
            Err(e) => e,
        };
        let wait = match &err {
            AiError::Transient(_) => {
                retryable_attempts += 1;
                (retryable_attempts < policy.max_attempts)
                    .then(|| policy.backoff(retryable_attempts))
            }
            AiError::RateLimited { retry_after, .. } => {
                retryable_attempts += 1;
                let wait = retry_after.unwrap_or_else(|| policy.backoff(retryable_attempts));
                (retryable_attempts < policy.max_attempts && wait <= policy.max_rate_limit_wait)
                    .then_some(wait)
            }
            AiError::BadOutput(_) if bad_output_left > 0 => {
                bad_output_left -= 1;
                Some(Duration::ZERO)
            }
            AiError::BadOutput(_) | AiError::Config(_) | AiError::Blocked(_) => None,
        };
        let Some(wait) = wait else {
            return (Err(err), attempt);
        };
        if started.elapsed() + wait >= policy.max_elapsed {
            tracing::debug!(provider, attempt, "retry budget exhausted");
            return (Err(err), attempt);
        }
        tracing::debug!(provider, attempt, error = %err, wait_ms = wait.as_millis() as u64, "retrying");
        after_bad_output = matches!(err, AiError::BadOutput(_));
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            jitter: Duration::ZERO,
            ..RetryPolicy::fast()
        }
    }

    async fn script(
        policy: &RetryPolicy,
        errors: Vec<AiError>,
    ) -> (Result<u32, AiError>, u32, Vec<AttemptCtx>) {
        let queue = Mutex::new(errors.into_iter());
        let seen = Mutex::new(Vec::new());
        let (res, attempts) = run(policy, "test", |ctx| {
            seen.lock().unwrap().push(ctx);
            let next = queue.lock().unwrap().next();
            async move {
                match next {
                    Some(e) => Err(e),
                    None => Ok(ctx.attempt),
                }
            }
        })
        .await;
        (res, attempts, seen.into_inner().unwrap())
    }

    fn transient() -> AiError {
        AiError::Transient("503".into())
    }

    #[tokio::test]
    async fn transient_then_success() {
        let (res, attempts, _) = script(&policy(), vec![transient(), transient()]).await;
        assert_eq!(res, Ok(3));
        assert_eq!(attempts, 3);
    }

    #[tokio::test]
    async fn transient_gives_up_after_max_attempts() {
        let (res, attempts, _) = script(&policy(), vec![transient(); 5]).await;
        assert_eq!(res, Err(transient()));
        assert_eq!(attempts, 3);
    }

    #[tokio::test]
    async fn config_and_blocked_are_not_retried() {
        for e in [
            AiError::Config("k".into()),
            AiError::Blocked("SAFETY".into()),
        ] {
            let (res, attempts, _) = script(&policy(), vec![e.clone()]).await;
            assert_eq!(res, Err(e));
            assert_eq!(attempts, 1);
        }
    }

    #[tokio::test]
    async fn bad_output_is_retried_once_with_the_flag_set() {
        let bad = AiError::BadOutput("truncated".into());
        let (res, attempts, seen) = script(&policy(), vec![bad.clone()]).await;
        assert_eq!(res, Ok(2));
        assert_eq!(attempts, 2);
        assert!(!seen[0].after_bad_output);
        assert!(seen[1].after_bad_output);
        let (res, attempts, _) = script(&policy(), vec![bad.clone(), bad.clone()]).await;
        assert_eq!(res, Err(bad));
        assert_eq!(attempts, 2);
    }

    #[tokio::test]
    async fn short_rate_limits_are_waited_out_long_ones_returned() {
        let short = AiError::RateLimited {
            retry_after: Some(Duration::from_millis(10)),
            message: "m".into(),
        };
        let (res, _, _) = script(&policy(), vec![short]).await;
        assert_eq!(res, Ok(2));

        let long = AiError::RateLimited {
            retry_after: Some(Duration::from_secs(60)),
            message: "m".into(),
        };
        let (res, attempts, _) = script(&policy(), vec![long.clone()]).await;
        assert_eq!(res, Err(long));
        assert_eq!(attempts, 1);
    }

    #[tokio::test]
    async fn overall_budget_bounds_the_call() {
        let p = RetryPolicy {
            max_attempts: 100,
            initial_backoff: Duration::from_millis(150),
            max_backoff: Duration::from_millis(150),
            jitter: Duration::ZERO,
            max_elapsed: Duration::from_millis(400),
            ..RetryPolicy::default()
        };
        let started = std::time::Instant::now();
        let (res, attempts, seen) = script(&p, vec![transient(); 100]).await;
        assert!(res.is_err());
        // attempts at ~0, 150, 300 ms; a wait to 450 would cross the budget
        assert!((2..=3).contains(&attempts), "{attempts}");
        assert!(started.elapsed() < Duration::from_millis(400));
        assert!(seen.iter().all(|c| c.timeout <= Duration::from_millis(400)));
        assert!(seen.last().unwrap().timeout <= Duration::from_millis(250));
    }

    #[test]
    fn backoff_grows_and_caps() {
        let p = RetryPolicy {
            jitter: Duration::ZERO,
            ..RetryPolicy::default()
        };
        assert_eq!(p.backoff(1), Duration::from_secs(1));
        assert_eq!(p.backoff(2), Duration::from_secs(2));
        assert_eq!(p.backoff(3), Duration::from_secs(4));
        assert_eq!(p.backoff(10), Duration::from_secs(8));
        let p = RetryPolicy::default();
        for _ in 0..50 {
            let d = p.backoff(1);
            assert!(d >= Duration::from_secs(1) && d <= Duration::from_millis(1500));
        }
    }
}
