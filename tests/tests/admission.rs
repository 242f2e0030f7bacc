//! Who gets in: the handshake, the auth hook, guests, the connection limit.

use serde::{Deserialize, Serialize};
use sockets::protocol::CloseCode;
use sockets::server::ServerEvent;
use sockets::{AuthDecision, CallOptions, Error, SessionKind};
use tests::services::Calc;
use tests::{client, server, within, wrong_secret};

#[derive(Serialize, Deserialize)]
struct Login {
    user: String,
}

fn login(user: &str) -> Login {
    Login { user: user.into() }
}

fn opts() -> CallOptions {
    CallOptions::default()
}

async fn server_with_auth() -> sockets::Server {
    let (calc, _control) = Calc::new();
    server()
        .serve(calc)
        .auth(|login: Login, _peer| async move {
            match login.user.as_str() {
                "guest" => AuthDecision::Guest,
                "mallory" => AuthDecision::reject("mallory is banned"),
                user => AuthDecision::accept(user.to_owned()),
            }
        })
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_wrong_secret_fails_the_handshake_and_the_server_keeps_serving() {
    let server = server_with_auth().await;
    let mut events = server.events();
    let failed = within(
        client(server.local_addr())
            .secret(wrong_secret())
            .credentials(&login("alice"))
            .connect(),
    )
    .await;
    assert!(matches!(failed, Err(Error::HandshakeFailed)), "{failed:?}");
    loop {
        match within(events.recv()).await.unwrap() {
            ServerEvent::Disconnected { reason, .. } => {
                assert_eq!(reason.code, CloseCode::PolicyViolation);
                assert_eq!(reason.reason, "", "a failed handshake reveals nothing");
                break;
            }
            ServerEvent::Authenticated { .. } => panic!("a client without the secret got in"),
            _ => {}
        }
    }
    let good = within(
        client(server.local_addr())
            .credentials(&login("alice"))
            .connect(),
    )
    .await
    .unwrap();
    let sum: i64 = good.peer().call("calc.add", &(1, 2), opts()).await.unwrap();
    assert_eq!(sum, 3);
}

#[tokio::test]
async fn each_client_sees_the_metadata_of_its_own_credentials() {
    let server = server_with_auth().await;
    let alice = within(
        client(server.local_addr())
            .credentials(&login("alice"))
            .connect(),
    )
    .await
    .unwrap();
    let bob = within(
        client(server.local_addr())
            .credentials(&login("bob"))
            .connect(),
    )
    .await
    .unwrap();
    let a: Option<String> = alice.peer().call("calc.whoami", &(), opts()).await.unwrap();
    let b: Option<String> = bob.peer().call("calc.whoami", &(), opts()).await.unwrap();
    assert_eq!(a.as_deref(), Some("alice"));
    assert_eq!(b.as_deref(), Some("bob"));
    let mut metas: Vec<String> = server
        .connections()
        .iter()
        .filter_map(|c| c.meta.get::<String>().cloned())
        .collect();
    metas.sort();
    assert_eq!(metas, ["alice", "bob"]);
}

#[tokio::test]
async fn a_guest_may_call_only_open_methods() {
    let server = server_with_auth().await;
    let guest = within(
        client(server.local_addr())
            .credentials(&login("guest"))
            .connect(),
    )
    .await
    .unwrap();
    assert_eq!(guest.session(), Some(SessionKind::Guest));
    let denied = within(guest.peer().call::<_, i64>("calc.add", &(1, 2), opts())).await;
    assert!(matches!(denied, Err(Error::Unauthorized)), "{denied:?}");
    let echo: String = guest
        .peer()
        .call("calc.echo", &("hi",), opts())
        .await
        .unwrap();
    assert_eq!(echo, "hi");
    let who: Option<String> = guest.peer().call("calc.whoami", &(), opts()).await.unwrap();
    assert_eq!(who, None);
}

#[tokio::test]
async fn rejected_credentials_end_with_the_reason() {
    let server = server_with_auth().await;
    let rejected = within(
        client(server.local_addr())
            .credentials(&login("mallory"))
            .connect(),
    )
    .await;
    assert!(
        matches!(&rejected, Err(Error::AuthRejected(reason)) if reason == "mallory is banned"),
        "{rejected:?}"
    );
    let undecodable = within(client(server.local_addr()).credentials(&42u8).connect()).await;
    assert!(
        matches!(undecodable, Err(Error::AuthRejected(_))),
        "{undecodable:?}"
    );
    assert!(server.connections().is_empty());
}

#[tokio::test]
async fn connections_past_the_limit_are_refused() {
    let (calc, _control) = Calc::new();
    let server = server()
        .max_connections(1)
        .serve(calc)
        .start()
        .await
        .unwrap();
    let mut events = server.events();
    let first = within(client(server.local_addr()).connect()).await.unwrap();
    let second = within(client(server.local_addr()).connect()).await;
    assert!(matches!(second, Err(Error::Rejected(_))), "{second:?}");
    first.close().await;
    loop {
        if let ServerEvent::Disconnected { .. } = within(events.recv()).await.unwrap() {
            break;
        }
    }
    let third = within(client(server.local_addr()).connect()).await.unwrap();
    let sum: i64 = third
        .peer()
        .call("calc.add", &(2, 2), opts())
        .await
        .unwrap();
    assert_eq!(sum, 4);
}

#[tokio::test]
async fn a_server_without_a_secret_does_not_start() {
    let started = sockets::Server::builder()
        .address("127.0.0.1:0")
        .start()
        .await;
    assert!(matches!(started, Err(Error::Config(_))), "{started:?}");
    let connected = sockets::Client::builder()
        .url("ws://127.0.0.1:1/")
        .connect()
        .await;
    assert!(matches!(connected, Err(Error::Config(_))), "{connected:?}");
}

#[tokio::test]
async fn connect_reports_io_errors_and_timeouts() {
    // Nobody listens on a port we just released.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let refused = within(client(port).connect()).await;
    assert!(matches!(refused, Err(Error::Io(_))), "{refused:?}");

    // A listener that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let timed_out = within(
        client(addr)
            .handshake_timeout(std::time::Duration::from_millis(200))
            .connect(),
    )
    .await;
    assert!(matches!(timed_out, Err(Error::Timeout)), "{timed_out:?}");

    let wss = within(
        sockets::Client::builder()
            .url("wss://127.0.0.1:1/")
            .secret(tests::secret())
            .connect(),
    )
    .await;
    assert!(matches!(wss, Err(Error::Config(_))), "{wss:?}");
}

