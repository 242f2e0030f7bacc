//! Public types and futures can cross threads.

use sockets::{
    AuthDecision, Client, ClientBuilder, ClientState, ConnectionInfo, Error, Peer, Server,
    ServerBuilder, ServerEvent,
};

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>(_: &T) {}

#[test]
fn public_types_are_send_and_sync() {
    send_sync::<Server>();
    send_sync::<ServerBuilder>();
    send_sync::<Client>();
    send_sync::<ClientBuilder>();
    send_sync::<Peer>();
    send_sync::<Error>();
    send_sync::<ConnectionInfo>();
    send_sync::<ServerEvent>();
    send_sync::<ClientState>();
    send_sync::<AuthDecision>();
}

#[test]
fn public_futures_are_send() {
    // Built, checked and dropped without being run.
    let connect = Client::builder().connect();
    send(&connect);
    let start = Server::builder().start();
    send(&start);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    drop((connect, start));
}

#[allow(dead_code)]
fn futures_of_handles_are_send(
    server: Server,
    client: Client,
    peer: Peer,
    id: sockets::ConnectionId,
) {
    send(&server.shutdown(std::time::Duration::ZERO));
    send(&server.broadcast(&tests::services::InboxRequest::News(String::new())));
    send(&server.send_to(id, &tests::services::InboxRequest::Hello(String::new())));
    send(&client.close());
    send(&peer.call::<_, ()>("x.y", &(), sockets::CallOptions::default()));
}
