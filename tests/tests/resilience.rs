//! Failures: a killed server, restarts, dead and slow peers, shutdown.

use std::time::Duration;

use sockets::protocol::CloseCode;
use sockets::server::ServerEvent;
use sockets::{CallOptions, ClientState, Error, Reconnect};
use tests::proxy::Proxy;
use tests::services::{Calc, Event, Inbox, InboxRequest};
use tests::{Remote, client, server, within};

fn opts() -> CallOptions {
    CallOptions::default()
}

async fn wait_for_state(
    states: &mut tokio::sync::broadcast::Receiver<ClientState>,
    wanted: impl Fn(&ClientState) -> bool,
) -> ClientState {
    loop {
        let state = within(states.recv()).await.expect("state stream open");
        if wanted(&state) {
            return state;
        }
    }
}

#[tokio::test]
async fn killing_the_server_fails_pending_calls_and_the_client_reconnects_after_a_restart() {
    let (calc, mut control) = Calc::new();
    let remote = Remote::start(move || server().serve(calc));
    let addr = remote.addr;
    let client = within(
        client(addr)
            .reconnect(Reconnect {
                initial_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(200),
                ..Reconnect::default()
            })
            .connect(),
    )
    .await
    .unwrap();
    let mut states = client.states();
    // A peer taken before the outage follows the client to its new connection.
    let peer = client.peer();
    let long = CallOptions::timeout(Duration::from_secs(60));
    let pending = tokio::spawn({
        let peer = client.peer();
        async move { peer.call::<_, ()>("calc.hang", &(1,), long).await }
    });
    assert_eq!(control.next().await, Event::Started(1));
    remote.kill();
    let failed = within(pending).await.unwrap();
    assert!(matches!(failed, Err(Error::Disconnected(_))), "{failed:?}");
    wait_for_state(&mut states, |s| matches!(s, ClientState::Disconnected(_))).await;

    // While the server is down, calls fail at once instead of waiting.
    let fast = within(client.peer().call::<_, i64>("calc.add", &(1, 2), long)).await;
    assert!(matches!(fast, Err(Error::Disconnected(_))), "{fast:?}");

    // The server comes back on the same port.
    let (calc, _control) = Calc::new();
    let _restarted = within(server().address(addr.to_string()).serve(calc).start())
        .await
        .unwrap();
    // A restarted server knows nothing of the old session.
    wait_for_state(&mut states, |s| *s == ClientState::SessionLost).await;
    let sum: i64 = peer.call("calc.add", &(20, 22), opts()).await.unwrap();
    assert_eq!(sum, 42);
}

#[tokio::test]
async fn reconnecting_gives_up_after_the_configured_attempts() {
    let (calc, _control) = Calc::new();
    let remote = Remote::start(move || server().serve(calc));
    let client = within(
        client(remote.addr)
            .reconnect(Reconnect {
                initial_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(20),
                max_attempts: Some(2),
                ..Reconnect::default()
            })
            .connect(),
    )
    .await
    .unwrap();
    let mut states = client.states();
    remote.kill();
    let mut seen = Vec::new();
    loop {
        let state = within(states.recv()).await.unwrap();
        seen.push(state.clone());
        if state == ClientState::Closed {
            break;
        }
    }
    assert!(
        matches!(seen.first(), Some(ClientState::Disconnected(_))),
        "{seen:?}"
    );
    assert!(
        matches!(
            seen.get(1..),
            Some([
                ClientState::Connecting { attempt: 1 },
                ClientState::AttemptFailed { attempt: 1, .. },
                ClientState::Connecting { attempt: 2 },
                ClientState::AttemptFailed { attempt: 2, .. },
                ClientState::Closed
            ])
        ),
        "{seen:?}"
    );
    let after = client
        .peer()
        .call::<_, i64>("calc.add", &(1, 2), opts())
        .await;
    assert!(matches!(after, Err(Error::Disconnected(_))), "{after:?}");
}

#[tokio::test]
async fn calls_can_wait_for_the_connection_to_come_back() {
    let (calc, _control) = Calc::new();
    let remote = Remote::start(move || server().serve(calc));
    let addr = remote.addr;
    let client = within(
        client(addr)
            .reconnect(Reconnect {
                initial_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(200),
                ..Reconnect::default()
            })
            .connect(),
    )
    .await
    .unwrap();
    let mut states = client.states();
    remote.kill();
    wait_for_state(&mut states, |s| matches!(s, ClientState::Disconnected(_))).await;
    let refused = client
        .peer()
        .call::<_, i64>("calc.add", &(1, 2), opts())
        .await;
    assert!(
        matches!(refused, Err(Error::Disconnected(_))),
        "{refused:?}"
    );
    let waiting = tokio::spawn({
        let peer = client.peer();
        let options = CallOptions {
            timeout: Some(Duration::from_secs(10)),
            wait_for_connection: true,
            ..CallOptions::default()
        };
        async move { peer.call::<_, i64>("calc.add", &(2, 3), options).await }
    });
    let (calc, _control) = Calc::new();
    let _restarted = within(server().address(addr.to_string()).serve(calc).start())
        .await
        .unwrap();
    assert_eq!(within(waiting).await.unwrap().unwrap(), 5);
}

