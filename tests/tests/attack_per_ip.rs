//! Per-address limits before authentication: one address cannot hold every
//! handshake slot, and cannot keep guessing the secret (or credentials).
//! Every test connects from 127.0.0.1, so "the address" is the tests' own.

use std::time::Duration;

use futures_util::SinkExt;
use sockets::__internal::crypto::FrameKind;
use sockets::__internal::protocol::codec;
use sockets::protocol::CloseCode;
use sockets::server::{AuthDecision, ServerEvent};
use sockets::{CallOptions, Client, Error};
use tests::raw::{Raw, closed, socket};
use tests::services::Calc;
use tests::{HANG, client, next_disconnect, panics, secret, server, within, wrong_secret};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message as Ws;

const TOO_MANY_HANDSHAKES: &str = "too many handshakes from this address";
const TOO_MANY_FAILURES: &str = "too many failed handshakes from this address";

async fn add(client: &Client) -> Result<i64, Error> {
    within(
        client
            .peer()
            .call("calc.add", &(40, 2), CallOptions::default()),
    )
    .await
}

/// Waits for the next `Authenticated` event.
async fn next_authenticated(events: &mut broadcast::Receiver<ServerEvent>) {
    loop {
        if let ServerEvent::Authenticated { .. } = within(events.recv()).await.unwrap() {
            return;
        }
    }
}

fn refused_with(result: &Result<Client, Error>, reason: &str) -> bool {
    matches!(result, Err(Error::Rejected(r)) if r == reason)
}

/// The seconds a lockout's reason says are left ("…; retry in N s").
fn lockout_left(reason: &str) -> Option<u64> {
    let rest = reason.strip_prefix(TOO_MANY_FAILURES)?;
    rest.strip_prefix("; retry in ")?
        .strip_suffix(" s")?
        .parse()
        .ok()
}

/// Refused for spent failures, with at most `window` seconds left.
fn locked_out(result: &Result<Client, Error>, window: u64) -> bool {
    matches!(result, Err(Error::Rejected(r)) if lockout_left(r).is_some_and(|left| left <= window))
}

#[tokio::test]
async fn attack_handshakes_past_the_per_address_cap_are_refused_until_one_authenticates() {
    let (calc, _control) = Calc::new();
    let server = server()
        .serve(calc)
        .max_handshakes_per_ip(3)
        .start()
        .await
        .unwrap();
    let addr = server.local_addr();
    let mut events = server.events();
    // Three peers through the handshake but not authenticated: every slot of
    // this address is taken (the global cap, 256, is far away).
    let mut pending = Vec::new();
    for _ in 0..3 {
        pending.push(Raw::handshake(addr, &secret()).await);
    }
    let mut ws = socket(addr).await;
    assert_eq!(
        closed(&mut ws).await,
        Some((4007, TOO_MANY_HANDSHAKES.to_owned()))
    );
    let refused = within(client(addr).connect()).await;
    assert!(refused_with(&refused, TOO_MANY_HANDSHAKES), "{refused:?}");
    // One of them authenticates: its slot frees, and a new client gets in.
    let mut first = pending.remove(0);
    first
        .send(FrameKind::Auth, &codec::to_vec(&()).unwrap())
        .await;
    next_authenticated(&mut events).await;
    let admitted = within(client(addr).connect()).await.unwrap();
    next_authenticated(&mut events).await;
    assert_eq!(add(&admitted).await.unwrap(), 42);
    // Authenticated sessions are not counted: with two peers pending and two
    // sessions open, one more handshake fits, and no more.
    let third = within(client(addr).connect()).await.unwrap();
    next_authenticated(&mut events).await;
    pending.push(Raw::handshake(addr, &secret()).await);
    let mut ws = socket(addr).await;
    assert_eq!(
        closed(&mut ws).await,
        Some((4007, TOO_MANY_HANDSHAKES.to_owned()))
    );
    // A peer that hangs up frees its slot too (and is no failure).
    drop(pending.pop());
    let reason = next_disconnect(&mut events).await;
    assert_eq!(reason.code, CloseCode::ConnectionLost, "{reason:?}");
    let fourth = within(client(addr).connect()).await.unwrap();
    for session in [&admitted, &third, &fourth] {
        assert_eq!(add(session).await.unwrap(), 42);
    }
    assert_eq!(panics(), 0);
}

#[tokio::test]
async fn attack_wrong_secrets_past_the_budget_refuse_the_address_alike() {
    let (calc, _control) = Calc::new();
    let server = server()
        .serve(calc)
        .handshake_failures_per_ip(3, Duration::from_secs(600))
        .start()
        .await
        .unwrap();
    let addr = server.local_addr();
    let mut events = server.events();
    let authenticated = within(client(addr).connect()).await.unwrap();
    // Its handshake is over (it gave its token back) once it is announced.
    next_authenticated(&mut events).await;
    for _ in 0..3 {
        let guess = within(client(addr).secret(wrong_secret()).connect()).await;
        assert!(matches!(guess, Err(Error::HandshakeFailed)), "{guess:?}");
    }
    // The budget is spent: every connection from the address is refused the
    // same way before it sends anything, right secret or wrong, so the
    // refusal says nothing about a guess.
    let wrong = within(client(addr).secret(wrong_secret()).connect()).await;
    assert!(locked_out(&wrong, 600), "{wrong:?}");
    let right = within(client(addr).connect()).await;
    assert!(locked_out(&right, 600), "{right:?}");
    let mut ws = socket(addr).await;
    let (code, reason) = closed(&mut ws).await.expect("a close with a reason");
    assert_eq!(code, 4007);
    // The reason says when the lockout lifts: most of the 600 s window.
    let left = lockout_left(&reason).expect("the time left is in the reason");
    assert!((500..=600).contains(&left), "{reason}");
    // The three guesses were turned away silently, as the protocol demands.
    let mut silent = 0;
    while silent < 3 {
        let reason = next_disconnect(&mut events).await;
        assert_eq!(reason.code, CloseCode::PolicyViolation, "{reason:?}");
        silent += 1;
    }
    // The session opened before keeps working.
    assert_eq!(add(&authenticated).await.unwrap(), 42);
    assert_eq!(panics(), 0);
}

