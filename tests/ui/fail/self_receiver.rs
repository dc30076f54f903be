// A task is a free function: no `self`.

pub struct Mailer;

impl Mailer {
    #[taskq::task]
    pub async fn send(&self, to: String) {
        let _ = to;
    }
}

fn main() {}