#[tokio::test]
async fn a_peer_that_stops_answering_is_dropped_by_the_heartbeat() {
    let (calc, _control) = Calc::new();
    let server = server()
        .heartbeat(Duration::from_millis(100), Duration::from_millis(500))
        .serve(calc)
        .start()
        .await
        .unwrap();
    let mut events = server.events();
    let proxy = Proxy::start(server.local_addr()).await;
    let client = within(
        client(proxy.addr)
            .heartbeat(Duration::from_millis(100), Duration::from_millis(500))
            .reconnect(Reconnect::disabled())
            .connect(),
    )
    .await
    .unwrap();
    let mut states = client.states();
    // Heartbeats measure the round trip inside the encrypted channel.
    let id: sockets::ConnectionId = client.peer().call("calc.my_id", &(), opts()).await.unwrap();
    proxy.blackhole();
    let state = wait_for_state(&mut states, |s| matches!(s, ClientState::Disconnected(_))).await;
    let ClientState::Disconnected(reason) = state else {
        unreachable!()
    };
    assert_eq!(reason.code, CloseCode::HeartbeatTimeout);
    loop {
        if let ServerEvent::Disconnected { id: gone, reason } = within(events.recv()).await.unwrap()
            && gone == id
        {
            assert_eq!(reason.code, CloseCode::HeartbeatTimeout);
            break;
        }
    }
    wait_for_state(&mut states, |s| *s == ClientState::Closed).await;
}

#[tokio::test]
async fn round_trip_time_is_measured_on_both_sides() {
    let (calc, _control) = Calc::new();
    let server = server()
        .heartbeat(Duration::from_millis(20), Duration::from_secs(5))
        .serve(calc)
        .start()
        .await
        .unwrap();
    let client = within(
        client(server.local_addr())
            .heartbeat(Duration::from_millis(20), Duration::from_secs(5))
            .connect(),
    )
    .await
    .unwrap();
    let id: sockets::ConnectionId = client.peer().call("calc.my_id", &(), opts()).await.unwrap();
    // Each side's measurement is a signal: wait for the first one on both.
    let client_rtt = client.connection_rtt().expect("connected");
    let server_rtt = server.connection_rtt(id).unwrap();
    within(async { tokio::join!(client_rtt.measured(), server_rtt.measured()) }).await;
    assert!(client.rtt().is_some());
    assert!(server.get(id).and_then(|c| c.rtt).is_some());
    // Every later heartbeat answer updates it again.
    let mut changes = client_rtt.subscribe();
    within(changes.changed()).await.unwrap();
    assert!(changes.borrow().is_some());
}

#[tokio::test]
async fn a_client_that_does_not_read_is_disconnected_as_a_slow_consumer() {
    let (calc, _control) = Calc::new();
    let server = server()
        .write_timeout(Duration::from_millis(300))
        .serve(calc)
        .start()
        .await
        .unwrap();
    let mut events = server.events();
    let proxy = Proxy::start(server.local_addr()).await;
    let (inbox, _news) = Inbox::new("slow");
    let client = within(
        client(proxy.addr)
            .serve(inbox)
            .reconnect(Reconnect::disabled())
            .connect(),
    )
    .await
    .unwrap();
    let id: sockets::ConnectionId = client.peer().call("calc.my_id", &(), opts()).await.unwrap();
    proxy.blackhole_downstream();
    let big = "x".repeat(512 * 1024);
    let flood = tokio::spawn({
        let server = server.clone();
        async move {
            // Ends once the connection is gone.
            while server
                .notify(id, &InboxRequest::News(big.clone()))
                .await
                .is_ok()
                || server.get(id).is_some()
            {}
        }
    });
    loop {
        if let ServerEvent::Disconnected { id: gone, reason } = within(events.recv()).await.unwrap()
            && gone == id
        {
            assert_eq!(reason.code, CloseCode::SlowConsumer, "{reason}");
            break;
        }
    }
    within(flood).await.unwrap();
    assert!(server.get(id).is_none());
}

