// The crate path given as a path instead of a string.
#[sockets::service(crate = ::sockets)]
pub trait Calculator {
    async fn add(&self, a: i64, b: i64) -> i64;
}

fn main() {}
