//! Attacks on recorded transport frames by a man in the middle at the
//! WebSocket layer: replay, reorder, drop, truncation, bit flips, reflection.
//! Each is detected by the receiver, which closes with 1002 "decryption
//! failed"; the caller's pending call ends with a typed error; the server
//! keeps serving a well-behaved client.
//!
//! Message indices per direction: client → server 0 = HS1, 1 = AUTH,
//! 2.. = DATA; server → client 0 = HS2, 1 = AUTH_RESULT, 2.. = DATA.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use sockets::protocol::CloseCode;
use sockets::{CallOptions, Client, Error, Reconnect};
use tests::mitm::{self, Mitm, Rule};
use tests::services::{Calc, CalcControl, Event};
use tests::{client, next_disconnect, server, within};

struct Setup {
    server: sockets::Server,
    control: CalcControl,
    events: tokio::sync::broadcast::Receiver<sockets::server::ServerEvent>,
    mitm: Mitm,
    victim: Client,
}

async fn setup(up: Rule, down: Rule) -> Setup {
    let (calc, control) = Calc::new();
    let server = server().serve(calc).start().await.unwrap();
    let events = server.events();
    let mitm = Mitm::start(server.local_addr(), up, down).await;
    let victim = within(client(mitm.addr).reconnect(Reconnect::disabled()).connect())
        .await
        .unwrap();
    Setup {
        server,
        control,
        events,
        mitm,
        victim,
    }
}

fn opts() -> CallOptions {
    CallOptions::timeout(Duration::from_secs(5))
}

async fn add(client: &Client, a: i64, b: i64) -> Result<i64, Error> {
    within(client.peer().call("calc.add", &(a, b), opts())).await
}

/// The server closed the victim's connection for a frame that failed.
async fn server_saw_tampering(setup: &mut Setup) {
    loop {
        let reason = next_disconnect(&mut setup.events).await;
        if reason.code == CloseCode::ProtocolError {
            assert_eq!(reason.reason, "decryption failed");
            return;
        }
    }
}

async fn good_client_is_served(server: &sockets::Server) {
    let good = within(client(server.local_addr()).connect()).await.unwrap();
    assert_eq!(add(&good, 20, 22).await.unwrap(), 42);
    good.close().await;
    assert_eq!(
        tests::panics(),
        0,
        "nothing panics, in the server or the test"
    );
}

fn is_disconnected(outcome: &Result<i64, Error>) -> bool {
    matches!(outcome, Err(Error::Disconnected(_)))
}

#[tokio::test]
async fn attack_replayed_frame_runs_the_handler_once_and_closes() {
    let up = mitm::at(2, |frame: Bytes| vec![frame.clone(), frame]);
    let mut setup = setup(up, mitm::pass()).await;
    let peer = setup.victim.peer();
    let call = tokio::spawn(async move {
        peer.call::<_, ()>("calc.hang", &(7u32,), CallOptions::default())
            .await
    });
    assert_eq!(setup.control.next().await, Event::Started(7));
    server_saw_tampering(&mut setup).await;
    // The connection's end drops the one handler that ran.
    assert_eq!(setup.control.next().await, Event::Dropped(7));
    let outcome = within(call).await.unwrap();
    assert!(
        matches!(outcome, Err(Error::Disconnected(_))),
        "{outcome:?}"
    );
    assert!(
        setup.control.events.try_recv().is_err(),
        "the replayed copy ran nothing"
    );
    good_client_is_served(&setup.server).await;
}

#[tokio::test]
async fn attack_reordered_frames_are_refused() {
    // Hold DATA 2 back and deliver it after DATA 3.
    let held: Arc<Mutex<Option<Bytes>>> = Arc::default();
    let up: Rule = Box::new(move |n, frame| match n {
        2 => {
            *held.lock().unwrap() = Some(frame);
            vec![]
        }
        3 => {
            let first = held.lock().unwrap().take();
            std::iter::once(frame).chain(first).collect()
        }
        _ => vec![frame],
    });
    let mut setup = setup(up, mitm::pass()).await;
    let peer = setup.victim.peer();
    let first = tokio::spawn(async move { peer.call::<_, i64>("calc.add", &(1, 2), opts()).await });
    // HS1, AUTH, HS2, AUTH_RESULT, then the first call's frame (held).
    setup.mitm.wait_recorded(5).await;
    let b = add(&setup.victim, 3, 4).await;
    let a = within(first).await.unwrap();
    server_saw_tampering(&mut setup).await;
    assert!(is_disconnected(&a) && is_disconnected(&b), "{a:?} {b:?}");
    good_client_is_served(&setup.server).await;
}

