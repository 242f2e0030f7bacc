// An unknown `#[sockets(...)]` option.
#[sockets::service]
pub trait Calculator {
    #[sockets(public)]
    async fn add(&self, a: i64, b: i64) -> i64;
}

fn main() {}
