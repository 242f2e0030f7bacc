// `#[sockets::handler]` on a function outside a `#[sockets::service] mod`.
#[sockets::handler]
pub async fn echo(text: String) -> String {
    text
}

fn main() {}
