//! The server half of a two-terminal session, configured by `SOCKETS_*` variables.
//!
//! ```text
//! export SOCKETS_SECRET=$(cargo run -q -p examples --bin keygen)
//! cargo run -p examples --bin server                # terminal 1: listens on 127.0.0.1:7878
//! cargo run -p examples --bin client -- alice       # terminal 2 (same SOCKETS_SECRET)
//! cargo run -p examples --bin server -- --help      # every variable
//! ```
//!
//! It serves the [`Greeter`](examples::greeter::Greeter) service until
//! Ctrl-C, then shuts down gracefully. Its auth hook admits any non-empty
//! user name as credentials: a real hook would check a password or token.

use std::time::Duration;

use examples::greeter::{GreeterServer, Greetings};
use sockets::{AuthDecision, ServerBuilder, ServerEvent};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
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

    let mut events = server.events();
    let watch = tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            if let ServerEvent::Disconnected { id, reason } = event {
                println!("{id}: disconnected: {reason}");
            }
        }
    });
    tokio::signal::ctrl_c().await?;
    println!("shutting down");
    server.shutdown(Duration::from_secs(5)).await;
    watch.abort();
    Ok(())
}
