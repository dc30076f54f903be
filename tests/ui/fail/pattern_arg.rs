// Arguments are named (callers may pass them by keyword): no patterns.

#[taskq::task]
pub async fn add((x, y): (i64, i64)) -> i64 {
    x + y
}

fn main() {}
