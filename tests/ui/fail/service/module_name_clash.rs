// A module that already declares a name the service generates.
#[sockets::service]
mod echo {
    pub struct EchoClient;

    #[sockets::handler]
    pub async fn echo(text: String) -> String {
        text
    }
}

fn main() {}
