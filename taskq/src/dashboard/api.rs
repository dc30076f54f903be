//! The dashboard's routes: the page and its assets, the JSON it reads (`GET api/state`,
//! `GET api/tasks/{id}`) and the actions (`POST api/...`, each requiring the header
//! `x-taskq-action: 1`, see the module docs of [`super`]).
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the page |
//! | `GET /api/state` | workers, queues (as the monitor last sampled them) and their history, rates, recent and failed tasks, scheduled tasks, dead letters |
//! | `GET /api/tasks/{id}` | what the events said of a task, and its record in the result store |
//! | `POST /api/tasks/{id}/revoke[?terminate=true]` | revokes it (and ends it if running) |
//! | `POST /api/tasks/{id}/retry` | sends the same call again, under a new id, from its record in the result store (which needs `result_extended`) |
//! | `POST /api/dead-letters/requeue` | puts every dead letter back on its queue |
//! | `POST /api/dead-letters/{id}/requeue` | puts task `id`'s dead letter back on its queue |
//! | `POST /api/queues/{name}/purge`, `.../pause`, `.../resume` | as `taskq purge` and `taskq queues pause/resume` |

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::fleet::{FleetView, TaskSeen};
use super::monitor::{ScheduledTask, Seen};
use super::page;
use crate::broker::{DeadLetter, DeadLetterMatch};
use crate::control::ControlOptions;
use crate::protocol::TaskMessage;
use crate::{unix_now, Client};

/// Most tasks listed, and most dead letters read, per state request.
const LIST_LIMIT: usize = 100;

/// The header every action must carry (see the module docs of [`super`]).
const ACTION_HEADER: &str = "x-taskq-action";

/// What every route shares.
#[derive(Debug, Clone)]
struct App {
    client: Client,
    seen: Arc<Seen>,
}

pub(super) fn router(client: Client, seen: Arc<Seen>) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/app.js", get(page::script))
        .route("/app.css", get(page::style))
        .route("/api/state", get(state))
        .route("/api/tasks/{id}", get(task))
        .route("/api/tasks/{id}/revoke", post(revoke))
        .route("/api/tasks/{id}/retry", post(retry))
        .route("/api/dead-letters/requeue", post(requeue_all))
        .route("/api/dead-letters/{id}/requeue", post(requeue_one))
        .route("/api/queues/{name}/{action}", post(queue_action))
        .with_state(App { client, seen })
}

/// An action's or a read's failure, as JSON `{"error": ...}` with a status.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

impl From<crate::Error> for Failure {
    fn from(e: crate::Error) -> Self {
        Self(StatusCode::BAD_GATEWAY, e.to_string())
    }
}

/// Refuses a request without the action header.
fn require_action_header(headers: &HeaderMap) -> Result<(), Failure> {
    match headers.get(ACTION_HEADER).map(|v| v.as_bytes()) {
        Some(b"1") => Ok(()),
        _ => Err(Failure(
            StatusCode::FORBIDDEN,
            format!("an action needs the header {ACTION_HEADER}: 1"),
        )),
    }
}

/// Everything the page shows.
#[derive(Serialize)]
struct StateView {
    broker: String,
    now: f64,
    #[serde(flatten)]
    fleet: FleetView,
    scheduled: Vec<ScheduledTask>,
    dead_letters: Vec<DeadLetterView>,
}

/// A dead letter as shown: its task, when it could be read, and why it is there.
#[derive(Serialize)]
struct DeadLetterView {
    task_id: Option<String>,
    name: Option<String>,
    args: Option<String>,
    kwargs: Option<String>,
    queue: String,
    reason: String,
    time: f64,
    /// The start of the stored text, when it is not a task message.
    payload: Option<String>,
}

impl DeadLetterView {
    fn new(entry: DeadLetter) -> Self {
        let message = TaskMessage::decode(&entry.payload).ok();
        let payload = match message {
            Some(_) => None,
            None => Some(entry.payload.chars().take(500).collect()),
        };
        Self {
            task_id: message
                .as_ref()
                .map(|m| m.id.clone())
                .or_else(|| entry.task_id()),
            name: message.as_ref().map(|m| m.task.clone()),
            args: message.as_ref().map(|m| {
                let items: Vec<&str> = m.args.iter().map(|a| a.as_str()).collect();
                format!("[{}]", items.join(", "))
            }),
            kwargs: message
                .as_ref()
                .map(|m| serde_json::to_string(&m.kwargs).unwrap_or_default()),
            queue: entry.queue,
            reason: entry.reason,
            time: entry.time,
            payload,
        }
    }
}

/// The page's state. The queues' counts come from the monitor's latest sample (counting
/// them reads every held, parked and dead message); the paused set and the newest dead
/// letters are read now, so an action's outcome shows at the next refresh.
async fn state(State(app): State<App>) -> Result<Json<StateView>, Failure> {
    let broker = app.client.broker();
    let (paused, dead) = tokio::join!(broker.paused_queues(), broker.dead_letters(LIST_LIMIT));
    let (paused, dead) = (paused?, dead?);
    let now = unix_now();
    let fleet = app.seen.fleet().view(&paused, LIST_LIMIT, now);
    Ok(Json(StateView {
        broker: broker.describe(),
        now,
        fleet,
        scheduled: app.seen.scheduled().clone(),
        dead_letters: dead.into_iter().map(DeadLetterView::new).collect(),
    }))
}

