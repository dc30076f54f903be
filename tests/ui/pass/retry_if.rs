// `retry_if` takes a function of `&E` or a closure, with any `Result` spelling.

#[derive(Debug)]
pub enum CallError {
    Unavailable,
    BadInput,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

fn is_transient(error: &CallError) -> bool {
    matches!(error, CallError::Unavailable)
}

#[taskq::task(name = "tasks.call", max_retries = 5, retry_if = is_transient)]
pub async fn call(x: i64) -> Result<i64, CallError> {
    if x < 0 {
        return Err(CallError::BadInput);
    }
    Ok(x)
}

#[taskq::task(
    name = "tasks.read",
    max_retries = 2,
    retry_backoff = 0.5,
    retry_if = |e| e.kind() == std::io::ErrorKind::TimedOut
)]
pub async fn read(path: String) -> std::io::Result<String> {
    Ok(path)
}

fn main() {}
