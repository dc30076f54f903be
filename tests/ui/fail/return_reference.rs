// The result is serialized and sent back: it must be owned.

#[taskq::task]
pub async fn status() -> &'static str {
    "ok"
}

fn main() {}
