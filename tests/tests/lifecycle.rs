//! The connection lifecycle: sessions resumed after a loss or a renewal
//! (same id, rooms, meta refreshed, notifications sent meanwhile delivered in
//! order, overflow reported), sessions lost when the window passes, the
//! hooks on both sides, and the states and errors a client reports.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sockets::client::{ClientState, Reconnect};
use sockets::protocol::CloseCode;
use sockets::server::ServerEvent;
use sockets::testing::Harness;
use sockets::{AuthDecision, CallOptions, Client, ConnectionId, Context, Error, Server};
use tests::proxy::Proxy;
use tests::{client, panics, server, within};
use tokio::sync::{broadcast, mpsc};

/// What the server serves: a key-value store whose watchers are rooms.
#[sockets::service]
pub trait Store {
    /// Watches `key`: joins its room.
    async fn watch(&self, cx: &Context, key: String) -> bool;
    /// The caller's session id and the name its auth hook stored.
    async fn whoami(&self, cx: &Context) -> (ConnectionId, Option<String>);
}

/// What every client serves: the server pushes changes to it.
#[sockets::service]
pub trait Watcher {
    /// `key` changed to `version`.
    #[sockets(notify)]
    async fn changed(&self, key: String, version: u64);
}

struct Kv;

impl Store for Kv {
    async fn watch(&self, cx: &Context, key: String) -> bool {
        cx.server()
            .is_some_and(|server| server.join(cx.connection_id(), &key).is_ok())
    }

    async fn whoami(&self, cx: &Context) -> (ConnectionId, Option<String>) {
        (cx.connection_id(), cx.meta::<String>().cloned())
    }
}

/// A watcher that reports every change it is pushed.
struct Changes(mpsc::UnboundedSender<u64>);

impl Watcher for Changes {
    async fn changed(&self, _key: String, version: u64) {
        let _ = self.0.send(version);
    }
}

fn watcher() -> (WatcherServer<Changes>, mpsc::UnboundedReceiver<u64>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (WatcherServer::new(Changes(tx)), rx)
}

fn quick() -> Reconnect {
    Reconnect {
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        ..Reconnect::default()
    }
}

/// A server that serves the store and names each client by its credentials,
/// counting the auth hook's runs.
fn store_server(logins: Arc<AtomicUsize>) -> sockets::ServerBuilder {
    server()
        .serve(StoreServer::new(Kv))
        .auth(move |user: String, _peer| {
            logins.fetch_add(1, Ordering::SeqCst);
            async move { AuthDecision::accept(user) }
        })
}

fn change(version: u64) -> WatcherRequest {
    WatcherRequest::Changed {
        key: "k".into(),
        version,
    }
}

async fn next_state(
    states: &mut broadcast::Receiver<ClientState>,
    done: impl Fn(&ClientState) -> bool,
) -> ClientState {
    loop {
        let state = within(states.recv())
            .await
            .expect("the client's states go on");
        if done(&state) {
            return state;
        }
    }
}

async fn next_event(
    events: &mut broadcast::Receiver<ServerEvent>,
    done: impl Fn(&ServerEvent) -> bool,
) -> ServerEvent {
    loop {
        let event = within(events.recv())
            .await
            .expect("the server's events go on");
        if done(&event) {
            return event;
        }
    }
}

async fn received(changes: &mut mpsc::UnboundedReceiver<u64>, n: usize) -> Vec<u64> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        got.push(within(changes.recv()).await.expect("a change"));
    }
    got
}

/// A client of the store through `proxy`, watching "k"; its session id.
async fn watching_client(proxy: &Proxy) -> (Client, mpsc::UnboundedReceiver<u64>, ConnectionId) {
    let (service, changes) = watcher();
    let client = within(
        client(proxy.addr)
            .credentials("ada")
            .serve(service)
            .reconnect(quick())
            .connect(),
    )
    .await
    .unwrap();
    let store = StoreClient::new(client.peer());
    assert!(store.watch("k").await.unwrap());
    let id = client.server_connection_id().unwrap();
    (client, changes, id)
}

/// Loses the client's connection and waits until the server has noticed:
/// the session is waiting. New connections are refused until `proxy.refuse_new(false)`.
async fn lose_connection(proxy: &Proxy, server: &Server, id: ConnectionId) {
    let mut events = server.events();
    proxy.refuse_new(true);
    proxy.reset();
    next_event(
        &mut events,
        |e| matches!(e, ServerEvent::Disconnected { id: gone, .. } if *gone == id),
    )
    .await;
    assert_eq!(server.stats().waiting_sessions, 1);
}

