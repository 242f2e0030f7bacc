// A pattern instead of an identifier as an argument name.
#[sockets::service]
pub trait Geometry {
    async fn length(&self, (x, y): (f64, f64)) -> f64;
}

fn main() {}
