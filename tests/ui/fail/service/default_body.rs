// A service method with a default body.
#[sockets::service]
pub trait Greeter {
    async fn greet(&self) -> String {
        "hello".into()
    }
}

fn main() {}
