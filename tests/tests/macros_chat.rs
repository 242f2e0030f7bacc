//! A chat with server push, declared with `#[sockets::service]` alone: the
//! server serves `Chat` (join a room, say something), every client serves
//! `ChatEvents` (a `message` notification), and the server pushes with
//! `broadcast_to`, `broadcast` and `notify` using the generated request enum.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sockets::{AuthDecision, Client, ConnectionId, Context, Server};
use tests::{client, server, within};
use tokio::sync::mpsc;

/// Why a chat call failed.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChatError {
    /// The speaker is not in that room.
    NotInRoom(String),
    /// The server is not ready yet (or no longer running).
    Unavailable,
}

/// What the server serves.
#[sockets::service]
pub trait Chat {
    /// Joins `room`.
    async fn join(&self, cx: &Context, room: String) -> Result<(), ChatError>;
    /// Says `text` to everyone in `room`; returns how many it reached.
    async fn say(&self, cx: &Context, room: String, text: String) -> Result<usize, ChatError>;
    /// The caller's connection id as the server knows it; guests may ask.
    #[sockets(open)]
    async fn my_id(&self, cx: &Context) -> ConnectionId;
}

/// What every client serves: the server pushes messages to it.
#[sockets::service]
pub trait ChatEvents {
    /// Someone said something.
    #[sockets(notify)]
    async fn message(&self, from: String, text: String);
}

/// What the auth hook stores: the user's name.
struct User(String);

/// The server's chat; it reaches rooms through the server it runs in, which
/// every handler's context holds.
struct Rooms;

fn server_of(cx: &Context) -> Result<Server, ChatError> {
    cx.server().ok_or(ChatError::Unavailable)
}

impl Chat for Rooms {
    async fn join(&self, cx: &Context, room: String) -> Result<(), ChatError> {
        server_of(cx)?
            .join(cx.connection_id(), &room)
            .map_err(|_| ChatError::Unavailable)
    }

    async fn say(&self, cx: &Context, room: String, text: String) -> Result<usize, ChatError> {
        let server = server_of(cx)?;
        if !server.members(&room).contains(&cx.connection_id()) {
            return Err(ChatError::NotInRoom(room));
        }
        // The speaker's identity comes from the auth hook, never from the client.
        let from = cx
            .meta::<User>()
            .map_or_else(|| "?".to_owned(), |u| u.0.clone());
        server
            .broadcast_to(&room, &ChatEventsRequest::Message { from, text })
            .await
            .map_err(|_| ChatError::Unavailable)
    }

    async fn my_id(&self, cx: &Context) -> ConnectionId {
        cx.connection_id()
    }
}

/// A client's side: every message it is pushed, in order.
struct Inbox(mpsc::UnboundedSender<(String, String)>);

impl ChatEvents for Inbox {
    async fn message(&self, from: String, text: String) {
        let _ = self.0.send((from, text));
    }
}

#[derive(Serialize, Deserialize)]
struct Login {
    user: String,
}

async fn start() -> Server {
    server()
        .serve(ChatServer::new(Rooms))
        .auth(|login: Login, _peer| async move {
            if login.user == "guest" {
                AuthDecision::Guest
            } else {
                AuthDecision::accept(User(login.user))
            }
        })
        .start()
        .await
        .unwrap()
}

/// A connected chat user.
struct Member {
    client: Client,
    chat: ChatClient,
    id: ConnectionId,
    inbox: mpsc::UnboundedReceiver<(String, String)>,
}

impl Member {
    async fn login(server: &Server, user: &str) -> Self {
        let (tx, inbox) = mpsc::unbounded_channel();
        let client = within(
            client(server.local_addr())
                .credentials(&Login { user: user.into() })
                .serve(ChatEventsServer::new(Inbox(tx)))
                .connect(),
        )
        .await
        .unwrap();
        let chat = ChatClient::new(client.peer());
        let id = within(chat.my_id()).await.unwrap();
        Self {
            client,
            chat,
            id,
            inbox,
        }
    }

    /// The next message pushed to this member.
    async fn next(&mut self) -> (String, String) {
        within(self.inbox.recv())
            .await
            .expect("the client is alive")
    }

    async fn join(&self, room: &str) {
        within(self.chat.join(room)).await.unwrap().unwrap();
    }

    async fn say(&self, room: &str, text: &str) -> Result<usize, ChatError> {
        within(self.chat.say(room, text)).await.unwrap()
    }
}

fn said(from: &str, text: &str) -> (String, String) {
    (from.to_owned(), text.to_owned())
}

