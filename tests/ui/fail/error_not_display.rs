// The error type must be `Display + Debug + Send + 'static`, to be stored as the failure.

#[derive(Debug)]
pub struct ParseError;

#[taskq::task]
pub async fn parse(text: String) -> Result<u32, ParseError> {
    text.parse().map_err(|_| ParseError)
}

fn main() {}
