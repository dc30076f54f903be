// The matcher takes `&std::io::Error`, but the task's error is `String`.

fn is_transient(_: &std::io::Error) -> bool {
    true
}

#[taskq::task(name = "tasks.fetch", max_retries = 3, retry_if = is_transient)]
pub async fn fetch(url: String) -> Result<String, String> {
    Ok(url)
}

fn main() {}
