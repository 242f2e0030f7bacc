// `#[sockets]` without a list of options.
#[sockets::service]
pub trait Calculator {
    #[sockets]
    async fn add(&self, a: i64, b: i64) -> i64;
}

fn main() {}
