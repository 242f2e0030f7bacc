// An option given a value it does not take.
#[sockets::service]
pub trait Calculator {
    #[sockets(open = true)]
    async fn add(&self, a: i64, b: i64) -> i64;
}

fn main() {}
