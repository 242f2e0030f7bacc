// A handler taking a borrowed argument.
#[sockets::service]
mod echo {
    #[sockets::handler]
    pub async fn echo(text: &str) -> String {
        text.to_owned()
    }
}

fn main() {}
