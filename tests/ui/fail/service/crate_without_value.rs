// `crate` without the path.
#[sockets::service(crate)]
pub trait Calculator {
    async fn add(&self, a: i64, b: i64) -> i64;
}

fn main() {}
