// The items a caller sends travel as MessagePack: their type must be serde's.
pub struct Chunk {
    pub bytes: Vec<u8>,
}

#[sockets::service]
pub trait Upload {
    async fn upload(&self, chunks: sockets::Stream<Chunk>) -> u64;
}

fn main() {}
