// An argument `#[sockets::service]` does not take: its only one is `crate = "..."`.
#[sockets::service(name = "calc")]
pub trait Calculator {
    async fn add(&self, a: i64, b: i64) -> i64;
}

fn main() {}