#[tokio::test]
async fn a_lost_connection_resumes_its_session_with_rooms_meta_and_the_notifications_sent_meanwhile()
 {
    let logins = Arc::new(AtomicUsize::new(0));
    let server = store_server(Arc::clone(&logins)).start().await.unwrap();
    let proxy = Proxy::start(server.local_addr()).await;
    let (client, mut changes, id) = watching_client(&proxy).await;
    let mut states = client.states();
    for version in 1..=3 {
        assert_eq!(server.broadcast_to("k", &change(version)).await.unwrap(), 1);
    }
    assert_eq!(received(&mut changes, 3).await, [1, 2, 3]);

    lose_connection(&proxy, &server, id).await;
    // The session keeps its room while it waits; what is sent to it is kept.
    assert_eq!(server.members("k"), [id]);
    for version in 4..=10 {
        assert_eq!(server.broadcast_to("k", &change(version)).await.unwrap(), 1);
    }
    server.notify(id, &change(11)).await.unwrap();
    assert!(server.stats().waiting_bytes > 0);
    proxy.refuse_new(false);

    let state = next_state(&mut states, |s| {
        matches!(s, ClientState::Resumed { .. } | ClientState::SessionLost)
    })
    .await;
    assert_eq!(state, ClientState::Resumed { missed: 0 });
    // Delivered in order, before anything sent after the resumption.
    assert_eq!(server.broadcast_to("k", &change(12)).await.unwrap(), 1);
    assert_eq!(
        received(&mut changes, 9).await,
        [4, 5, 6, 7, 8, 9, 10, 11, 12]
    );
    // The same session: id, room, and the meta the auth hook gave it again.
    assert_eq!(client.server_connection_id(), Some(id));
    assert_eq!(server.members("k"), [id]);
    let store = StoreClient::new(client.peer());
    assert_eq!(store.whoami().await.unwrap(), (id, Some("ada".to_owned())));
    assert_eq!(logins.load(Ordering::SeqCst), 2, "the auth hook ran again");
    let stats = server.stats();
    assert_eq!((stats.waiting_sessions, stats.waiting_bytes), (0, 0));
    assert_eq!(panics(), 0);
}

#[tokio::test]
async fn a_buffer_that_overflows_keeps_the_newest_and_reports_how_many_were_missed() {
    let logins = Arc::new(AtomicUsize::new(0));
    let server = store_server(logins)
        .resumption_buffer(3, 1 << 20)
        .start()
        .await
        .unwrap();
    let proxy = Proxy::start(server.local_addr()).await;
    let (client, mut changes, id) = watching_client(&proxy).await;
    let mut states = client.states();
    lose_connection(&proxy, &server, id).await;
    for version in 1..=10 {
        server.broadcast_to("k", &change(version)).await.unwrap();
    }
    proxy.refuse_new(false);
    let state = next_state(&mut states, |s| {
        matches!(s, ClientState::Resumed { .. } | ClientState::SessionLost)
    })
    .await;
    assert_eq!(state, ClientState::Resumed { missed: 7 });
    assert_eq!(received(&mut changes, 3).await, [8, 9, 10]);
    assert_eq!(panics(), 0);
}

#[tokio::test]
async fn the_server_reports_resumptions_and_session_ends() {
    let logins = Arc::new(AtomicUsize::new(0));
    let server = store_server(logins).start().await.unwrap();
    let proxy = Proxy::start(server.local_addr()).await;
    let (client, _changes, id) = watching_client(&proxy).await;
    let mut events = server.events();
    lose_connection(&proxy, &server, id).await;
    proxy.refuse_new(false);
    let resumed = next_event(&mut events, |e| matches!(e, ServerEvent::Resumed { .. })).await;
    let ServerEvent::Resumed {
        id: session,
        connection,
        missed,
    } = resumed
    else {
        unreachable!()
    };
    assert_eq!((session, missed), (id, 0));
    assert_ne!(connection, id, "the connection came with an id of its own");
    // Closed on purpose, the session ends at once.
    client.close().await;
    next_event(&mut events, |e| *e == ServerEvent::SessionEnded { id }).await;
    assert!(server.members("k").is_empty());
    assert!(matches!(server.peer(id), Err(Error::UnknownConnection(_))));
}

