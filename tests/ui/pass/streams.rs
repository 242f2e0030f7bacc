// Methods that return a stream: in a trait (with and without the call
// context, with a window), and in a module of handlers.
use futures_util::StreamExt;
use sockets::{Context, Stream};

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Tick {
    pub n: u64,
}

#[sockets::service]
pub trait Ticker {
    async fn ticks(&self, every_ms: u64) -> Stream<Tick>;
    #[sockets(window(items = 16, bytes = 4096))]
    async fn mine(&self, cx: &Context) -> sockets::Stream<Result<u64, String>>;
    async fn plain(&self) -> u8;
}

struct T;

impl Ticker for T {
    async fn ticks(&self, every_ms: u64) -> Stream<Tick> {
        Stream::new(futures_util::stream::iter(0..3).map(move |n| Tick { n: n * every_ms }))
    }
    async fn mine(&self, cx: &Context) -> Stream<Result<u64, String>> {
        let id = cx.connection_id().get();
        Stream::try_new(futures_util::stream::iter([Ok(id), Err("done".to_owned())]))
    }
    async fn plain(&self) -> u8 {
        1
    }
}

#[sockets::service]
pub mod counter {
    use sockets::Stream;

    #[sockets::handler]
    pub async fn up_to(n: u32) -> Stream<u32> {
        Stream::new(futures_util::stream::iter(0..n))
    }
}

async fn callers(ticker: TickerClient, counter: counter::CounterClient) {
    let _: Result<Stream<Tick>, sockets::Error> = ticker.ticks(10).await;
    let narrow = ticker.with_window(sockets::Window::new(4, 256));
    if let Ok(mut mine) = narrow.mine().await {
        let _: Option<Result<Result<u64, String>, sockets::Error>> = mine.next().await;
    }
    let _: Result<Stream<u32>, sockets::Error> = counter.up_to(5).await;
}

fn main() {
    let _ = TickerServer::new(T);
    let _ = counter::CounterServer;
    let _ = callers;
}
