// The success type must be `Serialize + DeserializeOwned`, to travel back to the caller.

#[derive(Debug)]
pub struct Report {
    pub lines: Vec<String>,
}

#[taskq::task]
pub async fn report(user_id: u64) -> Result<Report, std::io::Error> {
    Ok(Report {
        lines: vec![user_id.to_string()],
    })
}

fn main() {}
