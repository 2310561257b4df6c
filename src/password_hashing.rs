//! Argon2id with a bounded footprint. Each hash needs its memory cost in RAM (19 MiB with the
//! default parameters); hashed on the blocking pool with a fresh allocation each time, a storm
//! of failed logins from many addresses ran dozens at once and left the allocator holding
//! gigabytes. Here at most one hash per core (up to [`MAX_WORKERS`]) runs at a time. While
//! hashes queue, each worker's memory passes straight to the next one; when nobody waits it is
//! given back to the operating system, so an idle process holds none of it.
//!
//! Given back for real: each buffer is reserved larger than 32 MiB, the most glibc's malloc
//! ever serves from its heap (its dynamic mmap threshold stops there), so it is always a
//! mapping of its own, unmapped when freed, and freeing it never raises that threshold for
//! other allocations. Only the part a hash touches (19 MiB) is ever resident.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

/// A password hash never uses more cores than this, whatever the machine: each one holds its
/// memory cost in RAM.
pub const MAX_WORKERS: usize = 4;
/// A stored hash asking for more memory than this is refused rather than followed.
const MAX_MEMORY_BLOCKS: usize = 256 * 1024;
const SALT_LEN: usize = 16;
/// Blocks (1 KiB each) reserved per buffer: just above glibc's 32 MiB mmap-threshold ceiling.
const RESERVED_BLOCKS: usize = 33 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("argon2: {0}")]
    Argon2(String),
    #[error("stored hash: {0}")]
    Stored(String),
    #[error("hashing task failed: {0}")]
    Task(String),
}

struct Pool {
    permits: Arc<Semaphore>,
    /// Hashes waiting for a permit.
    waiting: AtomicUsize,
    /// Memory handed from a finished hash to the next while hashes queue; at most `workers`.
    buffers: Mutex<Vec<Vec<Block>>>,
    workers: usize,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let workers = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, MAX_WORKERS);
        Pool {
            permits: Arc::new(Semaphore::new(workers)),
            waiting: AtomicUsize::new(0),
            buffers: Mutex::new(Vec::with_capacity(workers)),
            workers,
        }
    })
}

/// Counts a hash as waiting until dropped, also when its caller goes away while it waits.
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn join(waiting: &'a AtomicUsize) -> Self {
        waiting.fetch_add(1, Ordering::SeqCst);
        Self(waiting)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How many hashes may run at once in this process.
pub fn workers() -> usize {
    pool().workers
}

/// Runs `f` with a worker's memory on the blocking pool, after waiting for a free worker (in
/// arrival order). The permit and the buffer travel with the blocking task, so a caller that
/// goes away mid-hash frees neither before the hash is done.
async fn with_memory<T, F>(f: F) -> Result<T, HashError>
where
    T: Send + 'static,
    F: FnOnce(&mut Vec<Block>) -> T + Send + 'static,
{
    let pool = pool();
    let queued = Queued::join(&pool.waiting);
    let permit = pool.permits.clone().acquire_owned().await;
    drop(queued);
    let permit = permit.map_err(|e| HashError::Task(e.to_string()))?;
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let _permit = permit;
        let taken = pool.buffers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut memory = taken.unwrap_or_else(|| Vec::with_capacity(RESERVED_BLOCKS));
        let out = f(&mut memory);
        let mut idle = pool.buffers.lock().unwrap_or_else(|p| p.into_inner());
        if pool.waiting.load(Ordering::SeqCst) > 0 {
            idle.push(memory);
        } else {
            // Nobody queues: back to the operating system (see the module note).
            idle.clear();
        }
        out
    })
    .await
    .map_err(|e| HashError::Task(e.to_string()))
}

fn argon2_err(e: impl std::fmt::Display) -> HashError {
    HashError::Argon2(e.to_string())
}

/// `params.block_count()` blocks of `memory`, grown the first time (and only if a stored hash
/// asks for more than the default).
fn blocks<'m>(memory: &'m mut Vec<Block>, params: &Params) -> Result<&'m mut [Block], HashError> {
    let needed = params.block_count();
    if needed > MAX_MEMORY_BLOCKS {
        return Err(HashError::Stored(format!("memory cost of {needed} KiB")));
    }
    if memory.len() < needed {
        memory.resize(needed, Block::default());
    }
    Ok(&mut memory[..needed])
}