/// A task: what its events said, and its record in the result store.
#[derive(Serialize)]
struct TaskView {
    id: String,
    seen: Option<TaskSeen>,
    record: Option<Box<RawValue>>,
}

async fn task(State(app): State<App>, Path(id): Path<String>) -> Result<Response, Failure> {
    let seen = app.seen.fleet().task_seen(&id);
    let meta = app.client.backend().get(&id).await?;
    let record = meta.and_then(|meta| RawValue::from_string(meta.to_json()).ok());
    if seen.is_none() && record.is_none() {
        return Err(Failure(
            StatusCode::NOT_FOUND,
            format!("no task {id} seen, and no result stored for it"),
        ));
    }
    let view = TaskView { id, seen, record };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(view)).into_response())
}

#[derive(serde::Deserialize)]
struct RevokeQuery {
    #[serde(default)]
    terminate: bool,
}

async fn revoke(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<RevokeQuery>,
) -> Result<Json<Value>, Failure> {
    require_action_header(&headers)?;
    if query.terminate {
        app.client.terminate(&id).await?;
    } else {
        app.client.revoke(&id).await?;
    }
    tracing::info!(task_id = %id, terminate = query.terminate, "dashboard: revoked");
    Ok(Json(json!({"revoked": id, "terminate": query.terminate})))
}

/// Sends task `id`'s call again (its name, arguments and queue as its record keeps them),
/// as Sidekiq's and BullMQ's boards retry a failed job. The record has them only when the
/// worker that stored it had `result_extended` on (Celery's setting, `TASKQ_RESULT_EXTENDED`).
async fn retry(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, Failure> {
    require_action_header(&headers)?;
    let no_call = || {
        Failure(
            StatusCode::CONFLICT,
            format!(
                "the result store keeps no call for task {id}: a worker stores one with \
                 result_extended (TASKQ_RESULT_EXTENDED=true, Celery's result_extended)"
            ),
        )
    };
    let meta = app.client.backend().get(&id).await?.ok_or_else(no_call)?;
    let call = meta.extended.ok_or_else(no_call)?;
    let name = call.name.ok_or_else(no_call)?;
    let args = call.args.to_items().ok_or_else(no_call)?;
    let kwargs = if call.kwargs.is_null() {
        crate::protocol::RawObject::new()
    } else {
        call.kwargs.to_object().ok_or_else(no_call)?
    };
    let mut options = crate::Options::new();
    if let Some(queue) = call.queue {
        options = options.queue(queue);
    }
    let sent = app
        .client
        .send_by_name_raw(&name, args, kwargs, options)
        .await?;
    tracing::info!(task_id = %id, new_id = %sent.id(), "dashboard: retried");
    Ok(Json(json!({"retried": id, "id": sent.id()})))
}

async fn requeue_all(State(app): State<App>, headers: HeaderMap) -> Result<Json<Value>, Failure> {
    require_action_header(&headers)?;
    let moved = app
        .client
        .broker()
        .requeue_dead_letters(u32::MAX as usize)
        .await?;
    tracing::info!(moved, "dashboard: requeued the dead letters");
    Ok(Json(json!({"requeued": moved})))
}

async fn requeue_one(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, Failure> {
    require_action_header(&headers)?;
    let which = DeadLetterMatch::TaskId(id.clone());
    let moved = app
        .client
        .broker()
        .requeue_dead_letters_matching(1, &which)
        .await?;
    if moved == 0 {
        return Err(Failure(
            StatusCode::NOT_FOUND,
            format!("no dead letter of task {id} (requeued already?)"),
        ));
    }
    tracing::info!(task_id = %id, "dashboard: requeued a dead letter");
    Ok(Json(json!({"requeued": moved})))
}

async fn queue_action(
    State(app): State<App>,
    headers: HeaderMap,
    Path((name, action)): Path<(String, String)>,
) -> Result<Json<Value>, Failure> {
    require_action_header(&headers)?;
    let options = ControlOptions::new();
    let outcome = match action.as_str() {
        "purge" => {
            let purged = app
                .client
                .broker()
                .purge(std::slice::from_ref(&name))
                .await?;
            json!({"purged": purged})
        }
        "pause" => {
            let replies = app.client.control().pause_queue(&name, &options).await?;
            json!({"paused": name, "replies": replies.len()})
        }
        "resume" => {
            let replies = app.client.control().resume_queue(&name, &options).await?;
            json!({"resumed": name, "replies": replies.len()})
        }
        other => {
            return Err(Failure(
                StatusCode::NOT_FOUND,
                format!("no queue action {other:?}: purge, pause or resume"),
            ))
        }
    };
    tracing::info!(queue = %name, %action, "dashboard: queue action");
    Ok(Json(outcome))
}
