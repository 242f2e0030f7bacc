//! Peer: tarpc over TCP with bincode (tarpc's `serde_transport`: tokio-util's
//! length-delimited frames, tokio-serde's bincode), served as tarpc's docs
//! show (one spawned task per request). TCP_NODELAY on both ends, like every
//! other target.

use std::net::SocketAddr;

use futures_util::StreamExt;
use serde_bytes::ByteBuf;
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;
use tarpc::tokio_util::codec::{Framed, LengthDelimitedCodec};
use tarpc::{client, context, serde_transport};
use tokio::net::{TcpListener, TcpStream};

use crate::BoxError;
use crate::drive::Rpc;

/// The service: one method that returns its argument.
#[tarpc::service]
pub trait Echo {
    /// Returns its argument.
    async fn echo(payload: ByteBuf) -> ByteBuf;
}

#[derive(Clone)]
struct EchoService;

impl Echo for EchoService {
    async fn echo(self, _: context::Context, payload: ByteBuf) -> ByteBuf {
        payload
    }
}

/// A running tarpc server.
pub struct Peer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn framed(tcp: TcpStream) -> Framed<TcpStream, LengthDelimitedCodec> {
    // tokio-util's default frame limit is 8 MiB: room for W4's 1 MiB.
    Framed::new(tcp, LengthDelimitedCodec::new())
}

/// Starts the server on 127.0.0.1:0.
pub async fn start() -> Result<Peer, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task =
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                let transport = serde_transport::new(framed(tcp), Bincode::default());
                let channel = BaseChannel::with_defaults(transport);
                tokio::spawn(channel.execute(EchoService.serve()).for_each(
                    |response| async move {
                        tokio::spawn(response);
                    },
                ));
            }
        });
    Ok(Peer { addr, task })
}

impl Rpc for Peer {
    type Conn = EchoClient;
    type Payload = ByteBuf;

    fn payload(size: usize) -> ByteBuf {
        ByteBuf::from(vec![0x5a; size])
    }

    async fn connect(&self) -> Result<EchoClient, BoxError> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let transport = serde_transport::new(framed(tcp), Bincode::default());
        Ok(EchoClient::new(client::Config::default(), transport).spawn())
    }

    async fn call(client: &EchoClient, payload: &ByteBuf) -> Result<(), BoxError> {
        let reply = client.echo(context::current(), payload.clone()).await?;
        if reply.len() == payload.len() {
            Ok(())
        } else {
            Err("echo of the wrong size".into())
        }
    }

    async fn close(client: EchoClient) {
        drop(client);
    }
}
