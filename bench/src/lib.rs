//! The parts of the benchmark that its worker child process needs too: the tasks (which both
//! must register under the same names), the worker mode itself, and readings of a process's
//! memory and CPU time from `/proc`.

pub mod procfs;
pub mod tasks;
pub mod worker_process;
