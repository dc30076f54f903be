// `impl Trait` makes the function generic: name the type.

#[taskq::task]
pub async fn total(amounts: impl IntoIterator<Item = u64>) -> u64 {
    amounts.into_iter().sum()
}

fn main() {}
