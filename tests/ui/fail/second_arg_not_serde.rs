// With several arguments, the one that is not serializable is pointed at.

pub struct Invoice {
    pub total: u64,
}

#[taskq::task]
pub async fn send_invoice(user_id: u64, invoice: Invoice) -> u64 {
    user_id + invoice.total
}

fn main() {}
