// `#[sockets::handler]` on a method.
pub struct Echo;

impl Echo {
    #[sockets::handler]
    pub async fn echo(&self, text: String) -> String {
        text
    }
}

fn main() {}
