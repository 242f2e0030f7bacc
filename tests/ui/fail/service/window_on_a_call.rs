// A window belongs to a method that returns or takes a stream.
#[sockets::service]
pub trait Calc {
    #[sockets(window(items = 8, bytes = 1024))]
    async fn add(&self, a: i64, b: i64) -> i64;
}

fn main() {}
