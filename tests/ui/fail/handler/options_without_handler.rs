// Options on a function of a service module that is not marked as a handler.
#[sockets::service]
mod echo {
    #[sockets::handler]
    pub async fn echo(text: String) -> String {
        text
    }

    #[sockets(open)]
    pub async fn version() -> u32 {
        1
    }
}

fn main() {}