/// The window passing, on the paused clock: the session ends, the client
/// comes back to a new one, and its hook rebuilds what it had.
#[tokio::test(start_paused = true)]
async fn past_the_window_the_client_gets_a_new_session_and_its_hook_rebuilds_it() {
    let connects = Arc::new(AtomicUsize::new(0));
    let resumes = Arc::new(AtomicUsize::new(0));
    let harness = Harness::new(
        Server::builder()
            .serve(StoreServer::new(Kv))
            .resumption_window(Duration::from_secs(60))
            .on_connect({
                let connects = Arc::clone(&connects);
                move |_cx| {
                    connects.fetch_add(1, Ordering::SeqCst);
                    async {}
                }
            })
            .on_resume({
                let resumes = Arc::clone(&resumes);
                move |_cx| {
                    resumes.fetch_add(1, Ordering::SeqCst);
                    async {}
                }
            }),
    )
    .unwrap();
    let server = harness.server().clone();
    let (service, mut changes) = watcher();
    let rebuilt = Arc::new(AtomicUsize::new(0));
    let client = harness
        .client()
        .serve(service)
        // Back only after the window: 100 to 200 s.
        .reconnect(Reconnect {
            initial_delay: Duration::from_secs(200),
            max_delay: Duration::from_secs(200),
            ..Reconnect::default()
        })
        .on_connected(|peer| async move {
            StoreClient::new(peer).watch("k").await?;
            Ok(())
        })
        .on_reconnected({
            let rebuilt = Arc::clone(&rebuilt);
            move |peer, resumed| {
                let rebuilt = Arc::clone(&rebuilt);
                async move {
                    if !resumed {
                        StoreClient::new(peer).watch("k").await?;
                        rebuilt.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(())
                }
            }
        })
        .connect()
        .await
        .unwrap();
    let old = client.server_connection_id().unwrap();
    assert_eq!(
        server.members("k"),
        [old],
        "on_connected ran before connect returned"
    );
    let mut events = server.events();
    let mut states = client.states();
    assert_eq!(harness.cut_connections(), 1);
    loop {
        if events.recv().await.unwrap() == (ServerEvent::SessionEnded { id: old }) {
            break;
        }
    }
    assert!(
        server.members("k").is_empty(),
        "the session's rooms went with it"
    );
    loop {
        match states.recv().await.unwrap() {
            ClientState::SessionLost => break,
            ClientState::Resumed { .. } => panic!("resumed past the window"),
            _ => {}
        }
    }
    let new = client.server_connection_id().unwrap();
    assert_ne!(new, old);
    assert_eq!(rebuilt.load(Ordering::SeqCst), 1);
    assert_eq!(
        server.members("k"),
        [new],
        "the hook watched again before the state changed"
    );
    server.broadcast_to("k", &change(1)).await.unwrap();
    assert_eq!(changes.recv().await, Some(1));
    assert_eq!(connects.load(Ordering::SeqCst), 2);
    assert_eq!(resumes.load(Ordering::SeqCst), 0);
}

/// Within the window, on the paused clock: resumed, and the server's hooks
/// say so.
#[tokio::test(start_paused = true)]
async fn server_hooks_see_sessions_start_lose_their_connection_and_resume() {
    let (tx, mut hooks) = mpsc::unbounded_channel::<String>();
    let harness = Harness::new(
        Server::builder()
            .serve(StoreServer::new(Kv))
            .on_connect({
                let tx = tx.clone();
                move |cx: Context| {
                    let tx = tx.clone();
                    async move {
                        // A hook may join rooms and set the metadata.
                        let server = cx.server().expect("a server-side context");
                        server.join(cx.connection_id(), "lobby").unwrap();
                        server
                            .set_meta(cx.connection_id(), sockets::Meta::new("greeted".to_owned()))
                            .unwrap();
                        let _ = tx.send(format!("connect {}", cx.connection_id()));
                    }
                }
            })
            .on_disconnect({
                let tx = tx.clone();
                move |cx: Context, reason| {
                    let tx = tx.clone();
                    async move {
                        let _ = tx.send(format!(
                            "disconnect {} {:?}",
                            cx.connection_id(),
                            reason.code
                        ));
                    }
                }
            })
            .on_resume(move |cx: Context| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(format!("resume {}", cx.connection_id()));
                }
            }),
    )
    .unwrap();
    let client = harness.client().reconnect(quick()).connect().await.unwrap();
    let id = client.server_connection_id().unwrap();
    assert_eq!(hooks.recv().await.unwrap(), format!("connect {id}"));
    let store = StoreClient::new(client.peer());
    assert_eq!(
        store.whoami().await.unwrap(),
        (id, Some("greeted".to_owned()))
    );
    assert_eq!(harness.server().members("lobby"), [id]);
    let mut states = client.states();
    harness.cut_connections();
    assert_eq!(
        hooks.recv().await.unwrap(),
        format!("disconnect {id} ConnectionLost")
    );
    assert_eq!(hooks.recv().await.unwrap(), format!("resume {id}"));
    loop {
        if let ClientState::Resumed { missed } = states.recv().await.unwrap() {
            assert_eq!(missed, 0);
            break;
        }
    }
    assert_eq!(harness.server().members("lobby"), [id]);
    client.close().await;
    assert_eq!(
        hooks.recv().await.unwrap(),
        format!("disconnect {id} Normal")
    );
}