fn hash_with(memory: &mut Vec<Block>, password: &[u8], salt: &[u8]) -> Result<String, HashError> {
    let params = Params::default();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2
        .hash_password_into_with_memory(password, salt, &mut out, blocks(memory, &params)?)
        .map_err(argon2_err)?;
    let phc = PasswordHash {
        algorithm: ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(argon2_err)?,
        salt: Some(Salt::new(salt).map_err(argon2_err)?),
        hash: Some(Output::new(&out).map_err(argon2_err)?),
    };
    Ok(phc.to_string())
}

fn verify_with(memory: &mut Vec<Block>, password: &[u8], stored: &str) -> Result<bool, HashError> {
    let stored_err = |e: &dyn std::fmt::Display| HashError::Stored(e.to_string());
    let phc = PasswordHash::new(stored).map_err(|e| stored_err(&e))?;
    let algorithm = Algorithm::try_from(phc.algorithm.as_str()).map_err(|e| stored_err(&e))?;
    let version = phc
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(|e| stored_err(&e))?
        .unwrap_or_default();
    let params = Params::try_from(&phc).map_err(|e| stored_err(&e))?;
    let (Some(salt), Some(expected)) = (&phc.salt, &phc.hash) else {
        return Err(HashError::Stored("no salt or no hash".into()));
    };
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params.clone())
        .hash_password_into_with_memory(password, salt.as_ref(), &mut out, blocks(memory, &params)?)
        .map_err(argon2_err)?;
    // `Output` compares in constant time.
    Ok(Output::new(&out).map_err(argon2_err)? == *expected)
}

/// The PHC string of a new Argon2id hash (default parameters, random salt).
pub async fn hash(password: String) -> Result<String, HashError> {
    let salt: [u8; SALT_LEN] = rand::random();
    with_memory(move |memory| hash_with(memory, password.as_bytes(), &salt)).await?
}

/// Checks `password` against `stored`, or against a fixed dummy hash when there is no account,
/// so that "no such user" and "wrong password" cost the same.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, HashError> {
    with_memory(move |memory| match stored {
        Some(stored) => verify_with(memory, password.as_bytes(), &stored),
        None => {
            let dummy = dummy_hash(memory)?;
            verify_with(memory, password.as_bytes(), dummy).map(|_| false)
        }
    })
    .await?
}

fn dummy_hash(memory: &mut Vec<Block>) -> Result<&'static str, HashError> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(hash) = DUMMY.get() {
        return Ok(hash);
    }
    let hash = hash_with(memory, b"timing-equalizer", b"fixed-dummy-salt")?;
    Ok(DUMMY.get_or_init(|| hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_standard_phc_strings_the_argon2_crate_verifies() {
        use argon2::PasswordVerifier;
        let stored = hash("correct horse".into()).await.unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", stored.as_str())
                .is_ok()
        );
        assert!(
            verify("correct horse".into(), Some(stored.clone()))
                .await
                .unwrap()
        );
        assert!(!verify("wrong horse".into(), Some(stored)).await.unwrap());
        // Hashes made by the crate itself (existing accounts) verify too.
        use argon2::PasswordHasher;
        let theirs = Argon2::default()
            .hash_password(b"battery staple")
            .unwrap()
            .to_string();
        assert!(verify("battery staple".into(), Some(theirs)).await.unwrap());
        assert!(!verify("timing-equalizer".into(), None).await.unwrap());
        assert!(verify("x".into(), Some("not a hash".into())).await.is_err());
    }

    #[test]
    fn buffers_are_reserved_beyond_the_heap_ceiling_of_glibc_malloc() {
        assert!(RESERVED_BLOCKS * std::mem::size_of::<Block>() > 32 << 20);
        assert!(RESERVED_BLOCKS >= Params::default().block_count());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_burst_never_holds_more_memory_than_the_workers_and_idle_holds_none() {
        let stored = hash("pw".into()).await.unwrap();
        let burst = (0..24).map(|_| {
            let stored = stored.clone();
            tokio::spawn(async move {
                let ok = verify("nope".into(), Some(stored)).await;
                let held = pool().buffers.lock().unwrap().len();
                (ok, held)
            })
        });
        for result in futures::future::join_all(burst).await {
            let (ok, held) = result.unwrap();
            assert!(!ok.unwrap());
            assert!(
                held <= workers(),
                "{held} buffers for {} workers",
                workers()
            );
        }
        // Other tests hash in this process too: once nothing queues, everything is given back.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !pool().buffers.lock().unwrap().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "memory kept while idle"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}