#[tokio::test]
async fn attack_dropped_frame_fails_the_next_one() {
    let up = mitm::at(2, |_| vec![]);
    let mut setup = setup(up, mitm::pass()).await;
    let peer = setup.victim.peer();
    let lost = tokio::spawn(async move {
        peer.call::<_, i64>("calc.add", &(1, 1), CallOptions::default())
            .await
    });
    // Once the first call's frame was dropped, make a second: its frame
    // arrives with the wrong sequence number.
    setup.mitm.wait_recorded(5).await;
    let second = add(&setup.victim, 2, 2).await;
    server_saw_tampering(&mut setup).await;
    let lost = within(lost).await.unwrap();
    assert!(is_disconnected(&second), "{second:?}");
    assert!(matches!(lost, Err(Error::Disconnected(_))), "{lost:?}");
    good_client_is_served(&setup.server).await;
}

#[tokio::test]
async fn attack_truncated_and_bit_flipped_frames_are_refused() {
    type Edit = fn(Bytes) -> Vec<Bytes>;
    let edits: [(&str, Edit); 7] = [
        ("last byte removed", |f| vec![f.slice(..f.len() - 1)]),
        ("cut to the header", |f| vec![f.slice(..8)]),
        ("type byte DATA → CLOSE", |f| vec![mitm::flip(&f, 1, 1)]),
        ("epoch", |f| vec![mitm::flip(&f, 7, 0)]),
        ("first ciphertext byte", |f| vec![mitm::flip(&f, 8, 3)]),
        ("middle byte", |f| {
            let at = f.len() / 2;
            vec![mitm::flip(&f, at, 5)]
        }),
        ("last tag byte", |f| {
            let at = f.len() - 1;
            vec![mitm::flip(&f, at, 7)]
        }),
    ];
    for (what, edit) in edits {
        let mut setup = setup(mitm::at(2, edit), mitm::pass()).await;
        let outcome = add(&setup.victim, 5, 6).await;
        assert!(is_disconnected(&outcome), "{what}: {outcome:?}");
        let reason = next_disconnect(&mut setup.events).await;
        assert_eq!(reason.code, CloseCode::ProtocolError, "{what}: {reason}");
        assert!(
            reason.reason == "decryption failed" || reason.reason == "frame too short",
            "{what}: {reason}"
        );
        good_client_is_served(&setup.server).await;
    }
}

#[tokio::test]
async fn attack_tampered_reply_is_refused_by_the_client() {
    let down = mitm::at(2, |f: Bytes| {
        let at = f.len() - 3;
        vec![mitm::flip(&f, at, 1)]
    });
    let setup = setup(mitm::pass(), down).await;
    let outcome = add(&setup.victim, 5, 6).await;
    match &outcome {
        Err(Error::Disconnected(reason)) => {
            assert_eq!(reason.code, CloseCode::ProtocolError, "{reason}");
            assert_eq!(reason.reason, "decryption failed");
        }
        other => panic!("expected a disconnect, got {other:?}"),
    }
    good_client_is_served(&setup.server).await;
}

#[tokio::test]
async fn attack_reflected_frame_is_refused() {
    // The client's first call is sent back to it in place of the reply.
    let reflected: Arc<Mutex<Option<Bytes>>> = Arc::default();
    let keep = Arc::clone(&reflected);
    let up = mitm::at(2, move |f: Bytes| {
        *keep.lock().unwrap() = Some(f.clone());
        vec![f]
    });
    let down: Rule = Box::new(move |n, f| {
        if n == 2 {
            reflected.lock().unwrap().take().into_iter().collect()
        } else {
            vec![f]
        }
    });
    let setup = setup(up, down).await;
    let outcome = add(&setup.victim, 1, 2).await;
    assert!(is_disconnected(&outcome), "{outcome:?}");
    good_client_is_served(&setup.server).await;
}
