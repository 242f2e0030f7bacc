// A crate path that is not a path.
#[sockets::service(crate = "my sockets")]
pub trait Calculator {
    async fn add(&self, a: i64, b: i64) -> i64;
}

fn main() {}
