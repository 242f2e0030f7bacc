//! A TCP proxy that can stop forwarding ("blackhole") one or both directions
//! while keeping the sockets open: the peer behind it looks alive to the
//! kernel but dead (or not reading) to the protocol.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running proxy; stops when dropped.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    upstream: watch::Sender<bool>,
    downstream: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Forwards connections on a free port of 127.0.0.1 to `target`.
    ///
    /// # Panics
    /// When it cannot bind.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let upstream = watch::Sender::new(false);
        let downstream = watch::Sender::new(false);
        let (up, down) = (upstream.subscribe(), downstream.subscribe());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pipe(client_read, server_write, up.clone()));
                tokio::spawn(pipe(server_read, client_write, down.clone()));
            }
        });
        Self {
            addr,
            upstream,
            downstream,
            task,
        }
    }

    /// Stops forwarding client → server.
    pub fn blackhole_upstream(&self) {
        self.upstream.send_replace(true);
    }

    /// Stops forwarding server → client, and stops reading from the server.
    pub fn blackhole_downstream(&self) {
        self.downstream.send_replace(true);
    }

    /// Stops forwarding both ways.
    pub fn blackhole(&self) {
        self.blackhole_upstream();
        self.blackhole_downstream();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut blackholed: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            _ = blackholed.wait_for(|b| *b) => break,
            read = from.read(&mut buf) => read,
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let Some(data) = buf.get(..n) else { return };
        if *blackholed.borrow() || to.write_all(data).await.is_err() {
            break;
        }
    }
    // Keep both sockets open and silent until the proxy or peer goes away.
    let _keep = (from, to);
    std::future::pending::<()>().await;
}
