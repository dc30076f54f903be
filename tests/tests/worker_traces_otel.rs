//! One trace across the queue (taskq's `opentelemetry` feature): a task sent inside a traced
//! span carries that span's W3C context in its `traceparent` header, and the worker's `task`
//! span continues it; a task sent outside any trace starts its own; a task sent by Python
//! Celery instrumented by OpenTelemetry runs in the Python trace, and a Python worker so
//! instrumented runs a taskq call in the taskq trace. The spans are exported in
//! memory, through `tracing-opentelemetry`, as an application would export them.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::{SpanId, TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

use taskq::{AsyncResult, Client, Options};
use taskq_tests::python::{PythonEnv, CELERY_OTEL};
use taskq_tests::worker::{client, query, RunningWorker};
use taskq_tests::RedisServer;

const WAIT: Duration = Duration::from_secs(10);

#[taskq::task(name = "test.traces_otel.echo", queue = "test-traces-otel")]
async fn echo(n: u32) -> u32 {
    n
}

/// The exporter every span of this test binary ends in, installed once: the worker's tasks
/// run on the runtime's threads, so the subscriber is the global one.
fn exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("taskq-tests"));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");
        exporter
    })
}

/// The trace id and span id of `span`, a span the OpenTelemetry layer tracks.
fn ids(span: &tracing::Span) -> (TraceId, SpanId) {
    let cx = span.context();
    let context = cx.span().span_context().clone();
    (context.trace_id(), context.span_id())
}

/// The exported `task` span of the run of task `id`.
fn task_span(id: &str) -> SpanData {
    let spans = exporter().get_finished_spans().expect("the exporter reads");
    let mut runs: Vec<SpanData> = spans
        .into_iter()
        .filter(|span| span.name == "task")
        .filter(|span| {
            span.attributes
                .iter()
                .any(|kv| kv.key.as_str() == "id" && kv.value.as_str() == id)
        })
        .collect();
    assert_eq!(runs.len(), 1, "one task span for {id}");
    runs.remove(0)
}

async fn send(client: &Client, n: u32) -> AsyncResult<u32> {
    client.send(&echo, (n,), Options::new()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_sent_in_a_trace_runs_in_it_and_one_sent_outside_starts_its_own() {
    exporter();
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let request = tracing::info_span!("request");
    let (trace_id, span_id) = ids(&request);
    assert_ne!(trace_id, TraceId::INVALID, "the producer's span is traced");

    let traced = send(&client, 1).instrument(request.clone()).await;
    let untraced = send(&client, 2).await;
    let raw: Vec<String> = query(&server.url(), &["LRANGE", "test-traces-otel", "0", "-1"]);
    let traceparent = format!("\"traceparent\": \"00-{trace_id}-{span_id}-01\"");
    assert_eq!(
        raw.iter().filter(|m| m.contains(&traceparent)).count(),
        1,
        "only the traced call carries the request's context: {raw:#?}"
    );

    let worker = RunningWorker::start(&client, |b| b.queues(["test-traces-otel"]));
    assert_eq!(traced.get(WAIT).await.unwrap(), 1);
    assert_eq!(untraced.get(WAIT).await.unwrap(), 2);
    worker.stop().await;
    drop(request);

    let run = task_span(traced.id());
    assert_eq!(run.span_context.trace_id(), trace_id);
    assert_eq!(run.parent_span_id, span_id);
    assert!(
        run.parent_span_is_remote,
        "its parent came through the queue"
    );
    let alone = task_span(untraced.id());
    assert_ne!(alone.span_context.trace_id(), trace_id);
    assert_eq!(alone.parent_span_id, SpanId::INVALID);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_sent_by_instrumented_python_celery_runs_in_the_python_trace() {
    exporter();
    let python = PythonEnv::load(CELERY_OTEL).await;
    let server = RedisServer::start();
    let client = client(&server, |_| {});
    let worker = RunningWorker::start(&client, |b| b.queues(["test-traces-otel"]));

    let call = serde_json::json!({
        "task": "test.traces_otel.echo",
        "args": [7],
        "queue": "test-traces-otel",
    });
    let (broker, backend) = (server.url(), server.url_db(1));
    let sent = tokio::task::spawn_blocking(move || python.traced_send(&broker, &backend, &call))
        .await
        .expect("the Python producer runs");
    assert_eq!(sent["result"], 7, "{sent}");
    worker.stop().await;

    let python_trace = TraceId::from_hex(sent["trace_id"].as_str().unwrap()).unwrap();
    assert_ne!(python_trace, TraceId::INVALID);
    let run = task_span(sent["id"].as_str().unwrap());
    assert_eq!(run.span_context.trace_id(), python_trace);
    assert!(
        run.parent_span_is_remote,
        "its parent came through the queue"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_worker_instrumented_by_opentelemetry_continues_a_taskq_trace() {
    exporter();
    let python = PythonEnv::load(CELERY_OTEL).await;
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (broker, backend, log) = (
        server.url(),
        server.url_db(1),
        dir.path().join("celery.log"),
    );
    let queue = "test-traces-otel-py";
    let instrument = [("OTEL_INSTRUMENT", "1")];
    let _worker = tokio::task::spawn_blocking(move || {
        python.start_worker_with(&broker, &backend, &[queue], &log, &instrument)
    })
    .await
    .unwrap();
    let client = client(&server, |_| {});
    let request = tracing::info_span!("request");
    let (trace_id, span_id) = ids(&request);

    let options = Options::new().queue(queue);
    let sent = client
        .send_by_name("py.trace_ids", Vec::new(), Default::default(), options)
        .instrument(request.clone())
        .await
        .unwrap();
    let seen = sent.get(WAIT).await.unwrap();
    assert_eq!(seen["trace_id"], trace_id.to_string(), "{seen}");
    assert_eq!(seen["parent_span_id"], span_id.to_string(), "{seen}");
}
