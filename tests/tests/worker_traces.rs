//! Every run of a task is a `task` span carrying the task's name, id, retries and queue: the
//! task's own events and the worker's log lines about the run fall inside it. Read through a
//! subscriber of the test's own that records, for every event, the spans it was in.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, Once};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use taskq::Options;
use taskq_tests::worker::{client, RunningWorker};
use taskq_tests::RedisServer;

const WAIT: Duration = Duration::from_secs(10);

#[taskq::task(name = "test.traces.say", queue = "test-traces")]
async fn say(token: String) -> String {
    tracing::info!("the body says {token}");
    token
}

#[taskq::task(
    name = "test.traces.flaky",
    queue = "test-traces",
    max_retries = 1,
    retry_backoff = 0.01
)]
async fn flaky(token: String) -> Result<String, String> {
    let retries = taskq::request::current()
        .map(|r| r.retries)
        .unwrap_or_default();
    tracing::info!("attempt {retries} of {token}");
    if retries == 0 {
        return Err("first attempt fails".to_owned());
    }
    Ok(token)
}

// ---------------------------------------------------------------------------
// The capturing subscriber
// ---------------------------------------------------------------------------

/// A span as an event saw it: its name and its fields, as text.
#[derive(Debug, Clone)]
struct SpanSeen {
    name: &'static str,
    fields: BTreeMap<String, String>,
}

/// An event: its message and the spans it was in, innermost first.
#[derive(Debug, Clone)]
struct EventSeen {
    message: String,
    scope: Vec<SpanSeen>,
}

impl EventSeen {
    /// The `task` span it was in, if any.
    fn task_span(&self) -> Option<&SpanSeen> {
        self.scope.iter().find(|span| span.name == "task")
    }
}

static EVENTS: Mutex<Vec<EventSeen>> = Mutex::new(Vec::new());

/// The fields of a span or an event, each as text.
#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

/// Keeps each span's fields in its extensions, and records every event with its scope.
struct Capture;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let span = ctx.span(id).expect("a new span is in the registry");
        span.extensions_mut().insert(SpanSeen {
            name: span.name(),
            fields: fields.0,
        });
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let scope = ctx
            .event_scope(event)
            .into_iter()
            .flatten()
            .filter_map(|span| span.extensions().get::<SpanSeen>().cloned())
            .collect();
        let message = fields.0.remove("message").unwrap_or_default();
        EVENTS.lock().unwrap().push(EventSeen { message, scope });
    }
}

/// Installs the capturing subscriber once for the whole test binary: the worker's tasks
/// run on the runtime's threads, so a thread-local default would miss them.
fn capture() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let subscriber = tracing_subscriber::registry().with(Capture);
        tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");
    });
}

/// The events recorded so far whose message contains `needle`.
fn events_with(needle: &str) -> Vec<EventSeen> {
    let events = EVENTS.lock().unwrap();
    events
        .iter()
        .filter(|e| e.message.contains(needle))
        .cloned()
        .collect()
}

/// The one event whose message contains `needle`.
fn event_with(needle: &str) -> EventSeen {
    let mut found = events_with(needle);
    assert_eq!(found.len(), 1, "one event with {needle:?}: {found:#?}");
    found.remove(0)
}

/// The fields a task span of `name`'s run `id` carries, after `retries` retries.
fn expected_fields(name: &str, id: &str, retries: u32) -> BTreeMap<String, String> {
    [
        ("name", name),
        ("id", id),
        ("retries", &retries.to_string()),
        ("queue", "test-traces"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Runs one call of `task` with a fresh token, which it returns, on a worker of its own with
/// the spans captured; the call's id and the token.
async fn run_once<T>(task: &T) -> (String, String)
where
    T: taskq::Task<Args = (String,), Output = String>,
{
    capture();
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| b.queues(["test-traces"]));
    let token = uuid::Uuid::new_v4().to_string();
    let sent = client
        .send(task, (token.clone(),), Options::new())
        .await
        .unwrap();
    assert_eq!(sent.get(WAIT).await.unwrap(), token);
    worker.stop().await;
    (sent.id().to_owned(), token)
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn the_body_and_the_workers_lines_about_a_run_are_in_its_task_span() {
    let (id, token) = run_once(&say).await;
    let expected = expected_fields("test.traces.say", &id, 0);
    let said = event_with(&format!("the body says {token}"));
    let span = said
        .task_span()
        .expect("the body's event is in a task span");
    assert_eq!(span.fields, expected);
    for line in [format!("[{id}] received"), format!("[{id}] succeeded in")] {
        let event = event_with(&line);
        let span = event
            .task_span()
            .unwrap_or_else(|| panic!("{line:?} in a task span"));
        assert_eq!(span.fields, expected, "{line}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_attempt_of_a_retried_task_has_a_span_with_its_retries() {
    let (id, token) = run_once(&flaky).await;
    for retries in [0, 1] {
        let attempt = event_with(&format!("attempt {retries} of {token}"));
        let span = attempt.task_span().expect("each attempt is in a task span");
        assert_eq!(
            span.fields,
            expected_fields("test.traces.flaky", &id, retries)
        );
    }
}