#[tokio::test]
async fn attack_timeouts_and_malformed_handshakes_count_as_failures_auth_rejections_do_not() {
    let (calc, _control) = Calc::new();
    let server = server()
        .serve(calc)
        .handshake_timeout(Duration::from_millis(500))
        .handshake_failures_per_ip(3, Duration::from_secs(600))
        .auth_rejections_per_ip(0, Duration::from_secs(60))
        .auth(|token: String, _peer| async move {
            if token == "open sesame" {
                AuthDecision::accept(token)
            } else {
                AuthDecision::reject("bad token")
            }
        })
        .start()
        .await
        .unwrap();
    let addr = server.local_addr();
    // A peer that never sends HS1 times out.
    let mut idle = socket(addr).await;
    assert_eq!(closed(&mut idle).await.map(|(code, _)| code), Some(4005));
    // A malformed HS1 is refused.
    let mut garbage = socket(addr).await;
    garbage
        .send(Ws::Binary(vec![0xAB; 64].into()))
        .await
        .unwrap();
    assert!(closed(&mut garbage).await.is_some());
    // Wrong credentials, many times: the auth hook rejects them, and the
    // client proved the secret, so the failure budget is not touched.
    for _ in 0..5 {
        let rejected = within(client(addr).credentials(&"revoked").connect()).await;
        assert!(
            matches!(&rejected, Err(Error::AuthRejected(r)) if r == "bad token"),
            "{rejected:?}"
        );
    }
    let right = within(client(addr).credentials(&"open sesame").connect()).await;
    assert!(right.is_ok(), "{right:?}");
    // A third failed handshake spends the budget: now even the right
    // credentials are refused.
    let mut garbage = socket(addr).await;
    garbage
        .send(Ws::Binary(vec![0xAB; 64].into()))
        .await
        .unwrap();
    assert!(closed(&mut garbage).await.is_some());
    let right = within(client(addr).credentials(&"open sesame").connect()).await;
    assert!(locked_out(&right, 600), "{right:?}");
    assert_eq!(panics(), 0);
}

#[tokio::test]
async fn attack_auth_rejections_past_their_budget_refuse_the_address_and_say_for_how_long() {
    let (calc, _control) = Calc::new();
    let server = server()
        .serve(calc)
        .auth_rejections_per_ip(3, Duration::from_secs(300))
        .auth(|token: String, _peer| async move {
            if token == "open sesame" {
                AuthDecision::accept(token)
            } else {
                AuthDecision::reject("bad token")
            }
        })
        .start()
        .await
        .unwrap();
    let addr = server.local_addr();
    for _ in 0..3 {
        let rejected = within(client(addr).credentials(&"guess").connect()).await;
        assert!(
            matches!(&rejected, Err(Error::AuthRejected(_))),
            "{rejected:?}"
        );
    }
    let right = within(client(addr).credentials(&"open sesame").connect()).await;
    let Err(Error::Rejected(reason)) = &right else {
        panic!("{right:?}");
    };
    let left = reason
        .strip_prefix("too many rejected credentials from this address; retry in ")
        .and_then(|rest| rest.strip_suffix(" s"))
        .and_then(|seconds| seconds.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("the time left is in the reason: {reason}"));
    assert!((250..=300).contains(&left), "{reason}");
    assert_eq!(panics(), 0);
}

#[tokio::test]
async fn attack_the_window_expiring_lets_the_address_back_in() {
    let (calc, _control) = Calc::new();
    let window = Duration::from_secs(2);
    let server = server()
        .serve(calc)
        .handshake_failures_per_ip(2, window)
        .start()
        .await
        .unwrap();
    let addr = server.local_addr();
    for _ in 0..2 {
        let guess = within(client(addr).secret(wrong_secret()).connect()).await;
        assert!(matches!(guess, Err(Error::HandshakeFailed)), "{guess:?}");
    }
    let refused = within(client(addr).connect()).await;
    assert!(locked_out(&refused, 2), "{refused:?}");
    // Refused attempts do not extend the window: retrying until it ends gets in.
    let started = tokio::time::Instant::now();
    let admitted = loop {
        match within(client(addr).connect()).await {
            Ok(admitted) => break admitted,
            Err(error) => {
                assert!(
                    matches!(&error, Error::Rejected(r) if lockout_left(r).is_some()),
                    "{error:?}"
                );
                assert!(
                    started.elapsed() < window + HANG,
                    "still refused long after the window"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(add(&admitted).await.unwrap(), 42);
    assert_eq!(panics(), 0);
}

#[tokio::test]
async fn attack_limits_turned_off_admit_every_attempt() {
    let (calc, _control) = Calc::new();
    let server = server()
        .serve(calc)
        .max_handshakes_per_ip(0)
        .handshake_failures_per_ip(0, Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    let addr = server.local_addr();
    for _ in 0..20 {
        let guess = within(client(addr).secret(wrong_secret()).connect()).await;
        assert!(matches!(guess, Err(Error::HandshakeFailed)), "{guess:?}");
    }
    let mut pending = Vec::new();
    for _ in 0..12 {
        pending.push(Raw::handshake(addr, &secret()).await);
    }
    let admitted = within(client(addr).connect()).await.unwrap();
    assert_eq!(add(&admitted).await.unwrap(), 42);
    assert_eq!(panics(), 0);
}
