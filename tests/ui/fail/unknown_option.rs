// `serializer` is a Celery option taskq does not have (it speaks JSON only).

#[taskq::task(name = "tasks.add", serializer = "pickle")]
pub async fn add(x: i64, y: i64) -> i64 {
    x + y
}

fn main() {}
