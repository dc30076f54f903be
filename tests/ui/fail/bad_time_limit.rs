// `time_limit` is a positive number of seconds.

#[taskq::task(time_limit = "30s")]
pub async fn slow_report(user_id: u64) -> u64 {
    user_id
}

fn main() {}
