//! The compiled examples of the `taskq-examples` package, and starting them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{ChildGuard, RedisServer};

/// The path of the compiled example `name` (e.g. `"worker"`) of the
/// `taskq-examples` package: `<target>/<profile>/examples/<name>`, found from
/// the running test binary (`<target>/<profile>/deps/<test>`).
///
/// `cargo test --workspace` builds the examples before running the tests.
///
/// # Panics
///
/// If the binary does not exist, saying how to build it.
pub fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe()
        .unwrap_or_else(|e| panic!("cannot locate the running test binary: {e}"));
    let mut dir = exe
        .parent()
        .unwrap_or_else(|| panic!("test binary {} has no parent dir", exe.display()))
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let path = dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        panic!(
            "example binary {} not found: run `cargo test --workspace` (which builds the \
             examples) or `cargo build -p taskq-examples --examples` first",
            path.display()
        );
    }
    path
}

/// Starts the compiled `worker` example against `server`, in `dir` (where its
/// `notification.log` lands), with `envs` set, appending its output to `dir/<log>`.
pub fn spawn_example_worker(
    server: &RedisServer,
    dir: &Path,
    log: &str,
    envs: &[(&str, &str)],
) -> ChildGuard {
    ChildGuard::spawn(&mut example_command("worker", server, dir, log, envs))
}

/// A command that runs the compiled example `name` against `server` (broker and results), in
/// `dir`, with `envs` set and its output appended to `dir/<log>`.
pub fn example_command(
    name: &str,
    server: &RedisServer,
    dir: &Path,
    log: &str,
    envs: &[(&str, &str)],
) -> Command {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(log))
        .expect("cannot open the example's log");
    let mut cmd = Command::new(example_binary(name));
    cmd.current_dir(dir)
        .env("TASKQ_BROKER_URL", server.url())
        .env("TASKQ_RESULT_BACKEND", server.url())
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(
        expected = "not found: run `cargo test --workspace` (which builds the examples)"
    )]
    fn example_binary_explains_how_to_build_a_missing_one() {
        example_binary("no-such-example");
    }

    #[test]
    fn example_binary_looks_beside_deps() {
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap();
        let message = std::panic::catch_unwind(|| example_binary("no-such-example"))
            .unwrap_err()
            .downcast::<String>()
            .unwrap();
        let expected = profile_dir.join("examples").join("no-such-example");
        assert!(
            message.contains(&expected.display().to_string()),
            "{message}"
        );
    }
}
