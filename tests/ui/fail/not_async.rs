// A task must be an `async fn`.

#[taskq::task]
pub fn add(x: i64, y: i64) -> i64 {
    x + y
}

fn main() {}
