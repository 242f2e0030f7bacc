// A service method taking `self` by value.
#[sockets::service]
pub trait Calculator {
    async fn add(self, a: i64, b: i64) -> i64;
}

fn main() {}