#[tokio::test]
async fn a_room_hears_its_members_and_no_one_else() {
    let server = start().await;
    let mut alice = Member::login(&server, "alice").await;
    let mut bob = Member::login(&server, "bob").await;
    let mut carol = Member::login(&server, "carol").await;
    alice.join("rust").await;
    bob.join("rust").await;
    carol.join("go").await;
    assert_eq!(server.members("rust"), vec![alice.id, bob.id]);

    // Everyone in the room hears it, the speaker included, signed with the
    // name the auth hook gave the speaker.
    assert_eq!(alice.say("rust", "hello rustaceans").await, Ok(2));
    assert_eq!(bob.next().await, said("alice", "hello rustaceans"));
    assert_eq!(alice.next().await, said("alice", "hello rustaceans"));
    assert_eq!(bob.say("rust", "hi alice").await, Ok(2));
    assert_eq!(alice.next().await, said("bob", "hi alice"));
    assert_eq!(bob.next().await, said("bob", "hi alice"));

    // Carol is elsewhere: the first thing she hears is her own room.
    assert_eq!(carol.say("go", "gophers here").await, Ok(1));
    assert_eq!(carol.next().await, said("carol", "gophers here"));

    // Speaking in a room one has not joined is the chat's own error.
    assert_eq!(
        carol.say("rust", "let me in").await,
        Err(ChatError::NotInRoom("rust".into()))
    );
    // Messages on one connection keep their order: had carol's refused line
    // or the rust room's talk reached alice, it would come before this.
    assert_eq!(alice.say("rust", "bye").await, Ok(2));
    assert_eq!(alice.next().await, said("alice", "bye"));
    assert_eq!(bob.next().await, said("alice", "bye"));

    for member in [alice, bob, carol] {
        member.client.close().await;
    }
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_departed_member_leaves_its_rooms() {
    let server = start().await;
    let mut alice = Member::login(&server, "alice").await;
    let bob = Member::login(&server, "bob").await;
    alice.join("rust").await;
    bob.join("rust").await;

    let mut events = server.events();
    bob.client.close().await;
    within(async {
        loop {
            match events.recv().await {
                Ok(sockets::ServerEvent::Disconnected { id, .. }) if id == bob.id => break,
                Ok(_) => {}
                Err(error) => panic!("server events ended: {error}"),
            }
        }
    })
    .await;
    assert_eq!(server.members("rust"), vec![alice.id]);
    assert_eq!(alice.say("rust", "anyone?").await, Ok(1));
    assert_eq!(alice.next().await, said("alice", "anyone?"));

    alice.client.close().await;
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn broadcasts_skip_guests_and_notify_reaches_one() {
    let server = start().await;
    let mut alice = Member::login(&server, "alice").await;
    let mut bob = Member::login(&server, "bob").await;
    let mut guest = Member::login(&server, "guest").await;
    assert_eq!(guest.client.session(), Some(sockets::SessionKind::Guest));

    // A guest may not join a room itself...
    let refused = within(guest.chat.join("rust")).await;
    assert!(
        matches!(refused, Err(sockets::Error::Unauthorized)),
        "{refused:?}"
    );
    // ...and even when the server puts it in one, room broadcasts skip it.
    alice.join("rust").await;
    server.join(guest.id, "rust").unwrap();
    assert_eq!(server.members("rust"), vec![alice.id, guest.id]);
    assert_eq!(alice.say("rust", "members only").await, Ok(1));
    assert_eq!(alice.next().await, said("alice", "members only"));

    // A broadcast to everyone reaches the authenticated clients only.
    let notice = ChatEventsRequest::Message {
        from: "server".into(),
        text: "maintenance at noon".into(),
    };
    assert_eq!(within(server.broadcast(&notice)).await.unwrap(), 2);
    assert_eq!(alice.next().await, said("server", "maintenance at noon"));
    assert_eq!(bob.next().await, said("server", "maintenance at noon"));

    // A notification to one connection reaches it, guest or not; had the
    // broadcasts reached the guest, they would have come first.
    let private = ChatEventsRequest::Message {
        from: "server".into(),
        text: "just you".into(),
    };
    within(server.notify(guest.id, &private)).await.unwrap();
    assert_eq!(guest.next().await, said("server", "just you"));
    within(server.notify(bob.id, &private)).await.unwrap();
    assert_eq!(bob.next().await, said("server", "just you"));

    for member in [alice, bob, guest] {
        member.client.close().await;
    }
    server.shutdown(Duration::from_secs(1)).await;
}
