//! Calls from a client to the server: outcomes, ordering, deadlines, cancellation, limits.

use std::time::Duration;

use sockets::crypto::Suite;
use sockets::{CallOptions, Error};
use tests::proxy::Proxy;
use tests::services::{Calc, Event};
use tests::{client, server, within};

fn opts() -> CallOptions {
    CallOptions::default()
}

#[tokio::test]
async fn connect_and_call_with_both_suites_and_in_plaintext_mode() {
    let (calc, _control) = Calc::new();
    let server = server()
        .allow_plaintext(true)
        .serve(calc)
        .start()
        .await
        .unwrap();
    for (suite, plaintext) in [
        (Suite::Aes256Gcm, false),
        (Suite::ChaCha20Poly1305, false),
        (Suite::ChaCha20Poly1305, true),
    ] {
        let client = within(
            client(server.local_addr())
                .suite(suite)
                .plaintext(plaintext)
                .plaintext_over_ws(true)
                .connect(),
        )
        .await
        .unwrap();
        let sum: i64 = client
            .peer()
            .call("calc.add", &(40, 2), opts())
            .await
            .unwrap();
        assert_eq!(sum, 42, "{suite:?} plaintext={plaintext}");
        // A message larger than one frame travels as several.
        let big = "x".repeat(3 << 19);
        let echo: String = client
            .peer()
            .call("calc.echo", &(&big,), opts())
            .await
            .unwrap();
        assert_eq!(echo.len(), big.len());
        client.close().await;
    }
}

#[tokio::test]
async fn plaintext_is_refused_unless_the_server_allows_it() {
    let (calc, _control) = Calc::new();
    let server = server().serve(calc).start().await.unwrap();
    let refused = within(
        client(server.local_addr())
            .plaintext(true)
            .plaintext_over_ws(true)
            .connect(),
    )
    .await;
    assert!(refused.is_err(), "{refused:?}");
    // Nor does a client use it on ws:// unless told to.
    let unprotected = within(client(server.local_addr()).plaintext(true).connect()).await;
    assert!(
        matches!(unprotected, Err(Error::Config(_))),
        "{unprotected:?}"
    );
}

#[tokio::test]
async fn replies_may_come_in_any_order() {
    let (calc, control) = Calc::new();
    let server = server().serve(calc).start().await.unwrap();
    let client = within(client(server.local_addr()).connect()).await.unwrap();
    let peer = client.peer();
    let first = tokio::spawn({
        let peer = peer.clone();
        async move { peer.call::<_, u32>("calc.gate", &(2,), opts()).await }
    });
    let second = tokio::spawn({
        let peer = peer.clone();
        async move { peer.call::<_, u32>("calc.gate", &(1,), opts()).await }
    });
    control.open_gates(1);
    assert_eq!(within(second).await.unwrap().unwrap(), 1);
    assert!(
        !first.is_finished(),
        "the first call is still waiting for its gate"
    );
    control.open_gates(2);
    assert_eq!(within(first).await.unwrap().unwrap(), 2);
}

