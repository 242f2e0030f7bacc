// A notification method cannot return a stream: it has no reply to open it with.
#[sockets::service]
pub trait Ticker {
    #[sockets(notify)]
    async fn ticks(&self) -> sockets::Stream<u64>;
}

fn main() {}
