// Two methods with the same name.
#[sockets::service]
pub trait Calculator {
    async fn add(&self, a: i64, b: i64) -> i64;
    async fn add(&self, a: f64, b: f64) -> f64;
}

fn main() {}
