// An associated type in a service trait.
#[sockets::service]
pub trait Store {
    type Key;
    async fn len(&self) -> u64;
}

fn main() {}
