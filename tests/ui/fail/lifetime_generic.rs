// Arguments are decoded into owned values: no lifetime parameters.

use std::borrow::Cow;

#[taskq::task]
pub async fn shout<'a>(text: Cow<'a, str>) -> String {
    text.to_uppercase()
}

fn main() {}
