// Arguments come over the wire: they must be owned.

#[taskq::task]
pub async fn greet(name: &str) -> String {
    format!("hello {name}")
}

fn main() {}
