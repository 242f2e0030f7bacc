// A service module with no `#[sockets::handler]` function.
#[sockets::service]
mod echo {
    pub async fn echo(text: String) -> String {
        text
    }
}

fn main() {}
