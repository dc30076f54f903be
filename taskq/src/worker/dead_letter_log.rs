//! Log lines for dead-lettered messages, limited so that a burst cannot flood the log: a
//! worker fed 10,000 garbage messages writes a line for each of the first few every window,
//! then, once the window is over, one line saying how many more it did not write. Every dead
//! letter stays readable in the dead-letter list with its reason.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Lines written per window before the rest are only counted.
const LINES_PER_WINDOW: u32 = 10;

/// How long a window lasts.
const WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(super) struct DeadLetterLog {
    per_window: u32,
    window: Duration,
    state: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    written: u32,
    /// Lines not written in this window, reported when it ends.
    held_back: u64,
    /// Whether the end-of-window report is scheduled.
    report_due: bool,
}

impl DeadLetterLog {
    pub(super) fn new() -> Arc<Self> {
        Self::with_limits(LINES_PER_WINDOW, WINDOW)
    }

    fn with_limits(per_window: u32, window: Duration) -> Arc<Self> {
        Arc::new(Self {
            per_window,
            window,
            state: Mutex::new(Window {
                started: Instant::now(),
                written: 0,
                held_back: 0,
                report_due: false,
            }),
        })
    }

    /// Writes the log line `write` makes, unless this window's lines are used up; then the
    /// line is counted, and the count is reported when the window ends.
    pub(super) fn log(self: &Arc<Self>, write: impl FnOnce()) {
        let mut state = self.state.lock().expect("dead-letter log lock");
        if !state.report_due && state.started.elapsed() >= self.window {
            state.started = Instant::now();
            state.written = 0;
        }
        if state.written < self.per_window {
            state.written += 1;
            drop(state);
            return write();
        }
        state.held_back += 1;
        if !state.report_due {
            state.report_due = true;
            let left = self.window.saturating_sub(state.started.elapsed());
            let log = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(left).await;
                log.report();
            });
        }
    }

    /// Reports the lines held back so far and starts a new window. The worker calls it when
    /// it stops too, so no count is lost.
    pub(super) fn report(&self) {
        let held_back = {
            let mut state = self.state.lock().expect("dead-letter log lock");
            state.report_due = false;
            state.started = Instant::now();
            state.written = 0;
            std::mem::take(&mut state.held_back)
        };
        if held_back > 0 {
            tracing::error!(
                count = held_back,
                "{held_back} more messages were dead-lettered without a line each in the last \
                 {:.0} s; client.broker().dead_letters(n) lists them with their reasons",
                self.window.as_secs_f64()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn writes_the_first_lines_of_a_window_and_counts_the_rest() {
        let log = DeadLetterLog::with_limits(3, Duration::from_millis(50));
        let written = AtomicU32::new(0);
        for _ in 0..100 {
            log.log(|| {
                written.fetch_add(1, Ordering::Relaxed);
            });
        }
        assert_eq!(written.load(Ordering::Relaxed), 3);
        assert_eq!(log.state.lock().unwrap().held_back, 97);
        tokio::time::sleep(Duration::from_millis(80)).await; // the window's report ran
        assert_eq!(log.state.lock().unwrap().held_back, 0);
        log.log(|| {
            written.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(
            written.load(Ordering::Relaxed),
            4,
            "a new window writes again"
        );
    }
}
