// The stream parameter comes last: the other arguments travel in the call,
// the stream's items after it.
#[sockets::service]
pub trait Upload {
    async fn upload(&self, chunks: sockets::Stream<Vec<u8>>, name: String) -> u64;
}

fn main() {}
