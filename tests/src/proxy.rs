//! A TCP proxy that injects network faults between a client and a server:
//! it can stop forwarding ("blackhole") one or both directions while keeping
//! the sockets open, delay every chunk, cut the server's next chunk in half
//! and close (a connection cut mid-frame), or reset every connection (RST).
//!
//! Cuts and resets apply to the connections open when they are requested;
//! connections made afterwards (a client reconnecting) are forwarded normally.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A fault for the connections open when it is requested.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cut {
    /// Forward half of the server's next chunk, then close both sockets.
    MidFrame,
    /// Close both sockets at once with a TCP reset.
    Reset,
}

/// The faults every connection watches.
#[derive(Clone)]
struct Faults {
    upstream: watch::Receiver<bool>,
    downstream: watch::Receiver<bool>,
    delay: watch::Receiver<Duration>,
    /// How many cuts were requested, and the latest.
    cut: watch::Receiver<(u64, Option<Cut>)>,
}

/// A running proxy; stops accepting when dropped.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    upstream: watch::Sender<bool>,
    downstream: watch::Sender<bool>,
    delay: watch::Sender<Duration>,
    cut: watch::Sender<(u64, Option<Cut>)>,
    /// New connections are closed at once (the server is unreachable).
    refusing: Arc<std::sync::atomic::AtomicBool>,
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
        let delay = watch::Sender::new(Duration::ZERO);
        let cut = watch::Sender::new((0, None));
        let faults = Faults {
            upstream: upstream.subscribe(),
            downstream: downstream.subscribe(),
            delay: delay.subscribe(),
            cut: cut.subscribe(),
        };
        let refusing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let refuse = Arc::clone(&refusing);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if refuse.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                tokio::spawn(connection(client, server, faults.clone()));
            }
        });
        Self {
            addr,
            upstream,
            downstream,
            delay,
            cut,
            refusing,
            task,
        }
    }

    /// Closes new connections at once while `refuse` (open ones are not
    /// touched): the server looks unreachable to a client reconnecting.
    pub fn refuse_new(&self, refuse: bool) {
        self.refusing
            .store(refuse, std::sync::atomic::Ordering::SeqCst);
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

    /// Delays every chunk by `delay` before forwarding it (both ways).
    pub fn set_delay(&self, delay: Duration) {
        self.delay.send_replace(delay);
    }

    /// On every open connection, forwards only the first half of the
    /// server's next chunk, then closes both sockets: the client sees a
    /// WebSocket frame cut in the middle.
    pub fn cut_mid_frame(&self) {
        self.cut
            .send_modify(|(count, cut)| (*count, *cut) = (*count + 1, Some(Cut::MidFrame)));
    }

    /// Resets every open connection (TCP RST to both sides).
    pub fn reset(&self) {
        self.cut
            .send_modify(|(count, cut)| (*count, *cut) = (*count + 1, Some(Cut::Reset)));
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Forwards one connection both ways until either side ends or a cut applies.
async fn connection(client: TcpStream, server: TcpStream, mut faults: Faults) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let seen = faults.cut.borrow_and_update().0;
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let ended = Arc::new(watch::Sender::new(false));
    let up = Pipe {
        blackholed: faults.upstream.clone(),
        downstream: false,
    };
    let down = Pipe {
        blackholed: faults.downstream.clone(),
        downstream: true,
    };
    let outcome = tokio::join!(
        up.run(
            client_read,
            server_write,
            faults.clone(),
            seen,
            Arc::clone(&ended)
        ),
        down.run(server_read, client_write, faults, seen, ended),
    );
    for halves in [outcome.0, outcome.1] {
        if let (Some(read), Some(write)) = halves {
            // A reset: zero linger makes closing send RST instead of FIN.
            // The two halves belong to the two sockets.
            let _ = read.as_ref().set_zero_linger();
            let _ = write.as_ref().set_zero_linger();
        }
    }
}

struct Pipe {
    blackholed: watch::Receiver<bool>,
    /// Server → client (the direction a mid-frame cut applies to).
    downstream: bool,
}

impl Pipe {
    /// Forwards `from` to `to`; returns the halves when the connection is to
    /// be reset, `None`s otherwise.
    async fn run(
        mut self,
        mut from: OwnedReadHalf,
        mut to: OwnedWriteHalf,
        faults: Faults,
        seen: u64,
        ended: Arc<watch::Sender<bool>>,
    ) -> (Option<OwnedReadHalf>, Option<OwnedWriteHalf>) {
        let mut ended_rx = ended.subscribe();
        let mut cuts = Some(faults.cut);
        let mut buf = vec![0u8; 16 * 1024];
        let mut cut_pending = false;
        loop {
            let next_cut = async {
                match &mut cuts {
                    Some(rx) => {
                        let cut = rx.wait_for(|(count, _)| *count > seen).await.map(|c| c.1);
                        match cut {
                            Ok(cut) => cut,
                            Err(_) => std::future::pending().await,
                        }
                    }
                    None => std::future::pending().await,
                }
            };
            let blackholed = async { self.blackholed.wait_for(|b| *b).await.is_ok() };
            let read = tokio::select! {
                true = blackholed => {
                    // Keep both sockets open and silent until the other
                    // direction or the proxy ends.
                    let _ = ended.subscribe().wait_for(|e| *e).await;
                    return (None, None);
                }
                _ = async { ended_rx.wait_for(|e| *e).await.is_ok() } => return (None, None),
                cut = next_cut => {
                    cuts = None;
                    match cut {
                        Some(Cut::Reset) => {
                            ended.send_replace(true);
                            return (Some(from), Some(to));
                        }
                        Some(Cut::MidFrame) => cut_pending = self.downstream,
                        None => {}
                    }
                    continue;
                }
                read = from.read(&mut buf) => read,
            };
            let n = match read {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let delay = *faults.delay.borrow();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if *self.blackholed.borrow() {
                continue;
            }
            // Half of the chunk (at least one byte, never all of it when it
            // has two or more).
            let len = if cut_pending { (n / 2).max(1) } else { n };
            let Some(data) = buf.get(..len) else { break };
            if to.write_all(data).await.is_err() || cut_pending {
                break;
            }
        }
        let _ = to.shutdown().await;
        ended.send_replace(true);
        (None, None)
    }
}
