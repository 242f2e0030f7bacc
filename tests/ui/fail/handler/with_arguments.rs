// Options written as arguments of `#[sockets::handler]`.
#[sockets::service]
mod echo {
    #[sockets::handler(open)]
    pub async fn echo(text: String) -> String {
        text
    }
}

fn main() {}
