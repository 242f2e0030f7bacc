//! The server calling and notifying its clients: one, all, rooms.

use serde::{Deserialize, Serialize};
use sockets::{AuthDecision, CallOptions, Client, ConnectionId, Error, ServerEvent};
use tests::services::{Calc, Inbox, InboxRequest, InboxResponse};
use tests::{client, server, within};
use tokio::sync::mpsc::UnboundedReceiver;

#[derive(Serialize, Deserialize)]
struct Login {
    user: String,
}

async fn start() -> sockets::Server {
    let (calc, _control) = Calc::new();
    server()
        .serve(calc)
        .auth(|login: Login, _peer| async move {
            if login.user == "guest" {
                AuthDecision::Guest
            } else {
                AuthDecision::accept(login.user)
            }
        })
        .start()
        .await
        .unwrap()
}

/// A client named `user` serving an inbox; its server-side id; its news.
async fn join(
    server: &sockets::Server,
    user: &str,
) -> (Client, ConnectionId, UnboundedReceiver<String>) {
    let (inbox, news) = Inbox::new(user);
    let client = within(
        client(server.local_addr())
            .credentials(&Login { user: user.into() })
            .serve(inbox)
            .connect(),
    )
    .await
    .unwrap();
    let id: ConnectionId = client
        .peer()
        .call("calc.my_id", &(), CallOptions::default())
        .await
        .unwrap();
    // AUTH_RESULT told the client the id the server gave it, guests too.
    assert_eq!(client.server_connection_id(), Some(id));
    (client, id, news)
}

async fn next(news: &mut UnboundedReceiver<String>) -> String {
    within(news.recv()).await.expect("the client is alive")
}

#[tokio::test]
async fn the_server_calls_one_client_and_gets_its_reply() {
    let server = start().await;
    let (_alice, alice, _) = join(&server, "alice").await;
    let (_bob, bob, _) = join(&server, "bob").await;
    let reply = within(server.send_to(alice, &InboxRequest::Hello("server".into()))).await;
    assert_eq!(
        reply.unwrap(),
        InboxResponse::Hello("alice greets server".into())
    );
    let reply = within(server.send_to(bob, &InboxRequest::Hello("server".into()))).await;
    assert_eq!(
        reply.unwrap(),
        InboxResponse::Hello("bob greets server".into())
    );
    // The id of a connection that has closed.
    let mut events = server.events();
    let gone = within(
        client(server.local_addr())
            .credentials(&Login {
                user: "gone".into(),
            })
            .connect(),
    )
    .await
    .unwrap();
    let gone_id = gone.server_connection_id().unwrap();
    gone.close().await;
    loop {
        match within(events.recv()).await.unwrap() {
            ServerEvent::Disconnected { id, .. } if id == gone_id => break,
            _ => {}
        }
    }
    let nobody = server
        .send_to(gone_id, &InboxRequest::Hello("x".into()))
        .await;
    assert!(
        matches!(nobody, Err(Error::UnknownConnection(_))),
        "{nobody:?}"
    );
    // Through a peer, as generated client stubs would call.
    let peer = server.peer(alice).unwrap();
    let greeting: String = peer
        .call("inbox.hello", &("peer",), CallOptions::default())
        .await
        .unwrap();
    assert_eq!(greeting, "alice greets peer");
}

#[tokio::test]
async fn the_client_knows_its_server_side_id_until_it_closes() {
    let server = start().await;
    let (alice, _, _) = join(&server, "alice").await;
    let id = alice.server_connection_id().unwrap();
    let reply = within(server.send_to(id, &InboxRequest::Hello("you".into()))).await;
    assert_eq!(
        reply.unwrap(),
        InboxResponse::Hello("alice greets you".into())
    );
    assert!(server.connections().iter().any(|c| c.id == id));
    within(alice.close()).await;
    assert_eq!(alice.server_connection_id(), None);
}

