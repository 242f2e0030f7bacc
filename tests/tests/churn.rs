//! Calls on a multi-threaded runtime, where a handler may finish before the
//! reader has registered it: every call is answered (none waits for its
//! timeout), on long-lived and on short-lived connections.

use std::time::Duration;

use sockets::{CallOptions, Reconnect};
use tests::services::Calc;
use tests::{client, server, within};

fn opts() -> CallOptions {
    CallOptions::timeout(Duration::from_secs(2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_is_answered_when_handlers_finish_at_once() {
    let (calc, _control) = Calc::new();
    let server = server().serve(calc).start().await.unwrap();
    let client = within(client(server.local_addr()).connect()).await.unwrap();
    for i in 0..3_000i64 {
        let sum: Result<i64, _> = client.peer().call("calc.add", &(i, 1), opts()).await;
        assert_eq!(sum.unwrap_or_else(|e| panic!("call {i}: {e}")), i + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_on_a_fresh_connection_is_answered() {
    let (calc, _control) = Calc::new();
    // Up to 9 clients connect at once from 127.0.0.1, one more than the
    // default per-address handshake cap; this test is about calls, not
    // admission (attack_per_ip.rs), so the cap is raised.
    let server = server()
        .serve(calc)
        .max_handshakes_per_ip(16)
        .start()
        .await
        .unwrap();
    let addr = server.local_addr();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100i64 {
        tasks.spawn(async move {
            let client = within(client(addr).reconnect(Reconnect::disabled()).connect())
                .await
                .unwrap();
            for n in 0..5i64 {
                let sum: Result<i64, _> = client.peer().call("calc.add", &(i, n), opts()).await;
                assert_eq!(
                    sum.unwrap_or_else(|e| panic!("client {i} call {n}: {e}")),
                    i + n
                );
            }
            client.close().await;
        });
        while tasks.len() > 8 {
            tasks.join_next().await.unwrap().unwrap();
        }
    }
    while let Some(task) = tasks.join_next().await {
        task.unwrap();
    }
}
