// `name` is a string literal.

#[taskq::task(name = tasks.add)]
pub async fn add(x: i64, y: i64) -> i64 {
    x + y
}

fn main() {}
