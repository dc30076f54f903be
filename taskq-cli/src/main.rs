//! The `taskq` binary: see the `taskq_cli` library.

fn main() -> std::process::ExitCode {
    taskq_cli::main()
}
