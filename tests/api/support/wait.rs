//! Waiting for something to happen without sleeping a fixed time: poll a condition until it
//! holds or a deadline passes, and free loopback ports for servers the tests start.

use std::fmt::Display;
use std::time::Duration;

use tokio::time::Instant;

/// How often a condition is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// A loopback port nobody listens on right now, for a server a test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// What a condition of [`wait_until`] returns: the value once the condition holds, otherwise
/// `None`, `false` or an `Err` describing what was seen instead (reported on timeout).
pub trait Reached<T> {
    fn reached(self) -> Result<T, String>;
}

impl<T> Reached<T> for Option<T> {
    fn reached(self) -> Result<T, String> {
        self.ok_or_else(String::new)
    }
}

impl Reached<()> for bool {
    fn reached(self) -> Result<(), String> {
        if self { Ok(()) } else { Err(String::new()) }
    }
}

impl<T, E: Display> Reached<T> for Result<T, E> {
    fn reached(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

/// Polls `condition` until it holds and returns its value; `Err` with the last state seen
/// once `deadline` has passed. The condition is always tried at least once.
pub async fn poll_until<T, R: Reached<T>>(
    deadline: Duration,
    mut condition: impl AsyncFnMut() -> R,
) -> Result<T, String> {
    let end = Instant::now() + deadline;
    loop {
        let last = match condition().await.reached() {
            Ok(value) => return Ok(value),
            Err(last) => last,
        };
        if Instant::now() >= end {
            return Err(last);
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Polls `condition` until it holds and returns its value; once `deadline` has passed, fails
/// the test with the last state the condition reported (say what is awaited there, e.g.
/// `Err(format!("no reply mail yet: {mails:?}"))` or `.ok_or("the run to complete")`).
pub async fn wait_until<T, R: Reached<T>>(
    deadline: Duration,
    condition: impl AsyncFnMut() -> R,
) -> T {
    match poll_until(deadline, condition).await {
        Ok(value) => value,
        Err(last) if last.is_empty() => panic!("gave up after {deadline:?}"),
        Err(last) => panic!("gave up after {deadline:?}; last seen: {last}"),
    }
}
