// `impl Stream` names no type for the caller: return `sockets::Stream<T>`.
#[sockets::service]
pub trait Ticker {
    async fn ticks(&self) -> impl futures_util::Stream<Item = u64>;
}

fn main() {}
