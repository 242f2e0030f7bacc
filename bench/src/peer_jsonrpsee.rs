//! Peer: jsonrpsee over WebSocket (its server, which serves HTTP and
//! WebSocket on one port, and its WebSocket client), JSON-RPC 2.0 with
//! serde_json. JSON has no bytes type: the payload is a string of as many
//! ASCII bytes (base64 would add a third and an encoding step). TCP_NODELAY
//! on both ends.

use std::net::SocketAddr;

use jsonrpsee::RpcModule;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::params::ArrayParams;
use jsonrpsee::server::{Server, ServerConfig, ServerHandle};
use jsonrpsee::ws_client::{WsClient, WsClientBuilder};

use crate::BoxError;
use crate::drive::Rpc;

/// A running jsonrpsee server.
pub struct Peer {
    addr: SocketAddr,
    handle: ServerHandle,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.handle.stop();
    }
}

/// The largest message either end accepts (W4's 1 MiB payload, quoted).
const MAX_MESSAGE: u32 = 4 << 20;

/// Starts the server on 127.0.0.1:0 with one method, `echo`.
pub async fn start() -> Result<Peer, BoxError> {
    let config = ServerConfig::builder()
        // W5 holds 2,000 connections; the default limit is 100.
        .max_connections(10_000)
        .max_request_body_size(MAX_MESSAGE)
        .max_response_body_size(MAX_MESSAGE)
        .set_tcp_no_delay(true)
        .build();
    let server = Server::builder()
        .set_config(config)
        .build("127.0.0.1:0")
        .await?;
    let addr = server.local_addr()?;
    let mut module = RpcModule::new(());
    module.register_method("echo", |params, _, _| params.one::<String>())?;
    let handle = server.start(module);
    Ok(Peer { addr, handle })
}

impl Rpc for Peer {
    type Conn = WsClient;
    type Payload = String;

    fn payload(size: usize) -> String {
        "Z".repeat(size)
    }

    async fn connect(&self) -> Result<WsClient, BoxError> {
        Ok(WsClientBuilder::default()
            .max_request_size(MAX_MESSAGE)
            .max_response_size(MAX_MESSAGE)
            .max_concurrent_requests(1024)
            .set_tcp_no_delay(true)
            .build(format!("ws://{}", self.addr))
            .await?)
    }

    async fn call(client: &WsClient, payload: &String) -> Result<(), BoxError> {
        let mut params = ArrayParams::new();
        params.insert(payload)?;
        let reply: String = client.request("echo", params).await?;
        if reply.len() == payload.len() {
            Ok(())
        } else {
            Err("echo of the wrong size".into())
        }
    }

    async fn close(client: WsClient) {
        drop(client);
    }
}