#[tokio::test]
async fn broadcast_reaches_every_authenticated_client_and_no_guest() {
    let server = start().await;
    let (_alice, _, mut alice_news) = join(&server, "alice").await;
    let (_bob, _, mut bob_news) = join(&server, "bob").await;
    let (_guest, guest, mut guest_news) = join(&server, "guest").await;
    let reached = server
        .broadcast(&InboxRequest::News("hello all".into()))
        .await
        .unwrap();
    assert_eq!(reached, 2);
    assert_eq!(next(&mut alice_news).await, "hello all");
    assert_eq!(next(&mut bob_news).await, "hello all");
    // Messages on one connection keep their order: had the broadcast reached
    // the guest, it would arrive before this.
    server
        .notify(guest, &InboxRequest::News("just you".into()))
        .await
        .unwrap();
    assert_eq!(next(&mut guest_news).await, "just you");
}

#[tokio::test]
async fn rooms_group_connections_and_forget_them_on_disconnect() {
    let server = start().await;
    let (alice_client, alice, mut alice_news) = join(&server, "alice").await;
    let (_bob, bob, mut bob_news) = join(&server, "bob").await;
    let (_carol, carol, mut carol_news) = join(&server, "carol").await;
    let mut events = server.events();
    server.join(alice, "ops").unwrap();
    server.join(bob, "ops").unwrap();
    server.join(carol, "dev").unwrap();
    assert_eq!(server.members("ops"), vec![alice, bob]);
    let reached = server
        .broadcast_to("ops", &InboxRequest::News("ops only".into()))
        .await
        .unwrap();
    assert_eq!(reached, 2);
    assert_eq!(next(&mut alice_news).await, "ops only");
    assert_eq!(next(&mut bob_news).await, "ops only");
    server
        .notify(carol, &InboxRequest::News("not ops".into()))
        .await
        .unwrap();
    assert_eq!(next(&mut carol_news).await, "not ops");

    assert!(server.leave(bob, "ops"));
    assert!(!server.leave(bob, "ops"));
    assert_eq!(server.members("ops"), vec![alice]);
    alice_client.close().await;
    loop {
        if let ServerEvent::Disconnected { id, .. } = within(events.recv()).await.unwrap()
            && id == alice
        {
            break;
        }
    }
    assert!(
        server.members("ops").is_empty(),
        "a closed connection leaves its rooms"
    );
    assert!(matches!(
        server.join(alice, "ops"),
        Err(Error::UnknownConnection(_))
    ));
    assert_eq!(server.members("dev"), vec![carol]);
}

#[tokio::test]
async fn call_all_collects_every_outcome_including_failures() {
    let server = start().await;
    let (_alice, alice, _) = join(&server, "alice").await;
    // Bob serves nothing: the call fails for him alone.
    let bob_client = within(
        client(server.local_addr())
            .credentials(&Login { user: "bob".into() })
            .connect(),
    )
    .await
    .unwrap();
    let bob: ConnectionId = bob_client
        .peer()
        .call("calc.my_id", &(), CallOptions::default())
        .await
        .unwrap();
    let results = within(server.call_all(&InboxRequest::Hello("everyone".into())))
        .await
        .unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(
        results.get(&alice).unwrap().as_ref().unwrap(),
        &InboxResponse::Hello("alice greets everyone".into())
    );
    assert!(
        matches!(results.get(&bob), Some(Err(Error::UnknownMethod(_)))),
        "{:?}",
        results.get(&bob)
    );
}

#[tokio::test]
async fn the_registry_describes_connections_and_disconnects_them() {
    let server = start().await;
    let (alice_client, alice, _) = join(&server, "alice").await;
    let mut states = alice_client.states();
    let info = server.get(alice).unwrap();
    assert_eq!(info.meta.get::<String>().map(String::as_str), Some("alice"));
    assert_eq!(info.peer_addr.ip(), std::net::Ipv4Addr::LOCALHOST);
    assert!(info.connected_since <= std::time::SystemTime::now());
    server.disconnect(alice, "maintenance").unwrap();
    loop {
        if let sockets::ClientState::Disconnected(reason) = within(states.recv()).await.unwrap() {
            assert_eq!(reason.code, sockets::protocol::CloseCode::Disconnected);
            assert_eq!(reason.reason, "maintenance");
            break;
        }
    }
}
