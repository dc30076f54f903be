// A chain step receives the previous step's result as its first argument: a step whose first
// argument is of another type does not compile.

#[taskq::task(name = "tasks.add")]
async fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[taskq::task(name = "tasks.shout")]
async fn shout(text: String) -> String {
    text.to_uppercase()
}

fn main() {
    let _ = taskq::canvas::chain(add.s(1, 2)).then(shout.partial());
}
