//! The Redis keys the tests read, named by taskq's own builders ([`taskq::keys`]), so a test
//! that looks into Redis finds what the library writes under the default layout. Only the
//! tests that pin the layout itself against kombu's (`broker_wire.rs`, `fanout_wire.rs`,
//! `broker_priority_steps.rs`) spell the names out.

use taskq::keys::{BrokerKeys, ResultKeys};

/// The broker's keys with kombu's defaults (no prefix, priority steps 0, 3, 6, 9).
pub fn broker() -> BrokerKeys {
    BrokerKeys::default()
}

/// The key of task `id`'s result record, without a result key prefix.
pub fn result_meta(id: &str) -> String {
    ResultKeys::default().task_meta(id)
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_the_library_defaults() {
        assert_eq!(super::broker().unacked(), "unacked");
        assert_eq!(super::result_meta("abc"), "celery-task-meta-abc");
    }
}
