// A method takes at most one stream: its caller sends one stream of items.
#[sockets::service]
pub trait Merge {
    async fn merge(&self, left: sockets::Stream<u64>, right: sockets::Stream<u64>) -> u64;
}

fn main() {}
