// An argument that can be sent but not decoded is one error, at its type: rustc reports it
// where `Task::Args` is checked, and the code that sends the task reports nothing more.

#[derive(serde::Serialize)]
pub struct Invoice {
    pub total: u64,
}

#[taskq::task]
pub async fn send_invoice(invoice: Invoice) -> u64 {
    invoice.total
}

async fn send() -> taskq::Result<u64> {
    let pending = send_invoice.delay(Invoice { total: 3 }).await?;
    pending.get(std::time::Duration::from_secs(5)).await
}

fn main() {
    let _ = send();
}
