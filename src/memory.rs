//! Handing freed memory back to the system (glibc on Linux; elsewhere these do nothing).
//!
//! The live heap stays small (a few tens of MB at the peak of a burst), but glibc's allocator
//! keeps what was freed: in one arena per thread that ever allocated, up to eight per core, and
//! inside each arena wherever a live block sits above the free space. After a burst of 10,000
//! tickets that was 150-210 MB of resident memory holding a fraction of it in use. Two arenas
//! bound the first; trimming every arena once the process has gone quiet returns the second.
//!
//! jemalloc was measured in glibc's place: 10-30% less CPU per ticket in the burst, but 3-4 MB
//! more resident at idle (about 17.7 MB against 14), over the 16 MB that a serverless start is
//! held to.

/// Arenas when `MALLOC_ARENA_MAX` is not set: the async workers and the SQLite threads of the
/// blocking pool share them, and on a few cores two keep lock contention low.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENAS: libc::c_int = 2;

/// Caps glibc's arenas unless `MALLOC_ARENA_MAX` says otherwise. Call first thing in `main`,
/// before any thread starts.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes an allocator parameter; no thread allocates yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        }
    }
}

/// Starts, once per process, the task that trims the heap after work ends. Needs a Tokio
/// runtime.
pub fn spawn_trim_when_quiet() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static STARTED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
        STARTED.get_or_init(|| {
            tokio::spawn(quiet::trim_after_work());
        });
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod quiet {
    use std::time::Duration;

    /// How often the process's CPU time is read (one `getrusage`).
    const TICK: Duration = Duration::from_millis(250);
    /// CPU time per tick under which the process counts as quiet (2% of one core): the
    /// checkpoints, metric upkeep and timers of an idle server stay well below it.
    const QUIET: Duration = Duration::from_millis(5);

    fn cpu_time() -> Option<Duration> {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
        // SAFETY: getrusage fills the struct it is given and touches nothing else.
        let usage = unsafe {
            if libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) != 0 {
                return None;
            }
            usage.assume_init()
        };
        let time = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec.max(0) as u64)
                + Duration::from_micros(t.tv_usec.max(0) as u64)
        };
        Some(time(usage.ru_utime) + time(usage.ru_stime))
    }

    /// Trims once after each stretch of work, on the first quiet tick after a busy one (start-up
    /// counts as work): never during a burst, where it would only hand back memory the next
    /// requests allocate again, and never repeatedly while nothing happens.
    pub(super) async fn trim_after_work() {
        let Some(mut last) = cpu_time() else {
            return;
        };
        let mut busy = true;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(now) = cpu_time() else {
                return;
            };
            let used = now.saturating_sub(last);
            last = now;
            if used >= QUIET {
                busy = true;
            } else if busy {
                busy = false;
                // It walks every arena under its lock: off the async workers.
                let _ = tokio::task::spawn_blocking(|| {
                    // SAFETY: malloc_trim only returns free pages to the system.
                    unsafe { libc::malloc_trim(0) }
                })
                .await;
                // The trim's own CPU time is not work.
                last = cpu_time().unwrap_or(last);
            }
        }
    }
}
