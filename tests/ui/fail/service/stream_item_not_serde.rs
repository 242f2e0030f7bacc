// A stream whose items cannot travel.
pub struct Tick;

#[sockets::service]
pub trait Ticker {
    async fn ticks(&self) -> sockets::Stream<Tick>;
}

fn main() {}
