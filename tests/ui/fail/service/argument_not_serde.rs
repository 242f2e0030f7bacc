// An argument type that is not serde-serializable.
pub struct Opaque;

#[sockets::service]
pub trait Sink {
    async fn put(&self, value: Opaque);
}

fn main() {}
