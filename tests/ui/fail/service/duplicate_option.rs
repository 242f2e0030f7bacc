// The same option twice.
#[sockets::service]
pub trait Calculator {
    #[sockets(open, open)]
    async fn version(&self) -> String;
}

fn main() {}
