// A handler that is not `async`.
#[sockets::service]
mod echo {
    #[sockets::handler]
    pub fn echo(text: String) -> String {
        text
    }
}

fn main() {}