#[tokio::test]
async fn on_reconnected_runs_before_calls_waiting_for_the_connection_go_out() {
    let order = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = Arc::clone(&order);
    let server = server()
        .serve(StoreServer::new(Kv))
        .resumption_window(Duration::ZERO)
        .auth(move |user: String, _peer| {
            let log = Arc::clone(&log);
            async move {
                log.lock().unwrap().push(format!("login {user}"));
                AuthDecision::accept(user)
            }
        })
        .start()
        .await
        .unwrap();
    let proxy = Proxy::start(server.local_addr()).await;
    let hook_log = Arc::clone(&order);
    let client = within(
        client(proxy.addr)
            .credentials("ada")
            .reconnect(quick())
            .on_reconnected(move |peer, resumed| {
                let log = Arc::clone(&hook_log);
                async move {
                    let (id, _) = StoreClient::new(peer).whoami().await?;
                    log.lock()
                        .unwrap()
                        .push(format!("hook resumed={resumed} {id}"));
                    Ok(())
                }
            })
            .connect(),
    )
    .await
    .unwrap();
    let first = client.server_connection_id().unwrap();
    let mut events = server.events();
    proxy.refuse_new(true);
    proxy.reset();
    next_event(&mut events, |e| {
        matches!(e, ServerEvent::Disconnected { .. })
    })
    .await;
    // A call that waits for the connection, made while it is down.
    let store = StoreClient::new(client.peer());
    let waiting = tokio::spawn(async move {
        let options = CallOptions {
            wait_for_connection: true,
            ..CallOptions::default()
        };
        store.with_options(options).whoami().await
    });
    proxy.refuse_new(false);
    let (id, _) = within(waiting).await.unwrap().unwrap();
    assert_ne!(id, first, "a new session: resumption is off");
    let log = order.lock().unwrap().clone();
    assert_eq!(
        log,
        [
            "login ada".to_owned(),
            "login ada".to_owned(),
            format!("hook resumed=false {id}"),
        ]
    );
}

