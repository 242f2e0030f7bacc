// The trait's visibility carries over: `pub(crate)` and private services are fine.
mod inner {
    #[sockets::service]
    pub(crate) trait Counter {
        async fn next(&self) -> u64;
    }

    #[sockets::service]
    trait Private {
        async fn hidden(&self);
    }

    pub(crate) fn private_items_exist() {
        let _ = PrivateRequest::Hidden;
    }
}

fn main() {
    let _: Option<inner::CounterClient> = None;
    let _ = inner::CounterRequest::Next;
    inner::private_items_exist();
}
