//! Spans and security lines, captured by a `tracing-subscriber` formatter
//! writing into memory. Each test installs its subscriber for its own
//! thread (`tracing::subscriber::set_default`) and runs on a current-thread
//! runtime, so every task of the test logs into it and nothing else does.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use sockets::crypto::Secret;
use sockets::observe::{SECURITY_BURST, SECURITY_REFILL_PER_SECOND, SECURITY_TARGET};
use sockets::testing::Harness;
use sockets::{AuthDecision, Context, Server};
use tests::raw::{closed, socket};
use tests::{next_disconnect, server, within};
use tokio_tungstenite::tungstenite::Message as Ws;
use tracing_subscriber::fmt::format::FmtSpan;

/// What the formatter wrote.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything at `level` and above into `captured`, each span's fields
/// printed when it closes.
fn subscriber(captured: &Captured, level: tracing::Level) -> impl tracing::Subscriber + use<> {
    let captured = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || captured.clone())
        .finish()
}

/// The service under test: tells the caller its label.
#[sockets::service]
pub trait Who {
    /// The connection's label, as the handler sees it.
    async fn am_i(&self, cx: &Context) -> String;
}

struct Answer;

impl Who for Answer {
    async fn am_i(&self, cx: &Context) -> String {
        cx.label().unwrap_or("nobody").to_owned()
    }
}

/// The credentials the test's client presents; they must never be logged.
const CREDENTIALS: &str = "ada:correct-horse-battery-staple";

#[tokio::test]
async fn connection_and_call_spans_carry_their_fields_and_no_secret() {
    let captured = Captured::default();
    let _default = tracing::subscriber::set_default(subscriber(&captured, tracing::Level::DEBUG));
    let key = [0x5a_u8; 32];
    let harness = Harness::new(
        Server::builder()
            .secret(Secret::from_key(&key))
            .serve(WhoServer::new(Answer))
            .auth(|credentials: String, _peer| async move {
                match credentials.split_once(':') {
                    Some((user, _password)) => {
                        AuthDecision::accept(credentials.clone()).label(user)
                    }
                    None => AuthDecision::reject("user:password expected"),
                }
            }),
    )
    .expect("the harness starts");
    let mut events = harness.server().events();
    let client = within(harness.client().credentials(CREDENTIALS).connect())
        .await
        .expect("connects");
    let who = WhoClient::new(client.peer());
    assert_eq!(within(who.am_i()).await.expect("answers"), "ada");
    client.close().await;
    next_disconnect(&mut events).await;
    drop(harness);

    let text = captured.text();
    let lines: Vec<&str> = text.lines().collect();
    let server_connection = lines
        .iter()
        .find(|line| line.contains("sockets.connection{side=\"server\""))
        .unwrap_or_else(|| panic!("the server's connection span:\n{text}"));
    // The harness's in-memory pipes carry length-prefixed frames.
    for field in [
        "id=",
        "peer=",
        "transport=\"prefixed\"",
        "session=\"authenticated\"",
        "user=\"ada\"",
    ] {
        assert!(
            server_connection.contains(field),
            "{field} in {server_connection}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|line| line.contains("sockets.connection{side=\"client\"")),
        "the client's connection span:\n{text}"
    );
    for direction in ["in", "out"] {
        let call = lines
            .iter()
            .find(|line| {
                line.contains("sockets.call{")
                    && line.contains(&format!("direction=\"{direction}\""))
                    && line.contains("close")
            })
            .unwrap_or_else(|| panic!("a call span {direction} closed:\n{text}"));
        for field in [
            "method=who.am_i",
            "id=",
            "timeout_ms=",
            "outcome=\"ok\"",
            "duration_us=",
        ] {
            assert!(call.contains(field), "{field} in {call}");
        }
    }
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    for secret in [CREDENTIALS, "correct-horse", &hex, "WlpaWlpa"] {
        assert!(!text.contains(secret), "{secret} logged:\n{text}");
    }
}

#[tokio::test]
async fn a_flood_of_bad_handshakes_logs_a_bounded_number_of_security_lines() {
    const ATTEMPTS: usize = 150;
    let captured = Captured::default();
    let _default = tracing::subscriber::set_default(subscriber(&captured, tracing::Level::INFO));
    let server = server()
        // Let every attempt reach the handshake: no lockout of the address.
        .handshake_failures_per_ip(10_000, Duration::from_secs(60))
        .start()
        .await
        .expect("the server starts");
    let mut events = server.events();
    let started = Instant::now();
    for _ in 0..ATTEMPTS {
        let mut ws = socket(server.local_addr()).await;
        ws.send(Ws::Binary(vec![0; 7].into())).await.expect("sends");
        let close = within(closed(&mut ws)).await;
        assert_eq!(close.map(|(code, _)| code), Some(1002), "a malformed HS1");
        next_disconnect(&mut events).await;
    }
    let elapsed = started.elapsed();
    server.shutdown(Duration::from_secs(1)).await;

    let text = captured.text();
    let security: Vec<&str> = text
        .lines()
        .filter(|line| line.contains(SECURITY_TARGET))
        .collect();
    // The bucket starts full (nothing else in this test binary logs a
    // security line) and refills by whole seconds from the first line.
    let refills = elapsed.as_secs() as usize * SECURITY_REFILL_PER_SECOND as usize;
    let burst = SECURITY_BURST as usize;
    assert!(
        security.len() >= burst && security.len() <= burst + refills,
        "{} security lines for {ATTEMPTS} failures in {elapsed:?}:\n{text}",
        security.len()
    );
    for line in &security {
        assert!(line.contains("WARN"), "{line}");
        assert!(line.contains("event=\"handshake_failed\""), "{line}");
        assert!(line.contains("cause=\"malformed\""), "{line}");
        assert!(line.contains("suppressed="), "{line}");
    }
    if let Some(after) = security.get(burst) {
        assert!(
            !after.contains("suppressed=0"),
            "the first line after the burst reports what was held back: {after}"
        );
    }
}
