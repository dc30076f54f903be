// Every argument type must be `Serialize + DeserializeOwned`.

pub struct Invoice {
    pub total: u64,
}

#[taskq::task]
pub async fn send_invoice(invoice: Invoice) -> u64 {
    invoice.total
}

fn main() {}
