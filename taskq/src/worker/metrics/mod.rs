//! The worker's Prometheus metrics: what it counts, and (in [`server`]) where it serves them.
//!
//! Off unless the worker is given an address ([`Config::metrics_addr`](crate::Config)): then
//! nothing is counted and every recording call is a test of an `Option`. Names follow
//! Prometheus's conventions (`taskq_` prefix, `_total` counters, `_seconds` durations), by
//! task name where a task is known:
//!
//! | metric | what |
//! |---|---|
//! | `taskq_tasks_received_total{task}` | tasks fetched to run here |
//! | `taskq_tasks_succeeded_total{task}`, `taskq_tasks_failed_total{task}` | runs that ended so |
//! | `taskq_tasks_retried_total{task}` | failed runs sent again for a retry |
//! | `taskq_tasks_revoked_total{task}` | revoked (before or while running) or expired |
//! | `taskq_tasks_dead_lettered_total{task}` | messages moved to the dead-letter list (`task=""` when it could not be read) |
//! | `taskq_task_runtime_seconds{task}` | how long runs took (histogram) |
//! | `taskq_task_wait_seconds{task}` | from the fetch to the start of the run: the wait for a slot or a rate-limit turn (histogram) |
//! | `taskq_tasks_running`, `taskq_messages_prefetched`, `taskq_worker_slots` | now: tasks running, messages held and not running, execution slots |
//! | `taskq_lease_renewals_total`, `taskq_recoveries_total` | messages whose lease this worker renewed; messages its recovery took back from dead workers |
//! | `taskq_broker_errors_total` | failed round trips to Redis (fetches, stores, acknowledgements, renewals) |
//!
//! Queue depths are the fleet's, not a worker's, so workers do not export them.

#[cfg(feature = "metrics")]
pub(super) mod server;

use std::sync::Arc;
use std::time::Duration;

/// The bound metrics address, ready to serve.
#[cfg(feature = "metrics")]
pub(super) type Listener = tokio::net::TcpListener;
/// Without the `metrics` feature there is nothing to serve.
#[cfg(not(feature = "metrics"))]
pub(super) type Listener = std::convert::Infallible;

/// Binds the metrics address `config` names, if any, before the worker starts: an address
/// that cannot be served fails the start rather than leaving a worker without its metrics.
/// Without the `metrics` feature, an address is refused.
pub(super) async fn listen(config: &crate::Config) -> crate::Result<Option<Listener>> {
    let Some(addr) = config.metrics_addr else {
        return Ok(None);
    };
    #[cfg(feature = "metrics")]
    return server::bind(addr).await.map(Some);
    #[cfg(not(feature = "metrics"))]
    Err(crate::Error::Config(format!(
        "metrics on {addr} need taskq's `metrics` feature, which this build leaves out"
    )))
}

/// Starts the part that serves the metrics on `listener`, among `parts`.
pub(super) fn serve(
    parts: &mut super::part::Parts,
    shared: Arc<super::Shared>,
    listener: Listener,
) {
    #[cfg(feature = "metrics")]
    parts.push(server::MetricsServer::start(shared, listener));
    #[cfg(not(feature = "metrics"))]
    {
        let _ = (parts, shared);
        match listener {}
    }
}

/// Where the worker's code records what happens; a no-op when metrics are off.
#[derive(Debug, Clone, Default)]
pub(super) struct Recorder(Option<Arc<imp::Metrics>>);

/// How a run ended, as the counters tell it.
#[derive(Debug, Clone, Copy)]
pub(super) enum Ending {
    Succeeded,
    Failed,
    Revoked,
}

impl Recorder {
    /// A recorder that counts, when `on` (and the `metrics` feature is built).
    pub(super) fn new(on: bool) -> Self {
        Self(on.then(imp::Metrics::new).flatten().map(Arc::new))
    }

    /// A task of `task` was fetched to run here.
    pub(super) fn received(&self, task: &'static str) {
        if let Some(m) = &self.0 {
            m.received(task);
        }
    }

    /// A run of `task` starts after `waited` since its fetch.
    pub(super) fn started(&self, task: &'static str, waited: Duration) {
        if let Some(m) = &self.0 {
            m.started(task, waited);
        }
    }

    /// A run of `task` that started ended after `ran`: `ended`, or `None` when it stopped
    /// without an outcome (shutdown put it back).
    pub(super) fn finished(&self, task: &'static str, ran: Duration, ended: Option<Ending>) {
        if let Some(m) = &self.0 {
            m.finished(task, ran, ended);
        }
    }

    /// A task of `task` ended without running (revoked or expired before its start).
    pub(super) fn settled_unrun(&self, task: &str, ended: Ending) {
        if let Some(m) = &self.0 {
            m.ended(task, ended);
        }
    }

