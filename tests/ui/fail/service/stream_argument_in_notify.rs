// A notification method cannot take a stream: it opens nothing to send it on.
#[sockets::service]
pub trait Log {
    #[sockets(notify)]
    async fn lines(&self, lines: sockets::Stream<String>);
}

fn main() {}
