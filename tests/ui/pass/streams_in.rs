// Methods that take a stream: replying once, or streaming back; in a trait
// (with and without the call context, with a window), and in a module of
// handlers; called through the generated client.
use futures_util::StreamExt;
use sockets::{Context, Stream};

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Chunk {
    pub bytes: Vec<u8>,
}

#[sockets::service]
pub trait Files {
    async fn upload(&self, name: String, chunks: Stream<Chunk>) -> u64;
    #[sockets(window(items = 16, bytes = 4096))]
    async fn checked(&self, cx: &Context, chunks: Stream<Chunk>) -> Result<u64, String>;
    async fn chat(&self, room: u32, incoming: sockets::Stream<String>) -> Stream<String>;
    async fn plain(&self) -> u8;
}

struct F;

impl Files for F {
    async fn upload(&self, _name: String, chunks: Stream<Chunk>) -> u64 {
        chunks.count().await as u64
    }
    async fn checked(&self, cx: &Context, chunks: Stream<Chunk>) -> Result<u64, String> {
        let _ = cx.connection_id();
        let n = chunks.count().await;
        Ok(n as u64)
    }
    async fn chat(&self, room: u32, incoming: Stream<String>) -> Stream<String> {
        Stream::new(incoming.map(move |m| format!("{room}: {}", m.unwrap_or_default())))
    }
    async fn plain(&self) -> u8 {
        1
    }
}

#[sockets::service]
pub mod sink {
    use futures_util::StreamExt;
    use sockets::Stream;

    #[sockets::handler]
    pub async fn count(items: Stream<u32>) -> usize {
        items.count().await
    }

    #[sockets::handler]
    pub async fn double(items: Stream<u32>) -> Stream<u32> {
        Stream::new(items.map(|n| n.unwrap_or(0) * 2))
    }
}

async fn callers(files: FilesClient, sink: sink::SinkClient) {
    let chunks = || Stream::new(futures_util::stream::iter([Chunk { bytes: vec![1] }]));
    let _: Result<u64, sockets::Error> = files.upload("a", chunks()).await;
    let _: Result<Result<u64, String>, sockets::Error> = files.checked(chunks()).await;
    let lines = Stream::new(futures_util::stream::iter(["hi".to_owned()]));
    if let Ok(mut back) = files.chat(7, lines).await {
        let _: Option<Result<String, sockets::Error>> = back.next().await;
    }
    let _: Result<usize, sockets::Error> = sink.count(Stream::new(futures_util::stream::iter(0..3))).await;
    let _: Result<Stream<u32>, sockets::Error> = sink.double(Stream::empty()).await;
}

fn main() {
    let _ = FilesServer::new(F);
    let _ = sink::SinkServer;
    let _ = callers;
}
