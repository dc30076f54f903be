//! Waiting on a condition instead of sleeping a fixed time.

use std::thread;
use std::time::{Duration, Instant};

/// Polls `condition` every 20 ms until it returns `true`.
///
/// # Panics
///
/// If `condition` is still `false` after `timeout`; the message says
/// "timed out after … waiting for {what}".
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_until_returns_when_true() {
        let mut n = 0;
        wait_until(Duration::from_secs(1), "n to reach 3", || {
            n += 1;
            n >= 3
        });
        assert_eq!(n, 3);
    }

    #[test]
    #[should_panic(expected = "timed out after")]
    fn wait_until_panics_on_timeout() {
        wait_until(Duration::from_millis(50), "never", || false);
    }
}
