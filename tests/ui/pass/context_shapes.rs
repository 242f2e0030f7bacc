// The call context may be taken by reference or by value, under any path ending in `Context`.
use sockets::Context;

#[sockets::service]
pub trait Session {
    async fn by_ref(&self, cx: &Context, n: u8) -> u8;
    async fn by_path(&self, cx: &sockets::Context) -> u64;
    async fn owned(&self, cx: Context) -> u64;
}

struct S;

impl Session for S {
    async fn by_ref(&self, _cx: &Context, n: u8) -> u8 {
        n
    }
    async fn by_path(&self, cx: &sockets::Context) -> u64 {
        cx.connection_id().get()
    }
    async fn owned(&self, cx: Context) -> u64 {
        // Owned: it may move into a spawned task.
        std::thread::spawn(move || cx.connection_id().get()).join().unwrap()
    }
}

async fn client_omits_the_context(client: SessionClient) {
    let _: Result<u8, sockets::Error> = client.by_ref(3).await;
    let _: Result<u64, sockets::Error> = client.by_path().await;
    let _: Result<u64, sockets::Error> = client.owned().await;
}

fn main() {
    let _ = SessionServer::new(S);
    let _ = client_omits_the_context;
}
