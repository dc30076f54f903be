// A worker cannot pick `T`: tasks take concrete types.

#[taskq::task]
pub async fn count<T: serde::Serialize>(items: Vec<T>) -> usize {
    items.len()
}

fn main() {}
