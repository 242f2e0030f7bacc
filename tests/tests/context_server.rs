//! A handler reaches the server it runs in through its context; a handler
//! on a client has no server.

use sockets::{Client, ConnectionId, Context, Server};
use tests::{client, server, within};

/// Served by the server and by the client alike.
#[sockets::service]
pub trait Probe {
    /// Where the handler runs: the server's address and the caller's
    /// connection id as the server's registry knows it, or `None` on a client.
    async fn where_am_i(&self, cx: &Context) -> Option<(String, ConnectionId)>;
    /// Asks the caller back where its handler runs.
    async fn ask_back(&self, cx: &Context) -> Option<(String, ConnectionId)>;
}

struct Here;

impl Probe for Here {
    async fn where_am_i(&self, cx: &Context) -> Option<(String, ConnectionId)> {
        let server = cx.server()?;
        let known = server.get(cx.connection_id())?;
        Some((server.local_addr().to_string(), known.id))
    }

    async fn ask_back(&self, cx: &Context) -> Option<(String, ConnectionId)> {
        ProbeClient::new(cx.peer().clone())
            .where_am_i()
            .await
            .ok()
            .flatten()
    }
}

async fn connect(server: &Server) -> Client {
    within(
        client(server.local_addr())
            .serve(ProbeServer::new(Here))
            .connect(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_server_handler_sees_its_server_and_a_client_handler_none() {
    let server = server()
        .serve(ProbeServer::new(Here))
        .start()
        .await
        .unwrap();
    let client = connect(&server).await;
    let probe = ProbeClient::new(client.peer());
    let (addr, id) = within(probe.where_am_i())
        .await
        .unwrap()
        .expect("on the server");
    assert_eq!(addr, server.local_addr().to_string());
    assert_eq!(server.connections().len(), 1);
    assert_eq!(server.connections()[0].id, id);
    // The server's handler calls the client back; the client's handler has no server.
    assert_eq!(within(probe.ask_back()).await.unwrap(), None);
}
