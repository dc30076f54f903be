//! The seeds' web app: every endpoint answers in milliseconds, whatever the task's duration,
//! because it only sends the task (or reads its state) and returns.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use taskq::{AsyncResult, TaskState};

use crate::tasks::{generate_report, send_push_notification, summarise_campaign};

/// The app's routes.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
/// axum::serve(listener, taskq_examples::web::router()).await
/// # }
/// ```
pub fn router() -> Router {
    Router::new()
        .route("/push/{device_token}", get(push))
        .route("/start-report/{user_id}", post(start_report))
        .route("/task-status/{task_id}", get(task_status))
        .route("/campaign/{devices}", post(start_campaign))
}

/// `GET /push/{device_token}`: sends the notification task.
async fn push(Path(device_token): Path<String>) -> Result<Json<Value>, AppError> {
    let sent = send_push_notification.delay(device_token).await?;
    Ok(Json(
        json!({"message": "Notification sent", "task_id": sent.id()}),
    ))
}

/// `POST /start-report/{user_id}`: starts the report task, or answers with the one already
/// under way for that user (the task is unique).
async fn start_report(Path(user_id): Path<u64>) -> Result<Json<Value>, AppError> {
    let sent = generate_report.delay(user_id).await?;
    Ok(Json(json!({"task_id": sent.id(), "status": "processing"})))
}

/// `POST /campaign/{devices}`: a push to each of `devices` device tokens, in parallel, then
/// one summary once every push went out (a chord); answers with the summary's task id.
async fn start_campaign(Path(devices): Path<u32>) -> Result<Json<Value>, AppError> {
    let pushes = (1..=devices).map(|n| send_push_notification.s(format!("device-{n}")));
    let campaign = taskq::canvas::chord(taskq::canvas::group(pushes), summarise_campaign.partial());
    let summary = campaign.delay().await?;
    Ok(Json(
        json!({"task_id": summary.id(), "status": "processing", "devices": devices}),
    ))
}

/// `GET /task-status/{task_id}`: the task's state, with its result or error once finished.
async fn task_status(Path(task_id): Path<String>) -> Result<Response, AppError> {
    let meta = AsyncResult::<Value>::from_id(task_id)?.meta().await?;
    let body = match meta.status {
        // The result as stored, exactly (a Python big integer too), with no serde_json feature.
        TaskState::Success => {
            let body = Completed {
                status: "completed",
                result: meta.result,
            };
            return Ok(Json(body).into_response());
        }
        TaskState::Failure | TaskState::Revoked => {
            let error = meta
                .failure_info()
                .map(|f| f.to_string())
                .unwrap_or_default();
            json!({"status": "failed", "error": error})
        }
        other => json!({"status": other.as_str()}),
    };
    Ok(Json(body).into_response())
}

/// The answer for a finished task.
#[derive(serde::Serialize)]
struct Completed {
    status: &'static str,
    result: taskq::protocol::RawJson,
}

/// A taskq error as a JSON 503: the broker or result store is unavailable.
struct AppError(taskq::Error);

impl From<taskq::Error> for AppError {
    fn from(e: taskq::Error) -> Self {
        Self(e)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        tracing::error!(error = %self.0, "request failed");
        let body = Json(json!({"error": self.0.to_string()}));
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}
