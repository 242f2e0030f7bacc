// A return type that is not serde-serializable.
pub struct Opaque;

#[sockets::service]
pub trait Source {
    async fn get(&self) -> Opaque;
}

fn main() {}
