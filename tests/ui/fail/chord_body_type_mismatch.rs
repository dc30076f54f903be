// A chord's body receives the list of its header's results as its first argument: a body
// that takes something else does not compile.

#[taskq::task(name = "tasks.add")]
async fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[taskq::task(name = "tasks.join_words")]
async fn join_words(words: Vec<String>) -> String {
    words.join(" ")
}

fn main() {
    let header = taskq::canvas::group((0..3).map(|i| add.s(i, i)));
    let _ = taskq::canvas::chord(header, join_words.partial());
}
