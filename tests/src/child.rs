//! [`ChildGuard`]: a spawned process that is killed when the guard is dropped.

use std::process::{Child, Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

/// Owns a spawned child process and kills it (SIGKILL) and waits for it when
/// dropped, so a failing test leaves no stray worker or server behind.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
}

impl ChildGuard {
    /// Guards an already spawned child.
    pub fn new(child: Child) -> ChildGuard {
        ChildGuard { child: Some(child) }
    }

    /// Spawns `cmd` and guards the child.
    ///
    /// # Panics
    ///
    /// If the process cannot be spawned; the message names the program.
    pub fn spawn(cmd: &mut Command) -> ChildGuard {
        match cmd.spawn() {
            Ok(child) => ChildGuard::new(child),
            Err(e) => panic!("cannot spawn {:?}: {e}", cmd.get_program()),
        }
    }

    fn inner(&self) -> &Child {
        self.child
            .as_ref()
            .expect("the child was taken out of its guard")
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.inner().id()
    }

    /// The child itself, e.g. to take its `stdout` pipe.
    pub fn child_mut(&mut self) -> &mut Child {
        self.child
            .as_mut()
            .expect("the child was taken out of its guard")
    }

    /// The exit status if the child has exited, `None` while it runs.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child_mut()
            .try_wait()
            .unwrap_or_else(|e| panic!("cannot poll child process: {e}"))
    }

    /// Waits up to `timeout` for the child to exit; `None` if it still runs.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends the signal named `signal` ("TERM", "INT", "QUIT", "KILL", …) to
    /// the child, through the shell's `kill` builtin.
    ///
    /// # Panics
    ///
    /// If `kill` fails (e.g. an unknown signal name, or a process that has
    /// already been reaped).
    pub fn signal(&self, signal: &str) {
        let pid = self.id().to_string();
        let status = Command::new("sh")
            .args(["-c", "kill -s \"$1\" \"$2\"", "sh", signal, &pid])
            .status()
            .unwrap_or_else(|e| panic!("cannot run sh to send SIG{signal}: {e}"));
        assert!(status.success(), "kill -s {signal} {pid} failed: {status}");
    }

    /// Sends SIGTERM (ask for a graceful shutdown).
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends SIGINT (as Ctrl-C would).
    pub fn interrupt(&self) {
        self.signal("INT");
    }

    /// Kills the child (SIGKILL) and waits for it. Harmless if it has
    /// already exited.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Takes the child out of the guard; it is no longer killed on drop.
    pub fn into_inner(mut self) -> Child {
        self.child
            .take()
            .expect("the child was taken out of its guard")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn child_guard_kills_on_drop() {
        let guard = ChildGuard::spawn(Command::new("sleep").arg("30"));
        let pid = guard.id();
        drop(guard);
        // A killed and reaped process no longer exists.
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn child_guard_signal_and_wait() {
        let mut guard = ChildGuard::spawn(Command::new("sleep").arg("30"));
        assert!(guard.try_wait().is_none());
        guard.terminate();
        let status = guard
            .wait_timeout(Duration::from_secs(5))
            .expect("sleep should exit on SIGTERM");
        assert!(!status.success());
    }
}
