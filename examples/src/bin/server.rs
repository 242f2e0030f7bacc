//! The server half of a two-terminal session, configured by `SOCKETS_*` variables.
//!
//! ```text
//! export SOCKETS_SECRET=$(cargo run -q -p examples --bin keygen)
//! cargo run -p examples --bin server                # terminal 1: listens on 127.0.0.1:7878
//! cargo run -p examples --bin client -- alice       # terminal 2 (same SOCKETS_SECRET)
//! cargo run -p examples --bin server -- --help      # every variable
//! cargo run -p examples --bin server -- --describe   # its services' descriptors, as JSON
//! ```
//!
//! It serves the [`Greeter`](examples::greeter::Greeter) service until
//! Ctrl-C, then shuts down gracefully. Its auth hook admits any non-empty
//! user name as credentials: a real hook would check a password or token.
//!
//! It prints one line per authenticated session. Connections that end
//! before authentication (probes, scanners, wrong secrets, attacks) are
//! counted by close code and summed up at most once every 10 s, so nobody
//! can make it print faster than that.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use examples::greeter::{GreeterClient, GreeterServer, Greetings};
use sockets::{AuthDecision, ServerBuilder, ServerEvent};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

/// How often connections that ended before authentication are summed up.
const SUMMARY_EVERY: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if examples::describe(&[GreeterClient::descriptor()]) {
        return Ok(());
    }
    if examples::wants_help() {
        println!(
            "server: serves the greeter service until Ctrl-C.\n\n{}",
            examples::ENV_HELP
        );
        return Ok(());
    }
    examples::init_logging();
    let server = ServerBuilder::from_env()?
        .serve(GreeterServer::new(Greetings))
        .auth(|user: String, peer| async move {
            if user.trim().is_empty() {
                AuthDecision::reject("empty user name")
            } else {
                println!("{}: {user} authenticated from {}", peer.id, peer.addr);
                AuthDecision::accept(user)
            }
        })
        .start()
        .await?;
    println!("listening on ws://{}/", server.local_addr());

    let watch = tokio::spawn(report(server.events()));
    tokio::signal::ctrl_c().await?;
    println!("shutting down");
    server.shutdown(Duration::from_secs(5)).await;
    watch.abort();
    Ok(())
}

/// Prints the sessions as they end, and a summary of the connections that
/// ended before authentication at most once per [`SUMMARY_EVERY`].
async fn report(mut events: broadcast::Receiver<ServerEvent>) {
    let mut sessions = HashSet::new();
    let mut unauthenticated: BTreeMap<u16, u64> = BTreeMap::new();
    let mut missed = 0u64;
    let mut next_summary = Instant::now() + SUMMARY_EVERY;
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            () = tokio::time::sleep_until(next_summary) => {
                summarize(&mut unauthenticated, &mut missed);
                next_summary = Instant::now() + SUMMARY_EVERY;
                continue;
            }
        };
        match event {
            Ok(ServerEvent::Authenticated { id, .. }) => {
                sessions.insert(id);
            }
            Ok(ServerEvent::Disconnected { id, reason }) => {
                if sessions.remove(&id) {
                    println!("{id}: disconnected: {reason}");
                } else {
                    *unauthenticated.entry(reason.code.to_u16()).or_default() += 1;
                }
            }
            Ok(_) => {}
            // A burst outran this loop: count what was missed and go on.
            Err(RecvError::Lagged(n)) => missed += n,
            Err(RecvError::Closed) => break,
        }
    }
    summarize(&mut unauthenticated, &mut missed);
}

fn summarize(unauthenticated: &mut BTreeMap<u16, u64>, missed: &mut u64) {
    if unauthenticated.is_empty() && *missed == 0 {
        return;
    }
    let total: u64 = unauthenticated.values().sum();
    let by_code: Vec<String> = unauthenticated
        .iter()
        .map(|(code, n)| format!("{n} × {code}"))
        .collect();
    println!(
        "{total} connections ended before authentication ({}){}",
        by_code.join(", "),
        if *missed > 0 {
            format!("; {missed} events missed")
        } else {
            String::new()
        }
    );
    unauthenticated.clear();
    *missed = 0;
}
