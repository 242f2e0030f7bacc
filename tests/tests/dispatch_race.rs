//! A handler that finishes before the dispatcher has recorded it still
//! answers: on a multi-thread runtime, a fast handler often completes on the
//! other worker before the reader returns from spawning it.

use std::time::Duration;

use sockets::CallOptions;
use tests::services::Calc;
use tests::{client, server, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fast_call_is_answered_and_shutdown_finds_no_handler_running() {
    let (calc, _control) = Calc::new();
    let server = server().serve(calc).start().await.unwrap();
    let client = within(client(server.local_addr()).connect()).await.unwrap();
    let peer = client.peer();
    // Each call alone; one lost reply ends the loop with `Timeout`.
    let options = CallOptions::timeout(Duration::from_secs(5));
    for i in 0..3_000i64 {
        let sum: i64 = peer.call("calc.add", &(i, 1), options).await.unwrap();
        assert_eq!(sum, i + 1);
    }
    // No handler may be left recorded as running: shutdown's grace would wait for it.
    let started = std::time::Instant::now();
    server.shutdown(Duration::from_secs(5)).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "shutdown waited {:?} for handlers that had already finished",
        started.elapsed()
    );
}
