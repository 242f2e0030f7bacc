// One type may implement several services; each has its own server wrapper, so nothing clashes.
use std::sync::Arc;

#[sockets::service]
pub trait Reader {
    async fn read(&self, key: String) -> Option<String>;
}

#[sockets::service]
pub trait Writer {
    async fn write(&self, key: String, value: String);
}

struct Store;

impl Reader for Store {
    async fn read(&self, _key: String) -> Option<String> {
        None
    }
}

impl Writer for Store {
    // Implementors may also write the future out instead of `async fn`.
    fn write(&self, _key: String, _value: String) -> impl std::future::Future<Output = ()> + Send {
        async {}
    }
}

fn main() {
    let services: Vec<Arc<dyn sockets::Service>> = vec![
        Arc::new(ReaderServer::new(Store)),
        Arc::new(WriterServer::new(Store)),
    ];
    let names: Vec<_> = services.iter().map(|s| s.info().name).collect();
    assert_eq!(names, ["reader", "writer"]);
}
