//! Chat rooms: many clients, rooms by name, broadcast, per-user tokens.
//!
//! ```text
//! cargo run -p examples --bin chat                  # self-contained: a server and 4 clients in one process
//! cargo run -p examples --bin chat -- --clients 8   # more clients
//! cargo run -p examples --bin chat -- --describe   # its services' descriptors, as JSON
//! ```
//!
//! Each user presents a token; the server's auth hook maps it to the user's
//! name and stores that as the connection's metadata, so every handler
//! knows who speaks without the client ever saying it. Clients join rooms
//! by name; what one says in a room reaches every member of that room (a
//! room broadcast), and a server-wide notice reaches everyone. Each client
//! serves a `Listener` service the server pushes to.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sockets::crypto::{Secret, generate_key};
use sockets::{AuthDecision, Client, Context, Error, Server};
use tokio::sync::mpsc;

/// What the chat server can refuse.
#[derive(Debug, Serialize, Deserialize)]
pub enum ChatError {
    /// Say something in a room you have joined.
    NotInRoom(String),
    /// The message was empty.
    Empty,
}

/// Who a connection belongs to: stored by the auth hook.
#[derive(Clone, Debug)]
struct User(String);

/// What the server serves.
#[sockets::service]
pub trait Chat {
    /// Joins a room; returns who is in it now.
    async fn join(&self, cx: &Context, room: String) -> Vec<String>;
    /// Says something in a room you are in; returns how many members it reached.
    async fn say(&self, cx: &Context, room: String, text: String) -> Result<usize, ChatError>;
}

/// What every client serves: the server pushes to it.
#[sockets::service]
pub trait Listener {
    /// A line said in a room.
    #[sockets(notify)]
    async fn said(&self, room: String, from: String, text: String);
}

/// The server's side: it needs its own [`Server`] handle for rooms.
struct Rooms {
    server: Arc<OnceLock<Server>>,
}

impl Rooms {
    fn server(&self) -> Option<&Server> {
        self.server.get()
    }
}

fn user_of(cx: &Context) -> String {
    cx.meta::<User>()
        .map_or_else(|| "someone".to_owned(), |user| user.0.clone())
}

impl Chat for Rooms {
    async fn join(&self, cx: &Context, room: String) -> Vec<String> {
        let Some(server) = self.server() else {
            return Vec::new();
        };
        if server.join(cx.connection_id(), &room).is_err() {
            return Vec::new();
        }
        server
            .members(&room)
            .into_iter()
            .filter_map(|id| server.get(id))
            .filter_map(|info| info.meta.get::<User>().map(|user| user.0.clone()))
            .collect()
    }

    async fn say(&self, cx: &Context, room: String, text: String) -> Result<usize, ChatError> {
        if text.trim().is_empty() {
            return Err(ChatError::Empty);
        }
        let Some(server) = self.server() else {
            return Ok(0);
        };
        if !server.members(&room).contains(&cx.connection_id()) {
            return Err(ChatError::NotInRoom(room));
        }
        let line = ListenerRequest::Said {
            room: room.clone(),
            from: user_of(cx),
            text,
        };
        Ok(server.broadcast_to(&room, &line).await.unwrap_or(0))
    }
}

/// A client's listener: hands what it hears to its owner.
struct Ears {
    heard: mpsc::UnboundedSender<String>,
}

impl Listener for Ears {
    async fn said(&self, room: String, from: String, text: String) {
        let _ = self.heard.send(format!("[{room}] {from}: {text}"));
    }
}

const NAMES: [&str; 6] = ["alice", "bob", "carol", "dave", "erin", "frank"];

fn name(i: usize) -> String {
    NAMES
        .get(i)
        .map_or_else(|| format!("user{i}"), |n| (*n).to_owned())
}

fn parse_clients() -> Result<usize, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut clients = 4;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--clients" => {
                clients = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n >= 2)
                    .ok_or("--clients needs a number >= 2")?;
            }
            "--help" | "-h" => {
                println!(
                    "chat [--clients N]: a chat server and N clients (default 4) in one process"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)").into()),
        }
    }
    Ok(clients)
}

