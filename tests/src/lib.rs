//! Integration and compile-fail tests for `sockets`; the tests live in `tests/tests/`.
//!
//! This library holds what they share: hand-written services (the macro is
//! tested elsewhere), a typed request for server → client calls, servers in a
//! runtime of their own that can be killed, a TCP proxy that injects network
//! faults (blackhole, delay, cut mid-frame, reset), a WebSocket man in the
//! middle that rewrites messages, and a peer that speaks the protocol by hand.

pub mod fuzz;
pub mod mitm;
pub mod proxy;
pub mod raw;
pub mod services;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use sockets::crypto::Secret;
use sockets::{Client, ClientBuilder, Server, ServerBuilder};

/// Bounds a wait that should end on an event; only a hang reaches it.
pub const HANG: Duration = Duration::from_secs(10);

/// The secret the tests' servers and clients share.
pub fn secret() -> Secret {
    Secret::from_key(&[7u8; 32])
}

/// A secret nobody else knows.
pub fn wrong_secret() -> Secret {
    Secret::from_key(&[8u8; 32])
}

/// Waits for `future`, failing the test if it hangs.
///
/// # Panics
/// When `future` does not finish within [`HANG`].
pub async fn within<F: Future>(future: F) -> F::Output {
    match tokio::time::timeout(HANG, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out waiting for an event"),
    }
}

/// Waits until `check` holds, re-checking each millisecond as the runtime
/// makes progress: for state that has no event of its own (a counter, a
/// backlog). Fails the test if it never holds (see [`within`]).
pub async fn until(mut check: impl FnMut() -> bool) {
    within(async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
}

/// Tells its `Notify` when it is dropped: put one in a stream (or any
/// value) to see when the runtime drops it.
pub struct OnDrop(pub std::sync::Arc<tokio::sync::Notify>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

/// The next `Disconnected` event of a server: why a connection ended.
///
/// # Panics
/// When none comes (see [`within`]) or the events stream ends.
pub async fn next_disconnect(
    events: &mut tokio::sync::broadcast::Receiver<sockets::server::ServerEvent>,
) -> sockets::error::Disconnect {
    loop {
        match within(events.recv()).await {
            Ok(sockets::server::ServerEvent::Disconnected { reason, .. }) => return reason,
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                panic!("the server's events ended")
            }
        }
    }
}

static PANICS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static PANIC_HOOK: std::sync::Once = std::sync::Once::new();

/// Counts every panic in this process from now on (a panic in a server
/// task does not fail a test by itself: tokio catches it). Installed by
/// [`server`]; the previous hook still prints.
pub fn count_panics() {
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            previous(info);
        }));
    });
}

/// How many panics happened in this process since [`count_panics`].
pub fn panics() -> usize {
    PANICS.load(std::sync::atomic::Ordering::SeqCst)
}

/// A server on 127.0.0.1 with a free port and the shared secret. Panics
/// are counted from here on (see [`panics`]).
pub fn server() -> ServerBuilder {
    count_panics();
    Server::builder().address("127.0.0.1:0").secret(secret())
}

/// The URL of a server's (or proxy's) address.
pub fn url(addr: SocketAddr) -> String {
    format!("ws://{addr}/")
}

/// A client of `addr` with the shared secret.
pub fn client(addr: SocketAddr) -> ClientBuilder {
    Client::builder().url(url(addr)).secret(secret())
}

/// A server running in a runtime (and thread) of its own, so that it can be
/// killed: dropping the runtime ends every task and closes every socket
/// without a CLOSE, as a crashed process would.
pub struct Remote {
    /// Where it listens.
    pub addr: SocketAddr,
    kill: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Remote {
    /// Starts the server `builder` makes in a new runtime.
    ///
    /// # Panics
    /// When the server does not start.
    pub fn start(builder: impl FnOnce() -> ServerBuilder + Send + 'static) -> Self {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (kill, killed) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            let server = runtime
                .block_on(builder().start())
                .expect("the server starts");
            addr_tx.send(server.local_addr()).expect("report address");
            let _ = killed.recv();
            drop(server);
            runtime.shutdown_timeout(Duration::from_secs(5));
        });
        let addr = addr_rx
            .recv()
            .expect("the server thread reports its address");
        Self {
            addr,
            kill: Some(kill),
            thread: Some(thread),
        }
    }

    /// Kills the server: no CLOSE, no goodbye.
    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.stop();
    }
}