    /// A failed run of `task` is sent again.
    pub(super) fn retried(&self, task: &'static str) {
        if let Some(m) = &self.0 {
            m.retried(task);
        }
    }

    /// A message of `task` (`""`: unreadable) went to the dead-letter list.
    pub(super) fn dead_lettered(&self, task: &str) {
        if let Some(m) = &self.0 {
            m.dead_lettered(task);
        }
    }

    /// `count` leases were renewed.
    pub(super) fn renewed(&self, count: usize) {
        if let Some(m) = &self.0 {
            m.renewed(count);
        }
    }

    /// Recovery took `count` messages back from dead or frozen workers.
    pub(super) fn recovered(&self, count: usize) {
        if let Some(m) = &self.0 {
            m.recovered(count);
        }
    }

    /// A round trip to the broker or the result store failed.
    pub(super) fn broker_error(&self) {
        if let Some(m) = &self.0 {
            m.broker_error();
        }
    }
}

#[cfg(feature = "metrics")]
mod imp {
    use std::borrow::Cow;
    use std::time::Duration;

    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::Registry;

    use super::Ending;

    /// `{task="<name>"}`; the name borrowed when it is a registered task's, so that counting
    /// allocates nothing.
    type TaskLabel = [(&'static str, Cow<'static, str>); 1];
    type PerTask<M> = Family<TaskLabel, M>;
    type PerTaskHistogram = Family<TaskLabel, Histogram, fn() -> Histogram>;

    /// Seconds, from 1 ms to about 10 min.
    const SECONDS_BUCKETS: [f64; 14] = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 600.0,
    ];

    fn seconds_histogram() -> Histogram {
        Histogram::new(SECONDS_BUCKETS)
    }

    fn label(task: &'static str) -> TaskLabel {
        [("task", Cow::Borrowed(task))]
    }

    fn owned_label(task: &str) -> TaskLabel {
        [("task", Cow::Owned(task.to_owned()))]
    }

    #[derive(Debug)]
    pub(in crate::worker) struct Metrics {
        registry: Registry,
        received: PerTask<Counter>,
        succeeded: PerTask<Counter>,
        failed: PerTask<Counter>,
        retried: PerTask<Counter>,
        revoked: PerTask<Counter>,
        dead_lettered: PerTask<Counter>,
        runtime: PerTaskHistogram,
        wait: PerTaskHistogram,
        running: Gauge,
        pub(in crate::worker) prefetched: Gauge,
        pub(in crate::worker) slots: Gauge,
        lease_renewals: Counter,
        recoveries: Counter,
        broker_errors: Counter,
    }

    impl Metrics {
        pub(super) fn new() -> Option<Self> {
            let mut registry = Registry::with_prefix("taskq");
            let per_task = |registry: &mut Registry, name: &str, help: &str| {
                let family = PerTask::<Counter>::default();
                registry.register(name, help, family.clone());
                family
            };
            let received = per_task(&mut registry, "tasks_received", "Tasks fetched to run here");
            let succeeded = per_task(&mut registry, "tasks_succeeded", "Runs that succeeded");
            let failed = per_task(&mut registry, "tasks_failed", "Runs that failed");
            let retried = per_task(&mut registry, "tasks_retried", "Failed runs sent again");
            let revoked = per_task(
                &mut registry,
                "tasks_revoked",
                "Tasks revoked (before or while running) or expired",
            );
            let dead_lettered = per_task(
                &mut registry,
                "tasks_dead_lettered",
                "Messages moved to the dead-letter list",
            );
            let runtime = PerTaskHistogram::new_with_constructor(seconds_histogram as fn() -> _);
            registry.register(
                "task_runtime_seconds",
                "How long runs took",
                runtime.clone(),
            );
            let wait = PerTaskHistogram::new_with_constructor(seconds_histogram as fn() -> _);
            registry.register(
                "task_wait_seconds",
                "From the fetch to the start of the run",
                wait.clone(),
            );
            let gauge = |registry: &mut Registry, name: &str, help: &str| {
                let gauge = Gauge::default();
                registry.register(name, help, gauge.clone());
                gauge
            };
            let running = gauge(&mut registry, "tasks_running", "Tasks running now");
            let prefetched = gauge(
                &mut registry,
                "messages_prefetched",
                "Messages held and not running",
            );
            let slots = gauge(&mut registry, "worker_slots", "Execution slots");
            let counter = |registry: &mut Registry, name: &str, help: &str| {
                let counter = Counter::default();
                registry.register(name, help, counter.clone());
                counter
            };
            let lease_renewals = counter(&mut registry, "lease_renewals", "Leases renewed");
            let recoveries = counter(
                &mut registry,
                "recoveries",
                "Messages taken back from dead or frozen workers",
            );
            let broker_errors = counter(
                &mut registry,
                "broker_errors",
                "Failed round trips to Redis",
            );
            Some(Self {
                registry,
                received,
                succeeded,
                failed,
                retried,
                revoked,
                dead_lettered,
                runtime,
                wait,
                running,
                prefetched,
                slots,
                lease_renewals,
                recoveries,
                broker_errors,
            })
        }

        pub(super) fn received(&self, task: &'static str) {
            self.received.get_or_create(&label(task)).inc();
        }

        pub(super) fn started(&self, task: &'static str, waited: Duration) {
            self.running.inc();
            let wait = self.wait.get_or_create(&label(task));
            wait.observe(waited.as_secs_f64());
        }

        pub(super) fn finished(&self, task: &'static str, ran: Duration, ended: Option<Ending>) {
            self.running.dec();
            let runtime = self.runtime.get_or_create(&label(task));
            runtime.observe(ran.as_secs_f64());
            if let Some(ended) = ended {
                self.count_ended(label(task), ended);
            }
        }

        pub(super) fn ended(&self, task: &str, ended: Ending) {
            self.count_ended(owned_label(task), ended);
        }

        fn count_ended(&self, label: TaskLabel, ended: Ending) {
            let family = match ended {
                Ending::Succeeded => &self.succeeded,
                Ending::Failed => &self.failed,
                Ending::Revoked => &self.revoked,
            };
            family.get_or_create(&label).inc();
        }

        pub(super) fn retried(&self, task: &'static str) {
            self.retried.get_or_create(&label(task)).inc();
        }

        pub(super) fn dead_lettered(&self, task: &str) {
            self.dead_lettered.get_or_create(&owned_label(task)).inc();
        }

        pub(super) fn renewed(&self, count: usize) {
            self.lease_renewals.inc_by(count as u64);
        }

        pub(super) fn recovered(&self, count: usize) {
            self.recoveries.inc_by(count as u64);
        }

        pub(super) fn broker_error(&self) {
            self.broker_errors.inc();
        }

        /// The OpenMetrics text of every metric.
        pub(in crate::worker) fn encode(&self) -> String {
            let mut text = String::new();
            encode(&mut text, &self.registry).expect("writing to a String cannot fail");
            text
        }
    }
}

