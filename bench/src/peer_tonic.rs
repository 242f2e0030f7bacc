//! Peer: tonic gRPC over HTTP/2 (h2c on 127.0.0.1) with prost, the code
//! generated from `proto/bench.proto` at build time (`build.rs`). `bytes`
//! fields are `bytes::Bytes`. TCP_NODELAY on both ends; HTTP/2 windows are
//! tonic's defaults.

use std::net::SocketAddr;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use crate::BoxError;
use crate::drive::Rpc;

/// The code `build.rs` generated.
#[allow(
    missing_docs,
    unused_qualifications,
    rust_2018_idioms,
    clippy::all,
    clippy::pedantic
)]
mod proto {
    tonic::include_proto!("bench");
}

use proto::echo_client::EchoClient;
use proto::echo_server::{Echo, EchoServer};
use proto::{Payload, Size};

struct EchoService;

/// The items of a `Firehose` call.
type Items = std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Payload, Status>> + Send>>;

#[tonic::async_trait]
impl Echo for EchoService {
    async fn echo(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        Ok(Response::new(request.into_inner()))
    }

    type FirehoseStream = Items;

    async fn firehose(&self, request: Request<Size>) -> Result<Response<Items>, Status> {
        let data = Bytes::from(vec![0x5a; request.get_ref().size as usize]);
        let items = futures_util::stream::repeat(Payload { data }).map(Ok);
        Ok(Response::new(Box::pin(items)))
    }
}

/// W7 for tonic: one server-streaming call of `size`-byte payloads, read
/// for `duration` (after a warm-up of 256): the items read and the time.
pub async fn stream(
    size: usize,
    duration: std::time::Duration,
) -> Result<(u64, std::time::Duration), BoxError> {
    let peer = start().await?;
    let mut client = peer.connect().await?;
    let size = u32::try_from(size)?;
    let mut items = client.firehose(Size { size }).await?.into_inner();
    let mut next = async || -> Result<(), BoxError> {
        match items.message().await? {
            Some(item) if item.data.len() == size as usize => Ok(()),
            other => Err(format!("unexpected {other:?}").into()),
        }
    };
    for _ in 0..256 {
        next().await?;
    }
    let start = std::time::Instant::now();
    let mut count = 0u64;
    while start.elapsed() < duration {
        for _ in 0..256 {
            next().await?;
        }
        count += 256;
    }
    Ok((count, start.elapsed()))
}

/// A running tonic server.
pub struct Peer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts the server on 127.0.0.1:0.
pub async fn start() -> Result<Peer, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(EchoServer::new(EchoService))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            }),
    );
    Ok(Peer {
        addr,
        stop: Some(stop),
    })
}

impl Rpc for Peer {
    type Conn = EchoClient<Channel>;
    type Payload = Bytes;

    fn payload(size: usize) -> Bytes {
        Bytes::from(vec![0x5a; size])
    }

    async fn connect(&self) -> Result<EchoClient<Channel>, BoxError> {
        let channel = Endpoint::from_shared(format!("http://{}", self.addr))?
            .tcp_nodelay(true)
            .connect()
            .await?;
        Ok(EchoClient::new(channel))
    }

    async fn call(client: &EchoClient<Channel>, payload: &Bytes) -> Result<(), BoxError> {
        // A tonic client is a cheap handle; calls take it by `&mut`.
        let reply = client
            .clone()
            .echo(Payload {
                data: payload.clone(),
            })
            .await?;
        if reply.get_ref().data.len() == payload.len() {
            Ok(())
        } else {
            Err("echo of the wrong size".into())
        }
    }

    async fn close(client: EchoClient<Channel>) {
        drop(client);
    }
}
