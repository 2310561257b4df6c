//! The allocator, and handing freed memory back to the system (Linux with glibc; elsewhere
//! the system allocator and nothing to hand back).
//!
//! Rust's allocations go to jemalloc. Under a burst of tickets a step allocates and frees
//! many small blocks on several threads; glibc took 15-18% of the server's CPU there (its
//! arena locks, `malloc_consolidate`), and with jemalloc the same burst needed 13-30% less CPU
//! per ticket in alternated runs. It costs about 1 MB of resident memory at idle.
//!
//! SQLite still allocates from glibc. The live heap stays small (a few tens of MB at the peak
//! of a burst), but glibc keeps what was freed: in one arena per thread that ever allocated,
//! up to eight per core, and inside each arena wherever a live block sits above the free
//! space. After a burst of 10,000 tickets that was 150-210 MB of resident memory holding a
//! fraction of it in use. Two arenas bound the first; trimming glibc, and purging jemalloc's
//! unused pages, once the process has gone quiet returns the second.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read at its start (the symbol is its `malloc_conf`): two arenas, as
/// for glibc below, and freed pages returned after a second instead of ten.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static JEMALLOC_CONF: ConfString =
    ConfString(c"narenas:2,dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr());

/// A C string pointer, as jemalloc declares its `malloc_conf`.
#[repr(transparent)]
pub struct ConfString(*const std::ffi::c_char);

// SAFETY: it points at a constant string, which nothing writes.
unsafe impl Sync for ConfString {}

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
                    unsafe { libc::malloc_trim(0) };
                    // 4096 is MALLCTL_ARENAS_ALL: every arena's unused pages go back.
                    // SAFETY: "arena.<i>.purge" takes no input and writes no output.
                    unsafe {
                        tikv_jemalloc_sys::mallctl(
                            c"arena.4096.purge".as_ptr(),
                            std::ptr::null_mut(),
                            std::ptr::null_mut(),
                            std::ptr::null_mut(),
                            0,
                        )
                    }
                })
                .await;
                // The trim's own CPU time is not work.
                last = cpu_time().unwrap_or(last);
            }
        }
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use std::ffi::{CStr, c_void};

    fn option<T: Default>(name: &CStr) -> T {
        let mut value = T::default();
        let mut len = std::mem::size_of::<T>();
        // SAFETY: reads one option of the size asked for into `value`.
        let rc = unsafe {
            tikv_jemalloc_sys::mallctl(
                name.as_ptr(),
                (&raw mut value).cast::<c_void>(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        assert_eq!(rc, 0, "mallctl {name:?}");
        value
    }

    #[test]
    fn jemalloc_runs_with_our_settings() {
        let boxed = Box::new([7_u8; 100]);
        assert_eq!(option::<u32>(c"opt.narenas"), 2);
        assert_eq!(option::<isize>(c"opt.dirty_decay_ms"), 1000);
        assert_eq!(option::<isize>(c"opt.muzzy_decay_ms"), 0);
        // The heap Rust allocates from is jemalloc's.
        let mut arena = u32::MAX;
        let mut len = std::mem::size_of::<u32>();
        let mut ptr = boxed.as_ptr() as *const c_void;
        // SAFETY: "arena.lookup" reads a pointer jemalloc allocated and writes its arena index.
        let rc = unsafe {
            tikv_jemalloc_sys::mallctl(
                c"arenas.lookup".as_ptr(),
                (&raw mut arena).cast::<c_void>(),
                &mut len,
                (&raw mut ptr).cast::<c_void>(),
                std::mem::size_of::<*const c_void>(),
            )
        };
        assert_eq!(rc, 0, "a Box is not in a jemalloc arena");
        assert!(arena < 2, "arena {arena}");
    }
}
