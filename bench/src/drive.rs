//! The client loops of every workload, written once: every RPC target (ours
//! on each transport and the peers) runs the same loops through [`Rpc`], and
//! every bare echo through [`Ceiling`]. W1's loop, [`sample`], is shared by
//! both.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::task::JoinHandle;

use crate::BoxError;

/// A running RPC server with one echo method, and how to call it.
pub trait Rpc: Send + Sync + 'static {
    /// One client connection; the calls of several tasks share it.
    type Conn: Send + Sync + 'static;
    /// The argument of the echo, cloned for each call as a user of the API would.
    type Payload: Clone + Send + Sync + 'static;

    /// The argument for a `size`-byte payload.
    fn payload(size: usize) -> Self::Payload;

    /// Opens (and, for ours, authenticates) one connection.
    fn connect(&self) -> impl Future<Output = Result<Self::Conn, BoxError>> + Send;

    /// One echo call; an error if the reply is not the payload's size.
    fn call(
        conn: &Self::Conn,
        payload: &Self::Payload,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;

    /// Closes a connection.
    fn close(conn: Self::Conn) -> impl Future<Output = ()> + Send;

    /// W5: returns once the server side of every connection in `conns` is
    /// established. By default, one call on each.
    fn settle(&self, conns: &[Self::Conn]) -> impl Future<Output = Result<(), BoxError>> + Send {
        async move {
            let payload = Self::payload(32);
            for conn in conns {
                Self::call(conn, &payload).await?;
            }
            Ok(())
        }
    }
}

/// A running bare echo (no RPC layer) and how to talk to it: the ceiling.
pub trait Ceiling: Send + Sync + 'static {
    /// One client connection, owned by one task.
    type Stream: Send + 'static;

    /// Opens one connection.
    fn connect(&self) -> impl Future<Output = Result<Self::Stream, BoxError>> + Send;

    /// Sends one message and waits for its echo.
    fn round_trip(
        stream: &mut Self::Stream,
        payload: &Bytes,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;

    /// Keeps `in_flight` messages outstanding until `stop`, then drains;
    /// returns the echoes received.
    fn pipeline(
        stream: &mut Self::Stream,
        payload: &Bytes,
        in_flight: usize,
        stop: Instant,
    ) -> impl Future<Output = Result<u64, BoxError>> + Send;

    /// Closes a connection.
    fn close(stream: Self::Stream) -> impl Future<Output = Result<(), BoxError>> + Send;

    /// Connections the server has accepted so far.
    fn accepted(&self) -> usize;
}

/// How W2–W4 keep calls in flight on one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// One tokio task per call in flight, each calling in a loop: how the
    /// peers are driven, and how an application with concurrent requests
    /// calls.
    Tasks,
    /// One task per connection polling its calls in a `FuturesUnordered`.
    Unordered,
}

/// W1's client loop, the same for every target: a warm-up of `calls / 20`,
/// then `calls` round trips one at a time, each timed.
pub async fn sample(
    calls: usize,
    mut round_trip: impl AsyncFnMut() -> Result<(), BoxError>,
) -> Result<Vec<Duration>, BoxError> {
    for _ in 0..calls / 20 {
        round_trip().await?;
    }
    let mut samples = Vec::with_capacity(calls);
    for _ in 0..calls {
        let start = Instant::now();
        round_trip().await?;
        samples.push(start.elapsed());
    }
    Ok(samples)
}

/// W1 on an RPC target.
pub async fn rpc_latency<T: Rpc>(rpc: &T, calls: usize) -> Result<Vec<Duration>, BoxError> {
    let conn = rpc.connect().await?;
    let payload = T::payload(32);
    let samples = sample(calls, async || T::call(&conn, &payload).await).await?;
    T::close(conn).await;
    Ok(samples)
}

/// W1 on a bare echo.
pub async fn bare_latency<C: Ceiling>(echo: &C, calls: usize) -> Result<Vec<Duration>, BoxError> {
    let mut stream = echo.connect().await?;
    let payload = Bytes::from(vec![0x5a; 32]);
    let samples = sample(calls, async || C::round_trip(&mut stream, &payload).await).await?;
    C::close(stream).await?;
    Ok(samples)
}

/// The shape of W2–W4.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub connections: usize,
    pub in_flight: usize,
    pub payload: usize,
}

/// W2–W4 on an RPC target: calls completed and the time they took.
pub async fn rpc_throughput<T: Rpc>(
    rpc: &T,
    shape: Shape,
    duration: Duration,
    driver: Driver,
) -> Result<(u64, Duration), BoxError> {
    let mut conns = Vec::with_capacity(shape.connections);
    for _ in 0..shape.connections {
        conns.push(Arc::new(rpc.connect().await?));
    }
    let payload = T::payload(shape.payload);
    let start = Instant::now();
    let stop = start + duration;
    let mut tasks: Vec<JoinHandle<Result<u64, BoxError>>> = Vec::new();
    for conn in &conns {
        match driver {
            Driver::Tasks => {
                for _ in 0..shape.in_flight {
                    let (conn, payload) = (Arc::clone(conn), payload.clone());
                    tasks.push(tokio::spawn(async move {
                        let mut done = 0;
                        while Instant::now() < stop {
                            T::call(&conn, &payload).await?;
                            done += 1;
                        }
                        Ok(done)
                    }));
                }
            }
            Driver::Unordered => {
                let (conn, payload) = (Arc::clone(conn), payload.clone());
                let in_flight = shape.in_flight;
                tasks.push(tokio::spawn(async move {
                    unordered::<T>(&conn, &payload, in_flight, stop).await
                }));
            }
        }
    }
    let mut calls = 0;
    for task in tasks {
        calls += task.await??;
    }
    let elapsed = start.elapsed();
    for conn in conns {
        if let Ok(conn) = Arc::try_unwrap(conn) {
            T::close(conn).await;
        }
    }
    Ok((calls, elapsed))
}