#[tokio::test]
async fn graceful_shutdown_lets_running_calls_finish_then_says_going_away() {
    let (calc, control) = Calc::new();
    let server = server().serve(calc).start().await.unwrap();
    let addr = server.local_addr();
    let client = within(client(addr).reconnect(Reconnect::disabled()).connect())
        .await
        .unwrap();
    let mut states = client.states();
    let running = tokio::spawn({
        let peer = client.peer();
        async move { peer.call::<_, u32>("calc.gate", &(1,), opts()).await }
    });
    // The call is running once a later call on the same connection has been answered.
    let _: u64 = client.peer().call("calc.my_id", &(), opts()).await.unwrap();
    let shutdown = tokio::spawn({
        let server = server.clone();
        async move { server.shutdown(Duration::from_secs(10)).await }
    });
    // Once draining, the server answers new calls with ShuttingDown (a
    // Rejected outcome) while the running one goes on.
    within(async {
        loop {
            match client
                .peer()
                .call::<_, String>("calc.echo", &("x",), opts())
                .await
            {
                Ok(_) => tokio::task::yield_now().await,
                Err(Error::Rejected(_)) => break,
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
    })
    .await;
    assert!(!running.is_finished() && !shutdown.is_finished());
    control.open_gates(1);
    assert_eq!(
        within(running).await.unwrap().unwrap(),
        1,
        "the running call finished"
    );
    let state = wait_for_state(&mut states, |s| matches!(s, ClientState::Disconnected(_))).await;
    let ClientState::Disconnected(reason) = state else {
        unreachable!()
    };
    assert_eq!(reason.code, CloseCode::GoingAway);
    within(shutdown).await.unwrap();
    assert!(server.connections().is_empty());
    let refused = within(tests::client(addr).connect()).await;
    assert!(matches!(refused, Err(Error::Io(_))), "{refused:?}");
}

#[tokio::test]
async fn the_client_renews_its_session_and_lets_pending_calls_finish_on_the_old_one() {
    let (calc, control) = Calc::new();
    let server = server().serve(calc).start().await.unwrap();
    let mut events = server.events();
    let client = within(
        client(server.local_addr())
            .session_lifetime(Some(Duration::from_millis(200)))
            .connect(),
    )
    .await
    .unwrap();
    let mut states = client.states();
    let first: sockets::ConnectionId = client.peer().call("calc.my_id", &(), opts()).await.unwrap();
    server.join(first, "watchers").unwrap();
    let pending = tokio::spawn({
        let peer = client.peer();
        async move { peer.call::<_, u32>("calc.gate", &(1,), opts()).await }
    });
    // The renewal: a new connection resumes the session while the old one is still open.
    loop {
        match within(events.recv()).await.unwrap() {
            ServerEvent::Resumed { id, missed, .. } => {
                assert_eq!((id, missed), (first, 0));
                break;
            }
            ServerEvent::Disconnected { id, .. } if id == first => {
                panic!("the old connection closed with a call pending")
            }
            _ => {}
        }
    }
    control.open_gates(1);
    assert_eq!(within(pending).await.unwrap().unwrap(), 1);
    loop {
        if let ServerEvent::Disconnected { id, reason } = within(events.recv()).await.unwrap()
            && id == first
        {
            assert_eq!(reason.code, CloseCode::Normal);
            break;
        }
    }
    // The same session, with its rooms, on the new connection.
    let now: sockets::ConnectionId = client.peer().call("calc.my_id", &(), opts()).await.unwrap();
    assert_eq!(now, first);
    assert_eq!(client.server_connection_id(), Some(first));
    assert_eq!(server.members("watchers"), [first]);
    assert!(
        server.get(first).is_some(),
        "the old connection's end left the session alone"
    );
    loop {
        match within(states.recv()).await.unwrap() {
            ClientState::Resumed { missed: 0 } => break,
            ClientState::Disconnected(reason) => panic!("a renewal is not an outage: {reason}"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn without_resumption_a_renewal_is_a_new_session_and_says_so() {
    let (calc, _control) = Calc::new();
    let server = server()
        .serve(calc)
        .resumption_window(Duration::ZERO)
        .start()
        .await
        .unwrap();
    let client = within(
        client(server.local_addr())
            .session_lifetime(Some(Duration::from_millis(200)))
            .connect(),
    )
    .await
    .unwrap();
    let mut states = client.states();
    let first: sockets::ConnectionId = client.peer().call("calc.my_id", &(), opts()).await.unwrap();
    server.join(first, "watchers").unwrap();
    loop {
        match within(states.recv()).await.unwrap() {
            ClientState::SessionLost => break,
            ClientState::Disconnected(reason) => panic!("a renewal is not an outage: {reason}"),
            _ => {}
        }
    }
    let now: sockets::ConnectionId = client.peer().call("calc.my_id", &(), opts()).await.unwrap();
    assert_ne!(now, first);
    assert!(!server.members("watchers").contains(&now));
}