#[tokio::test]
async fn a_client_that_does_not_finish_the_handshake_is_dropped_in_time() {
    let server = server()
        .handshake_timeout(std::time::Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    let mut events = server.events();
    // Upgrade to WebSocket, then say nothing.
    let (_socket, _) = tokio_tungstenite::connect_async(tests::url(server.local_addr()))
        .await
        .unwrap();
    loop {
        if let ServerEvent::Disconnected { reason, .. } = within(events.recv()).await.unwrap() {
            assert_eq!(reason.code, CloseCode::HandshakeTimeout);
            break;
        }
    }
}

#[tokio::test]
async fn a_client_sends_nothing_to_a_server_that_does_not_prove_the_secret() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    // An impostor: answers HS1 with a well-formed header and garbage.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let impostor = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let Some(Ok(Message::Binary(hs1))) = ws.next().await else {
            panic!("expected HS1")
        };
        let mut hs2 = hs1.to_vec();
        hs2[1] = 0x02;
        for byte in hs2.iter_mut().skip(8) {
            *byte ^= 0x5a;
        }
        ws.send(Message::Binary(hs2.into())).await.unwrap();
        // Whatever comes next must not be a frame (no AUTH, no credentials).
        match ws.next().await {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => {}
            Some(Ok(other)) => panic!("the client sent {other:?} after a bad HS2"),
        }
    });
    let failed = within(client(addr).credentials(&login("alice")).connect()).await;
    assert!(matches!(failed, Err(Error::HandshakeFailed)), "{failed:?}");
    within(impostor).await.unwrap();
}
