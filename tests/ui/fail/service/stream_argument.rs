// Taking a stream (client → server streaming) is not supported yet.
#[sockets::service]
pub trait Upload {
    async fn upload(&self, name: String, chunks: sockets::Stream<Vec<u8>>) -> u64;
}

fn main() {}
