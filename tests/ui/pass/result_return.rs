// `-> Result<T, E>`: `Ok(T)` is the result, `Err(E)` a failure.

use serde::{Deserialize, Serialize};
use taskq::Task;

#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    pub user_id: u64,
    pub lines: Vec<String>,
}

#[derive(Debug)]
pub struct ReportError;

impl std::fmt::Display for ReportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no such user")
    }
}

/// Builds a user's report.
#[taskq::task(name = "tasks.generate_report")]
pub async fn generate_report(user_id: u64, title: String) -> Result<Report, ReportError> {
    if user_id == 0 {
        return Err(ReportError);
    }
    Ok(Report {
        user_id,
        lines: vec![title],
    })
}

async fn _use() -> taskq::Result<()> {
    let inline: Result<Report, ReportError> = generate_report.call(7, "title".into()).await;
    let _: Report = inline.unwrap();
    let _: taskq::AsyncResult<Report> = generate_report.delay(7, "title".into()).await?;
    let args: <generate_report as Task>::Args = (7, "title".to_owned());
    let _: taskq::AsyncResult<Report> = generate_report
        .apply_async(args, taskq::Options::new())
        .await?;
    Ok(())
}

const _: () = assert!(generate_report::ARG_NAMES.len() == 2);

fn main() {
    assert_eq!(generate_report::NAME, "tasks.generate_report");
    assert_eq!(generate_report::ARG_NAMES, ["user_id", "title"]);
    let copy = generate_report;
    let _ = (
        copy,
        generate_report::default(),
        format!("{generate_report:?}"),
    );
}
