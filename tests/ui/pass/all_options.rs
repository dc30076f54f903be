// Every option at once.

use taskq::Task;

#[taskq::task(
    name = "tasks.resize",
    queue = "images",
    ignore_result,
    time_limit = 2.5,
    soft_time_limit = 1.5,
    max_retries = 3,
    retry_backoff = 0.5,
    rate_limit = "120/m",
    unique_for = 300,
    crate = "::taskq"
)]
pub async fn resize(r#type: String, width: u32) -> Result<(), String> {
    let _ = (r#type, width);
    Ok(())
}

#[taskq::task(ignore_result = false, time_limit = 30)]
pub async fn thumbnail() {}

const _: () = assert!(resize::OPTIONS.ignore_result);
const _: () = assert!(resize::OPTIONS.max_retries == 3);

fn main() {
    assert_eq!(resize::NAME, "tasks.resize");
    assert_eq!(resize::ARG_NAMES, ["type", "width"]);
    assert_eq!(resize::OPTIONS.queue, Some("images"));
    assert_eq!(resize::OPTIONS.time_limit_secs, Some(2.5));
    assert_eq!(resize::OPTIONS.soft_time_limit_secs, Some(1.5));
    assert_eq!(
        resize::OPTIONS.rate_limit,
        Some(taskq::rate_limit::RateLimit::per_second(2.0))
    );
    assert_eq!(resize::OPTIONS.unique_for_secs, Some(300.0));
    assert_eq!(thumbnail::OPTIONS.soft_time_limit_secs, None);
    assert_eq!(thumbnail::OPTIONS.rate_limit, None);
    assert!(!thumbnail::OPTIONS.ignore_result);
    assert_eq!(thumbnail::OPTIONS.time_limit_secs, Some(30.0));
}