#[cfg(not(feature = "metrics"))]
mod imp {
    //! Without the `metrics` feature nothing is counted: [`Metrics::new`] gives none.

    use std::time::Duration;

    use super::Ending;

    #[derive(Debug)]
    pub(in crate::worker) enum Metrics {}

    impl Metrics {
        pub(super) fn new() -> Option<Self> {
            None
        }
        pub(super) fn received(&self, _: &'static str) {}
        pub(super) fn started(&self, _: &'static str, _: Duration) {}
        pub(super) fn finished(&self, _: &'static str, _: Duration, _: Option<Ending>) {}
        pub(super) fn ended(&self, _: &str, _: Ending) {}
        pub(super) fn retried(&self, _: &'static str) {}
        pub(super) fn dead_lettered(&self, _: &str) {}
        pub(super) fn renewed(&self, _: usize) {}
        pub(super) fn recovered(&self, _: usize) {}
        pub(super) fn broker_error(&self) {}
    }
}

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use super::*;

    #[test]
    fn off_counts_nothing() {
        let off = Recorder::new(false);
        off.received("tasks.add");
        assert!(off.0.is_none());
    }

    #[test]
    fn runs_are_counted_by_task_and_ending() {
        let on = Recorder::new(true);
        on.received("tasks.add");
        on.started("tasks.add", Duration::from_millis(3));
        on.finished(
            "tasks.add",
            Duration::from_millis(20),
            Some(Ending::Succeeded),
        );
        on.settled_unrun("tasks.gone", Ending::Revoked);
        on.dead_lettered("");
        on.renewed(3);
        let text = on.0.as_ref().unwrap().encode();
        for line in [
            "taskq_tasks_received_total{task=\"tasks.add\"} 1",
            "taskq_tasks_succeeded_total{task=\"tasks.add\"} 1",
            "taskq_tasks_revoked_total{task=\"tasks.gone\"} 1",
            "taskq_tasks_dead_lettered_total{task=\"\"} 1",
            "taskq_task_runtime_seconds_bucket{le=\"0.025\",task=\"tasks.add\"} 1",
            "taskq_task_wait_seconds_count{task=\"tasks.add\"} 1",
            "taskq_tasks_running 0",
            "taskq_lease_renewals_total 3",
            "# EOF",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