#[tokio::test]
async fn a_failing_connect_hook_fails_connect() {
    let server = server().serve(StoreServer::new(Kv)).start().await.unwrap();
    let outcome = within(
        client(server.local_addr())
            .on_connected(|_peer| async { Err(Error::Rejected("not today".into())) })
            .connect(),
    )
    .await;
    assert!(
        matches!(&outcome, Err(Error::Rejected(r)) if r == "not today"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_rejection_stops_reconnecting_and_says_why() {
    let revoked = Arc::new(AtomicBool::new(false));
    let logins = Arc::new(AtomicUsize::new(0));
    let server = server()
        .serve(StoreServer::new(Kv))
        .auth({
            let (revoked, logins) = (Arc::clone(&revoked), Arc::clone(&logins));
            move |_token: String, _peer| {
                logins.fetch_add(1, Ordering::SeqCst);
                let revoked = revoked.load(Ordering::SeqCst);
                async move {
                    if revoked {
                        AuthDecision::reject("token revoked")
                    } else {
                        AuthDecision::accept(())
                    }
                }
            }
        })
        .start()
        .await
        .unwrap();
    let client = within(
        client(server.local_addr())
            .credentials("t0k3n")
            .reconnect(quick())
            .connect(),
    )
    .await
    .unwrap();
    let mut states = client.states();
    revoked.store(true, Ordering::SeqCst);
    let id = client.server_connection_id().unwrap();
    server.disconnect(id, "token revoked").unwrap();
    let mut seen = Vec::new();
    loop {
        let state = within(states.recv()).await.unwrap();
        seen.push(state.clone());
        if state == ClientState::Closed {
            break;
        }
    }
    assert_eq!(
        seen,
        [
            ClientState::Disconnected(sockets::Disconnect::new(
                CloseCode::Disconnected,
                "token revoked"
            )),
            ClientState::Connecting { attempt: 1 },
            ClientState::AttemptFailed {
                attempt: 1,
                error: "authentication rejected: token revoked".into()
            },
            ClientState::Rejected("token revoked".into()),
            ClientState::Closed,
        ]
    );
    assert_eq!(
        logins.load(Ordering::SeqCst),
        2,
        "one attempt after the rejection, no more"
    );
    let after = client
        .peer()
        .call::<_, ()>("store.whoami", &(), CallOptions::default())
        .await;
    assert!(matches!(after, Err(Error::Disconnected(_))), "{after:?}");
}

#[tokio::test]
async fn retrying_after_a_rejection_is_an_explicit_choice() {
    let revoked = Arc::new(AtomicBool::new(false));
    let server = server()
        .serve(StoreServer::new(Kv))
        .auth({
            let revoked = Arc::clone(&revoked);
            move |_token: String, _peer| {
                let revoked = revoked.load(Ordering::SeqCst);
                async move {
                    if revoked {
                        AuthDecision::reject("try later")
                    } else {
                        AuthDecision::accept(())
                    }
                }
            }
        })
        .start()
        .await
        .unwrap();
    let client = within(
        client(server.local_addr())
            .credentials("t0k3n")
            .reconnect(Reconnect {
                retry_rejected: true,
                ..quick()
            })
            .connect(),
    )
    .await
    .unwrap();
    let mut states = client.states();
    revoked.store(true, Ordering::SeqCst);
    server
        .disconnect(client.server_connection_id().unwrap(), "reauthenticate")
        .unwrap();
    let failed = next_state(&mut states, |s| {
        matches!(s, ClientState::AttemptFailed { .. })
    })
    .await;
    assert!(
        matches!(&failed, ClientState::AttemptFailed { error, .. } if error.ends_with("try later")),
        "{failed:?}"
    );
    revoked.store(false, Ordering::SeqCst);
    next_state(&mut states, |s| *s == ClientState::SessionLost).await;
    assert!(client.is_connected());
}

#[tokio::test]
async fn connect_may_wait_for_a_server_that_is_not_up_yet() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // Without the option, the first failure is the answer.
    let refused = within(client(port).connect()).await;
    assert!(matches!(refused, Err(Error::Io(_))), "{refused:?}");
    // With it, connect keeps trying until the server is there.
    let connecting = tokio::spawn(
        client(port)
            .reconnect(Reconnect {
                retry_first_connect: true,
                ..quick()
            })
            .connect(),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!connecting.is_finished(), "still trying");
    let server = server()
        .address(port.to_string())
        .serve(StoreServer::new(Kv))
        .start()
        .await
        .unwrap();
    let client = within(connecting).await.unwrap().unwrap();
    assert_eq!(client.state(), ClientState::Ready);
    drop(server);
}

#[tokio::test]
async fn connect_gives_up_at_errors_retrying_cannot_fix() {
    let server = server()
        .serve(StoreServer::new(Kv))
        .auth(|_token: String, _peer| async { AuthDecision::reject("no such user") })
        .start()
        .await
        .unwrap();
    let outcome = within(
        client(server.local_addr())
            .credentials("nobody")
            .reconnect(Reconnect {
                retry_first_connect: true,
                ..quick()
            })
            .connect(),
    )
    .await;
    assert!(
        matches!(&outcome, Err(Error::AuthRejected(r)) if r == "no such user"),
        "{outcome:?}"
    );
}

/// Makes a resumption proof from the new connection's handshake hash.
type Prove<'a> = &'a dyn Fn(&[u8; 32]) -> Vec<u8>;

/// What [`by_hand`] returns.
type ByHand = (
    tests::raw::Raw,
    Option<sockets::__internal::protocol::payloads::AuthResult>,
    Vec<u8>,
    sockets::__internal::crypto::ResumptionSecret,
);

/// A connection made by hand: the handshake (announcing a resumption when
/// `resume` says which session, with the proof it makes from the new
/// handshake hash), then AUTH as "ada". Returns the peer, the AUTH_RESULT
/// (or `None` if the server closed instead), the proof sent and the
/// connection's resumption secret.
async fn by_hand(addr: std::net::SocketAddr, resume: Option<(u64, Prove<'_>)>) -> ByHand {
    use futures_util::{SinkExt, StreamExt};
    use sockets::__internal::crypto::{ClientHandshake, FrameKind, Limits, Mode};
    use sockets::__internal::protocol::codec;
    use sockets::__internal::protocol::payloads::{AuthResult, Resume};
    use tokio_tungstenite::tungstenite::Message as Ws;

    let mut ws = tests::raw::socket(addr).await;
    let start = if resume.is_some() {
        ClientHandshake::start_resuming
    } else {
        ClientHandshake::start
    };
    let (handshake, hs1) = start(
        &tests::secret(),
        sockets::crypto::Suite::ChaCha20Poly1305,
        Mode::Encrypted,
        None,
    )
    .unwrap();
    ws.send(Ws::Binary(hs1.into())).await.unwrap();
    let Some(Ok(Ws::Binary(hs2))) = within(ws.next()).await else {
        panic!("expected HS2")
    };
    let (session, _) = handshake.finish(&hs2, Limits::default()).unwrap();
    let h = session.handshake_hash();
    let secret = session.resumption_secret();
    let (sealer, opener) = session.split();
    let mut raw = tests::raw::Raw { ws, sealer, opener };
    let credentials = codec::to_vec("ada").unwrap();
    let (auth, proof) = match resume {
        None => (credentials, Vec::new()),
        Some((id, prove)) => {
            let proof = prove(&h);
            let request = Resume {
                id,
                proof: sockets::serde_bytes::ByteBuf::from(proof.clone()),
            };
            let mut auth = vec![0x92];
            auth.extend_from_slice(&credentials);
            auth.extend_from_slice(&codec::to_vec(&request).unwrap());
            (auth, proof)
        }
    };
    raw.send(FrameKind::Auth, &auth).await;
    let result = match raw.recv().await {
        Some((FrameKind::AuthResult, body)) => {
            raw.opener.set_authenticated();
            Some(codec::decode_value::<AuthResult>(&body).unwrap())
        }
        _ => None,
    };
    (raw, result, proof, secret)
}

#[tokio::test]
async fn forged_replayed_and_spent_resumption_proofs_are_refused() {
    let server = store_server(Arc::new(AtomicUsize::new(0)))
        .start()
        .await
        .unwrap();
    let addr = server.local_addr();
    let mut events = server.events();
    let (first, result, _, rs1) = by_hand(addr, None).await;
    let result = result.unwrap();
    assert!(result.ok && result.resumable && !result.resumed);
    let id = result.id.unwrap();
    drop(first);
    next_event(&mut events, |e| {
        matches!(e, ServerEvent::Disconnected { .. })
    })
    .await;
    assert_eq!(server.stats().waiting_sessions, 1);
    let refused = |result: Option<sockets::__internal::protocol::payloads::AuthResult>| {
        let result = result.expect("an AUTH_RESULT");
        assert!(
            result.ok,
            "refused resumption is a new session, not a rejection"
        );
        assert!(!result.resumed);
        assert_ne!(result.id, Some(id));
    };

    // Forged: a proof made without the secret.
    let (_forged, result, _, _) = by_hand(addr, Some((id, &|_h: &[u8; 32]| vec![0x5a; 32]))).await;
    refused(result);
    // The proof for another session does not open this one.
    let (_other, result, _, _) = by_hand(
        addr,
        Some((id + 1000, &|h: &[u8; 32]| rs1.proof(h, id + 1000).to_vec())),
    )
    .await;
    assert!(!result.unwrap().resumed);
    assert_eq!(
        server.stats().waiting_sessions,
        1,
        "refusals leave the session waiting"
    );

    // The holder of the last connection's secret resumes it.
    let (second, result, proof, rs2) =
        by_hand(addr, Some((id, &|h: &[u8; 32]| rs1.proof(h, id).to_vec()))).await;
    let result = result.unwrap();
    assert!(result.resumed && result.id == Some(id), "{result:?}");
    assert_eq!(server.stats().waiting_sessions, 0);

    // Replayed: the same proof in another handshake.
    let (_replay, result, _, _) = by_hand(addr, Some((id, &|_h: &[u8; 32]| proof.clone()))).await;
    refused(result);
    // Spent: the old secret, with a proof made for the new handshake.
    let (_spent, result, _, _) =
        by_hand(addr, Some((id, &|h: &[u8; 32]| rs1.proof(h, id).to_vec()))).await;
    refused(result);
    // The live connection's secret still opens it (a renewal).
    let (_third, result, _, _) =
        by_hand(addr, Some((id, &|h: &[u8; 32]| rs2.proof(h, id).to_vec()))).await;
    assert!(result.unwrap().resumed);
    drop(second);
    assert_eq!(panics(), 0);
}

#[tokio::test]
async fn a_resuming_auth_that_is_not_a_pair_closes_with_a_protocol_error() {
    use futures_util::{SinkExt, StreamExt};
    use sockets::__internal::crypto::{ClientHandshake, FrameKind, Limits, Mode};
    use tokio_tungstenite::tungstenite::Message as Ws;

    let server = store_server(Arc::new(AtomicUsize::new(0)))
        .start()
        .await
        .unwrap();
    let mut ws = tests::raw::socket(server.local_addr()).await;
    let (handshake, hs1) = ClientHandshake::start_resuming(
        &tests::secret(),
        sockets::crypto::Suite::Aes256Gcm,
        Mode::Encrypted,
        None,
    )
    .unwrap();
    ws.send(Ws::Binary(hs1.into())).await.unwrap();
    let Some(Ok(Ws::Binary(hs2))) = within(ws.next()).await else {
        panic!("expected HS2")
    };
    let (session, _) = handshake.finish(&hs2, Limits::default()).unwrap();
    let (sealer, opener) = session.split();
    let mut raw = tests::raw::Raw { ws, sealer, opener };
    // Credentials alone, as if the flag had not been set.
    raw.send(FrameKind::Auth, &[0xa3, b'a', b'd', b'a']).await;
    assert_eq!(
        tests::raw::closed(&mut raw.ws).await,
        Some((1002, "malformed resumption request".to_owned()))
    );
}

#[tokio::test]
async fn every_reason_the_server_gives_reaches_the_client_as_it_said_it() {
    let logins = Arc::new(AtomicUsize::new(0));
    // A plaintext client, on a server that does not allow it.
    let server = store_server(Arc::clone(&logins)).start().await.unwrap();
    let addr = server.local_addr();
    let plaintext = within(
        client(addr)
            .credentials("ada")
            .plaintext(true)
            .plaintext_over_ws(true)
            .connect(),
    )
    .await;
    assert!(
        matches!(&plaintext, Err(Error::HandshakeRefused(r)) if r == "plaintext mode not allowed"),
        "{plaintext:?}"
    );
    assert_eq!(
        plaintext.unwrap_err().to_string(),
        "handshake refused by the server: plaintext mode not allowed"
    );
    // The application's own reason.
    let kicked = within(
        client(addr)
            .credentials("ada")
            .reconnect(Reconnect::disabled())
            .connect(),
    )
    .await
    .unwrap();
    let mut states = kicked.states();
    server
        .disconnect(kicked.server_connection_id().unwrap(), "maintenance")
        .unwrap();
    assert_eq!(
        next_state(&mut states, |s| matches!(s, ClientState::Disconnected(_))).await,
        ClientState::Disconnected(sockets::Disconnect::new(
            CloseCode::Disconnected,
            "maintenance"
        ))
    );
    // Shutting down.
    let staying = within(
        client(addr)
            .credentials("ada")
            .reconnect(Reconnect::disabled())
            .connect(),
    )
    .await
    .unwrap();
    let mut states = staying.states();
    server.shutdown(Duration::from_secs(1)).await;
    assert_eq!(
        next_state(&mut states, |s| matches!(s, ClientState::Disconnected(_))).await,
        ClientState::Disconnected(sockets::Disconnect::new(
            CloseCode::GoingAway,
            "server shutting down"
        ))
    );

    // Server full.
    let full = server_with(|b| b.max_connections(1)).await;
    let _first = within(client(full.local_addr()).connect()).await.unwrap();
    let second = within(client(full.local_addr()).connect()).await;
    assert!(
        matches!(&second, Err(Error::Rejected(r)) if r == "too many connections"),
        "{second:?}"
    );

    // A lockout, with its time left, in a reconnecting client's state.
    let strict = server_with(|b| b.handshake_failures_per_ip(2, Duration::from_secs(120))).await;
    let locked = within(client(strict.local_addr()).reconnect(quick()).connect())
        .await
        .unwrap();
    let mut states = locked.states();
    for _ in 0..2 {
        let guess = within(
            client(strict.local_addr())
                .secret(tests::wrong_secret())
                .connect(),
        )
        .await;
        assert!(matches!(guess, Err(Error::HandshakeFailed)), "{guess:?}");
    }
    strict
        .disconnect(locked.server_connection_id().unwrap(), "again")
        .unwrap();
    let failed = next_state(&mut states, |s| {
        matches!(s, ClientState::AttemptFailed { .. })
    })
    .await;
    let ClientState::AttemptFailed { error, .. } = failed else {
        unreachable!()
    };
    let left: u64 = error
        .strip_prefix("rejected: too many failed handshakes from this address; retry in ")
        .and_then(|rest| rest.strip_suffix(" s"))
        .and_then(|seconds| seconds.parse().ok())
        .unwrap_or_else(|| panic!("the time left is in the state: {error}"));
    assert!((100..=120).contains(&left), "{error}");
    locked.close().await;
    assert_eq!(panics(), 0);
}

async fn server_with(
    configure: impl FnOnce(sockets::ServerBuilder) -> sockets::ServerBuilder,
) -> Server {
    configure(server().serve(StoreServer::new(Kv)))
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_server_killed_without_a_close_is_a_lost_connection_and_tampering_is_not() {
    // Killed: the process's sockets close with no CLOSE and no WebSocket close.
    let remote = tests::Remote::start(|| server().serve(StoreServer::new(Kv)));
    let killed = within(
        client(remote.addr)
            .reconnect(Reconnect::disabled())
            .connect(),
    )
    .await
    .unwrap();
    let mut states = killed.states();
    remote.kill();
    let ClientState::Disconnected(lost) =
        next_state(&mut states, |s| matches!(s, ClientState::Disconnected(_))).await
    else {
        unreachable!()
    };
    assert_eq!(lost.code, CloseCode::ConnectionLost, "{lost}");
    assert!(lost.reason.starts_with("connection lost"), "{lost}");
    assert!(
        !lost.reason.contains("CLOSE"),
        "nothing suggests tampering: {lost}"
    );

    // Tampered: a bit flipped in the server's next frame.
    let server = server().serve(StoreServer::new(Kv)).start().await.unwrap();
    let mitm = tests::mitm::Mitm::start(
        server.local_addr(),
        tests::mitm::pass(),
        tests::mitm::at(2, |frame| vec![tests::mitm::flip(&frame, 20, 0)]),
    )
    .await;
    let fooled = within(client(mitm.addr).reconnect(Reconnect::disabled()).connect())
        .await
        .unwrap();
    let mut states = fooled.states();
    let store = StoreClient::new(fooled.peer());
    let _ = store.whoami().await;
    let ClientState::Disconnected(tampered) =
        next_state(&mut states, |s| matches!(s, ClientState::Disconnected(_))).await
    else {
        unreachable!()
    };
    assert_eq!(tampered.code, CloseCode::ProtocolError, "{tampered}");
    assert_eq!(tampered.reason, "decryption failed");
}

#[tokio::test]
async fn server_side_peers_follow_sessions_and_find_users_by_their_metadata() {
    let server = store_server(Arc::new(AtomicUsize::new(0)))
        .start()
        .await
        .unwrap();
    let proxy = Proxy::start(server.local_addr()).await;
    let (ada, mut changes, id) = watching_client(&proxy).await;
    let bob = within(client(server.local_addr()).credentials("bob").connect())
        .await
        .unwrap();
    let bob_id = bob.server_connection_id().unwrap();
    // By what the auth hook stored.
    assert_eq!(server.connections_of(|user: &String| user == "ada"), [id]);
    assert_eq!(server.connections_of(|user: &String| user.len() == 3), {
        let mut both = vec![id, bob_id];
        both.sort();
        both
    });
    assert!(
        server.connections_of(|_: &u64| true).is_empty(),
        "another type: none, quietly"
    );
    // A peer taken before a loss follows the session: notifications wait
    // for the client, calls fail while it is away.
    let peer = server.peer(id).unwrap();
    let mut states = ada.states();
    lose_connection(&proxy, &server, id).await;
    WatcherClient::new(peer.clone())
        .changed("k", 1)
        .await
        .unwrap();
    let away = peer
        .call::<_, ()>("watcher.nothing", &(), CallOptions::default())
        .await;
    assert!(matches!(away, Err(Error::Disconnected(_))), "{away:?}");
    proxy.refuse_new(false);
    next_state(&mut states, |s| matches!(s, ClientState::Resumed { .. })).await;
    WatcherClient::new(peer).changed("k", 2).await.unwrap();
    assert_eq!(received(&mut changes, 2).await, [1, 2]);
    // Every live authenticated session, for typed calls to all.
    let ids: Vec<ConnectionId> = server.peers().into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&id) && ids.contains(&bob_id));
}

#[tokio::test]
async fn notifications_nobody_handles_are_counted_where_they_arrive() {
    let server = store_server(Arc::new(AtomicUsize::new(0)))
        .start()
        .await
        .unwrap();
    // This client serves nothing.
    let quiet = within(client(server.local_addr()).credentials("ada").connect())
        .await
        .unwrap();
    let peer = server.peer(quiet.server_connection_id().unwrap()).unwrap();
    peer.notify("watcher.changed", &("k", 1)).await.unwrap();
    // A call after it, on the same connection, is read after it.
    let unknown = peer
        .call::<_, ()>("ghost.call", &(), CallOptions::default())
        .await;
    assert!(
        matches!(unknown, Err(Error::UnknownMethod(_))),
        "{unknown:?}"
    );
    assert_eq!(quiet.dropped_notifications(), 1);
    // And on the server, for a client's notification to nothing.
    quiet.peer().notify("store.nothing", &()).await.unwrap();
    let _ = StoreClient::new(quiet.peer()).whoami().await.unwrap();
    assert_eq!(server.stats().dropped_notifications, 1);
}