/// Keeps `in_flight` calls outstanding in one task until `stop`, then drains.
async fn unordered<T: Rpc>(
    conn: &T::Conn,
    payload: &T::Payload,
    in_flight: usize,
    stop: Instant,
) -> Result<u64, BoxError> {
    let mut pending: FuturesUnordered<_> = (0..in_flight).map(|_| T::call(conn, payload)).collect();
    let mut done = 0u64;
    while let Some(outcome) = pending.next().await {
        outcome?;
        done += 1;
        if Instant::now() < stop {
            pending.push(T::call(conn, payload));
        }
    }
    Ok(done)
}

/// W2–W4 on a bare echo: one task per connection keeps its messages in
/// flight with batched writes.
pub async fn bare_throughput<C: Ceiling>(
    echo: &C,
    shape: Shape,
    duration: Duration,
) -> Result<(u64, Duration), BoxError> {
    let payload = Bytes::from(vec![0x5a; shape.payload]);
    let mut streams = Vec::with_capacity(shape.connections);
    for _ in 0..shape.connections {
        streams.push(echo.connect().await?);
    }
    let start = Instant::now();
    let stop = start + duration;
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            let payload = payload.clone();
            tokio::spawn(async move {
                let done = C::pipeline(&mut stream, &payload, shape.in_flight, stop).await?;
                C::close(stream).await?;
                Ok::<_, BoxError>(done)
            })
        })
        .collect();
    let mut calls = 0;
    for task in tasks {
        calls += task.await??;
    }
    Ok((calls, start.elapsed()))
}

/// Concurrent connection loops of W6.
pub const SETUP_LOOPS: usize = 32;

/// W6 on an RPC target: loops of connect → one 32-byte call → close.
/// Returns (setups, failures, elapsed).
pub async fn rpc_setups<T: Rpc>(
    rpc: Arc<T>,
    duration: Duration,
) -> Result<(u64, u64, Duration), BoxError> {
    let start = Instant::now();
    let stop = start + duration;
    let loops: Vec<_> = (0..SETUP_LOOPS)
        .map(|_| {
            let rpc = Arc::clone(&rpc);
            tokio::spawn(async move {
                let payload = T::payload(32);
                let (mut ok, mut failed) = (0, 0);
                while Instant::now() < stop {
                    let setup = async {
                        let conn = rpc.connect().await?;
                        let outcome = T::call(&conn, &payload).await;
                        T::close(conn).await;
                        outcome
                    };
                    match setup.await {
                        Ok(()) => ok += 1,
                        Err(_) => failed += 1,
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let (ok, failed) = join_counts(loops).await?;
    Ok((ok, failed, start.elapsed()))
}

/// W6 on a bare echo: loops of connect → one message → close.
pub async fn bare_setups<C: Ceiling>(
    echo: Arc<C>,
    duration: Duration,
) -> Result<(u64, u64, Duration), BoxError> {
    let start = Instant::now();
    let stop = start + duration;
    let loops: Vec<_> = (0..SETUP_LOOPS)
        .map(|_| {
            let echo = Arc::clone(&echo);
            tokio::spawn(async move {
                let payload = Bytes::from(vec![0x5a; 32]);
                let (mut ok, mut failed) = (0, 0);
                while Instant::now() < stop {
                    let setup = async {
                        let mut stream = echo.connect().await?;
                        C::round_trip(&mut stream, &payload).await?;
                        C::close(stream).await
                    };
                    match setup.await {
                        Ok(()) => ok += 1,
                        Err(_) => failed += 1,
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let (ok, failed) = join_counts(loops).await?;
    Ok((ok, failed, start.elapsed()))
}

async fn join_counts(loops: Vec<JoinHandle<(u64, u64)>>) -> Result<(u64, u64), BoxError> {
    let (mut ok, mut failed) = (0, 0);
    for task in loops {
        let (a, b) = task.await?;
        ok += a;
        failed += b;
    }
    Ok((ok, failed))
}

/// Opens `n` connections, `CONCURRENCY` at a time (W5).
pub async fn open_many<F, Fut, C>(n: usize, mut connect: F) -> Result<Vec<C>, BoxError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<C, BoxError>>,
{
    const CONCURRENCY: usize = 32;
    let mut held = Vec::with_capacity(n);
    let mut opening: FuturesUnordered<_> = FuturesUnordered::new();
    for _ in 0..n {
        if opening.len() >= CONCURRENCY
            && let Some(conn) = opening.next().await
        {
            held.push(conn?);
        }
        opening.push(connect());
    }
    while let Some(conn) = opening.next().await {
        held.push(conn?);
    }
    Ok(held)
}
