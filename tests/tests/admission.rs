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
