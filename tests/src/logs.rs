//! Reading the logs of the processes a test started.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// The last `lines` lines of the file at `path` (at most its last 64 KiB),
/// or a note saying why it could not be read.
pub fn file_tail(path: &Path, lines: usize) -> String {
    const MAX: u64 = 64 * 1024;
    let read = || -> io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(MAX)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

/// How many times `needle` occurs in the file at `path` so far (0 while it does not exist).
pub fn count_in_file(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path).map_or(0, |text| text.matches(needle).count())
}

/// Waits (blocking) until `needle` occurs at least `times` times in the log at `path`, e.g.
/// until a worker has started as many tasks (`"] received"`).
///
/// # Panics
///
/// After `timeout`, with the log's tail.
pub fn wait_for_log(path: &Path, needle: &str, times: usize, timeout: std::time::Duration) {
    let what = format!("{times} × {needle:?} in {}", path.display());
    let deadline = std::time::Instant::now() + timeout;
    while count_in_file(path, needle) < times {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; log tail:\n{}",
            file_tail(path, 20)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_is_waited_on_until_the_line_shows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.log");
        assert_eq!(count_in_file(&path, "received"), 0);
        std::fs::write(&path, "Task a[1] received\nTask a[2] received\n").unwrap();
        wait_for_log(&path, "] received", 2, std::time::Duration::from_secs(1));
        let waited = std::panic::catch_unwind(|| {
            wait_for_log(
                &path,
                "] received",
                3,
                std::time::Duration::from_millis(100),
            )
        });
        assert!(waited.is_err());
    }
}
