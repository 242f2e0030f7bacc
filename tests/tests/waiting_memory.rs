//! What a session waiting for its client to resume it holds, measured with a
//! counting allocator: the bytes freed when the waiting sessions end, per
//! session, with an empty buffer and with ten 100-byte notifications each.
//!
//! One test in this binary on purpose: the allocator is global.

use std::alloc::System;
use std::time::Duration;

use cap::Cap;
use sockets::client::Reconnect;
use sockets::server::ServerEvent;
use sockets::testing::Harness;
use sockets::{Client, Server};

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// What clients are pushed; they need not serve it for the server to buffer it.
#[sockets::service]
pub trait Notes {
    /// A note.
    #[sockets(notify)]
    async fn note(&self, text: String);
}

const SESSIONS: usize = 1000;

async fn until_events(
    events: &mut tokio::sync::broadcast::Receiver<ServerEvent>,
    n: usize,
    counts: impl Fn(&ServerEvent) -> bool,
) {
    let mut seen = 0;
    while seen < n {
        if counts(&events.recv().await.expect("events go on")) {
            seen += 1;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_waiting_session_holds_a_few_hundred_bytes_and_its_buffer() {
    let window = Duration::from_secs(60);
    let harness = Harness::new(
        Server::builder()
            .resumption_window(window)
            .max_waiting_sessions(SESSIONS),
    )
    .unwrap();
    let server = harness.server().clone();
    let mut clients: Vec<Client> = Vec::with_capacity(SESSIONS);
    for _ in 0..SESSIONS {
        // Back only long after the window.
        let client = harness
            .client()
            .reconnect(Reconnect {
                initial_delay: Duration::from_secs(10_000),
                max_delay: Duration::from_secs(10_000),
                ..Reconnect::default()
            })
            .connect()
            .await
            .unwrap();
        server
            .join(client.server_connection_id().unwrap(), "everyone")
            .unwrap();
        clients.push(client);
    }
    let mut events = server.events();
    assert_eq!(harness.cut_connections(), SESSIONS);
    until_events(&mut events, SESSIONS, |e| {
        matches!(e, ServerEvent::Disconnected { .. })
    })
    .await;
    assert_eq!(server.stats().waiting_sessions, SESSIONS);
    // Let every connection's task finish and free what it held.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let empty = ALLOCATOR.allocated();
    for _ in 0..10 {
        let text = "x".repeat(100);
        let sent = server
            .broadcast(&NotesRequest::Note { text })
            .await
            .unwrap();
        assert_eq!(sent, SESSIONS);
    }
    let buffered = ALLOCATOR.allocated();
    let stats = server.stats();
    until_events(&mut events, SESSIONS, |e| {
        matches!(e, ServerEvent::SessionEnded { .. })
    })
    .await;
    assert_eq!(server.stats().waiting_sessions, 0);
    assert!(server.members("everyone").is_empty());
    let ended = ALLOCATOR.allocated();

    let per_empty = empty.saturating_sub(ended) / SESSIONS;
    let per_buffered = buffered.saturating_sub(ended) / SESSIONS;
    eprintln!(
        "a waiting session: {per_empty} B; with ten 100-byte notifications buffered: {per_buffered} B \
         (the buffer's own count: {} B per session)",
        stats.waiting_bytes / SESSIONS
    );
    // Generous bounds: a regression (a connection kept alive, a buffer
    // copied per session) would be many times larger.
    assert!(per_empty < 2048, "{per_empty} B per waiting session");
    assert!(
        per_buffered < per_empty + 10 * 1024,
        "{per_buffered} B per waiting session"
    );
    drop(clients);
}