#[tokio::test]
async fn a_call_times_out_and_its_deadline_reaches_the_handler() {
    let (calc, mut control) = Calc::new();
    let server = server().serve(calc).start().await.unwrap();
    let client = within(
        client(server.local_addr())
            .call_timeout(Duration::from_millis(300))
            .connect(),
    )
    .await
    .unwrap();
    let peer = client.peer();

    // The default timeout from the builder.
    let timed_out = within(peer.call::<_, ()>("calc.hang", &(1,), opts())).await;
    assert!(matches!(timed_out, Err(Error::Timeout)), "{timed_out:?}");
    assert_eq!(control.next().await, Event::Started(1));
    assert_eq!(
        control.next().await,
        Event::Dropped(1),
        "the handler was abandoned"
    );

    // The remaining deadline travels with the call.
    let left: Option<u64> = peer
        .call(
            "calc.deadline",
            &(),
            CallOptions::timeout(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    let left = left.expect("the handler sees a deadline");
    assert!(left > 0 && left <= 5000, "{left} ms left");
}

/// The connection keeps one timer for all its calls' deadlines: a call with
/// a short deadline, made while a call with a long one waits, must still end
/// at its own deadline (the timer is armed again for it). The server never
/// sees the short call, so only the caller's own deadline can end it.
#[tokio::test]
async fn a_short_deadline_after_a_long_one_still_ends_on_time() {
    let (calc, mut control) = Calc::new();
    let server = server().serve(calc).start().await.unwrap();
    let proxy = Proxy::start(server.local_addr()).await;
    let client = within(client(proxy.addr).connect()).await.unwrap();
    let long_peer = client.peer();
    let long = tokio::spawn(async move {
        long_peer
            .call::<_, ()>(
                "calc.hang",
                &(1,),
                CallOptions::timeout(Duration::from_secs(3600)),
            )
            .await
    });
    assert_eq!(control.next().await, Event::Started(1));
    proxy.blackhole_upstream();
    // `within` fails the test long before the first call's hour is up.
    let short = within(client.peer().call::<_, ()>(
        "calc.hang",
        &(2,),
        CallOptions::timeout(Duration::from_millis(200)),
    ))
    .await;
    assert!(matches!(short, Err(Error::Timeout)), "{short:?}");
    assert!(!long.is_finished(), "the long call still waits");
    long.abort();
}

#[tokio::test]
async fn dropping_the_call_cancels_the_handler() {
    let (calc, mut control) = Calc::new();
    let server = server().serve(calc).start().await.unwrap();
    let client = within(client(server.local_addr()).connect()).await.unwrap();
    let peer = client.peer();
    let call = tokio::spawn(async move {
        peer.call::<_, ()>(
            "calc.hang",
            &(7,),
            CallOptions::timeout(Duration::from_secs(60)),
        )
        .await
    });
    assert_eq!(control.next().await, Event::Started(7));
    call.abort();
    assert_eq!(control.next().await, Event::Dropped(7));
    // The connection is fine afterwards.
    let sum: i64 = client
        .peer()
        .call("calc.add", &(1, 1), opts())
        .await
        .unwrap();
    assert_eq!(sum, 2);
}

#[tokio::test]
async fn bad_arguments_and_unknown_methods_fail_at_once() {
    let (calc, _control) = Calc::new();
    let server = server().serve(calc).start().await.unwrap();
    let client = within(client(server.local_addr()).connect()).await.unwrap();
    let peer = client.peer();
    // A long timeout: the answer must come from the server, not the deadline.
    let long = CallOptions::timeout(Duration::from_secs(60));
    let bad = within(peer.call::<_, i64>("calc.add", &("one", "two"), long)).await;
    assert!(matches!(bad, Err(Error::BadRequest(_))), "{bad:?}");
    let unknown = within(peer.call::<_, ()>("calc.subtract", &(1, 2), long)).await;
    assert!(
        matches!(&unknown, Err(Error::UnknownMethod(m)) if m == "calc.subtract"),
        "{unknown:?}"
    );
    let unknown = within(peer.call::<_, ()>("nosuch.service", &(), long)).await;
    assert!(
        matches!(unknown, Err(Error::UnknownMethod(_))),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn calls_past_the_in_flight_limit_are_rejected() {
    let (calc, mut control) = Calc::new();
    let server = server().max_in_flight(2).serve(calc).start().await.unwrap();
    let client = within(client(server.local_addr()).connect()).await.unwrap();
    let long = CallOptions::timeout(Duration::from_secs(60));
    let mut running = Vec::new();
    for tag in [1, 2] {
        let peer = client.peer();
        running.push(tokio::spawn(async move {
            peer.call::<_, ()>("calc.hang", &(tag,), long).await
        }));
    }
    let mut started = vec![control.next().await, control.next().await];
    started.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(started, vec![Event::Started(1), Event::Started(2)]);
    let third = within(client.peer().call::<_, ()>("calc.hang", &(3,), long)).await;
    assert!(matches!(third, Err(Error::Rejected(_))), "{third:?}");
    for call in running {
        call.abort();
    }
}

#[tokio::test]
async fn a_panicking_handler_answers_internal_and_the_connection_lives() {
    let (calc, _control) = Calc::new();
    let server = server().serve(calc).start().await.unwrap();
    let client = within(client(server.local_addr()).connect()).await.unwrap();
    let panicked = within(client.peer().call::<_, ()>("calc.panic", &(), opts())).await;
    assert!(matches!(panicked, Err(Error::Internal(_))), "{panicked:?}");
    let sum: i64 = client
        .peer()
        .call("calc.add", &(2, 3), opts())
        .await
        .unwrap();
    assert_eq!(sum, 5);
    assert_eq!(server.connections().len(), 1);
}

#[tokio::test]
async fn several_services_share_one_connection() {
    let (calc, _control) = Calc::new();
    let (inbox, _news) = tests::services::Inbox::new("server");
    let server = server().serve(calc).serve(inbox).start().await.unwrap();
    let client = within(client(server.local_addr()).connect()).await.unwrap();
    let sum: i64 = client
        .peer()
        .call("calc.add", &(1, 2), opts())
        .await
        .unwrap();
    let hello: String = client
        .peer()
        .call("inbox.hello", &("you",), opts())
        .await
        .unwrap();
    assert_eq!((sum, hello.as_str()), (3, "server greets you"));

    let (first, _) = Calc::new();
    let (second, _) = Calc::new();
    let twice = tests::server().serve(first).serve(second).start().await;
    assert!(matches!(twice, Err(Error::Config(_))), "{twice:?}");
}

#[tokio::test]
async fn an_endless_timeout_is_cut_to_what_the_wire_can_say() {
    let (calc, _control) = Calc::new();
    let server = server().serve(calc).start().await.unwrap();
    let client = within(client(server.local_addr()).connect()).await.unwrap();
    let left: Option<u64> = within(client.peer().call(
        "calc.deadline",
        &(),
        CallOptions::timeout(Duration::MAX),
    ))
    .await
    .unwrap();
    let left = left.expect("a deadline travels");
    assert!(left > 1000 && left <= u64::from(u32::MAX), "{left}");
}

#[tokio::test]
async fn many_concurrent_calls_from_many_clients_all_end_with_their_own_reply() {
    let (calc, _control) = Calc::new();
    // Small limits: batches of queued envelopes must be split to stay under
    // the message limit, and every message spans several frames.
    let server = server()
        .max_frame(16 * 1024)
        .max_message(64 * 1024)
        .serve(calc)
        .start()
        .await
        .unwrap();
    let mut clients = Vec::new();
    for _ in 0..8 {
        let client = client(server.local_addr())
            .max_frame(16 * 1024)
            .max_message(64 * 1024)
            .connect();
        clients.push(within(client).await.unwrap());
    }
    let mut calls = tokio::task::JoinSet::new();
    for (c, client) in clients.iter().enumerate() {
        for i in 0..16 {
            let peer = client.peer();
            calls.spawn(async move {
                // Large and small payloads mixed in the same batches, which
                // cross the 64 KiB message limit and must be split between envelopes.
                let text = if i % 3 == 0 {
                    format!("{c}-{i}")
                } else {
                    format!("{c}-{i}-").repeat(3000)
                };
                let echo: String = peer.call("calc.echo", &(&text,), opts()).await.unwrap();
                assert_eq!(echo, text);
            });
        }
    }
    within(async {
        while let Some(done) = calls.join_next().await {
            done.unwrap();
        }
    })
    .await;
    // A message over the limit is refused before it is sent; the connection lives.
    let too_big = "x".repeat(70 * 1024);
    let refused = clients[0]
        .peer()
        .call::<_, String>("calc.echo", &(&too_big,), opts())
        .await;
    assert!(matches!(refused, Err(Error::Rejected(_))), "{refused:?}");
    let sum: i64 = clients[0]
        .peer()
        .call("calc.add", &(1, 2), opts())
        .await
        .unwrap();
    assert_eq!(sum, 3);
}

#[tokio::test]
async fn a_client_accepts_the_larger_frames_a_server_announces() {
    let (calc, _control) = Calc::new();
    // Frames up to 4 MiB from the server; the client keeps its default of 1 MiB
    // for what it sends. Plaintext mode keeps the debug build quick.
    let server = server()
        .max_frame(4 << 20)
        .allow_plaintext(true)
        .serve(calc)
        .start()
        .await
        .unwrap();
    let client = within(
        client(server.local_addr())
            .plaintext(true)
            .plaintext_over_ws(true)
            .connect(),
    )
    .await
    .unwrap();
    let big = "y".repeat(3 << 20);
    let echo: String = within(client.peer().call("calc.echo", &(&big,), opts()))
        .await
        .unwrap();
    assert_eq!(echo.len(), big.len());
}