/// Waits for the next line a client heard.
async fn next(
    heard: &mut mpsc::UnboundedReceiver<String>,
) -> Result<String, Box<dyn std::error::Error>> {
    Ok(tokio::time::timeout(Duration::from_secs(10), heard.recv())
        .await?
        .ok_or("the client stopped")?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if examples::describe(&[ChatClient::descriptor(), ListenerClient::descriptor()]) {
        return Ok(());
    }
    examples::init_logging();
    let count = parse_clients()?;
    let secret = Secret::from_base64(&generate_key())?;

    // Per-user tokens: in a deployment these come from a user store.
    let tokens: HashMap<String, String> = (0..count)
        .map(|i| (format!("token-{}", name(i)), name(i)))
        .collect();
    let tokens = Arc::new(tokens);

    let handle = Arc::new(OnceLock::new());
    let server = Server::builder()
        .address("127.0.0.1:0")
        .secret(secret.clone())
        .serve(ChatServer::new(Rooms {
            server: Arc::clone(&handle),
        }))
        .auth(move |token: String, _peer| {
            let user = tokens.get(&token).cloned();
            async move {
                match user {
                    Some(user) => AuthDecision::accept(User(user)),
                    None => AuthDecision::reject("unknown token"),
                }
            }
        })
        .start()
        .await?;
    let _ = handle.set(server.clone());
    println!("server: listening on {}", server.local_addr());
    let url = format!("ws://{}/", server.local_addr());

    let stranger = Client::builder()
        .url(url.clone())
        .secret(secret.clone())
        .credentials("token-of-a-stranger")
        .connect()
        .await;
    if let Err(Error::AuthRejected(reason)) = &stranger {
        println!("stranger: refused: {reason}");
    } else {
        return Err("a stranger's token was accepted".into());
    }

    // Even-numbered users join #rust, odd-numbered ones #go.
    let room = |i: usize| if i % 2 == 0 { "rust" } else { "go" };
    let mut people = Vec::with_capacity(count);
    for i in 0..count {
        let (heard, inbox) = mpsc::unbounded_channel();
        let client = Client::builder()
            .url(url.clone())
            .secret(secret.clone())
            .credentials(&format!("token-{}", name(i)))
            .serve(ListenerServer::new(Ears { heard }))
            .connect()
            .await?;
        let chat = ChatClient::new(client.peer());
        let members = chat.join(room(i)).await?;
        println!(
            "{}: joined #{} with {}",
            name(i),
            room(i),
            members.join(", ")
        );
        people.push((client, chat, inbox));
    }

    // Everyone says one line in their room, in turn.
    for (i, (_, chat, _)) in people.iter().enumerate() {
        let reached = chat
            .say(room(i), format!("hi, I am {}", name(i)))
            .await?
            .map_err(|e| format!("{e:?}"))?;
        println!("{}: said hi in #{} (reached {reached})", name(i), room(i));
    }
    // Speaking in a room one has not joined is the service's own error.
    if let Some((_, chat, _)) = people.get(1) {
        match chat.say("rust", "psst").await? {
            Err(ChatError::NotInRoom(room)) => println!("{}: may not speak in #{room}", name(1)),
            other => return Err(format!("expected NotInRoom, got {other:?}").into()),
        }
    }
    // A notice to everyone, whatever their room.
    let reached = server
        .broadcast(&ListenerRequest::Said {
            room: "*".into(),
            from: "server".into(),
            text: "closing time".into(),
        })
        .await?;
    println!("server: notice sent to {reached} clients");

    // What each client heard: every line of its room (its own included) and
    // the notice. Each notification runs in a handler task of its own, so
    // the order they finish in is not fixed: sorted here for stable output.
    for (i, (_, _, inbox)) in people.iter_mut().enumerate() {
        let count_heard = (0..count).filter(|j| room(*j) == room(i)).count() + 1;
        let mut lines = Vec::with_capacity(count_heard);
        for _ in 0..count_heard {
            lines.push(next(inbox).await?);
        }
        lines.sort();
        for line in lines {
            println!("{} heard {line}", name(i));
        }
    }

    for (client, _, _) in &people {
        client.close().await;
    }
    server.shutdown(Duration::from_secs(1)).await;
    println!("server: shut down");
    Ok(())
}
