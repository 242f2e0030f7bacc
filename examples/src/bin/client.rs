//! The client half of a two-terminal session, configured by `SOCKETS_*` variables.
//!
//! ```text
//! export SOCKETS_SECRET=$(cargo run -q -p examples --bin keygen)
//! cargo run -p examples --bin server                # terminal 1
//! cargo run -p examples --bin client -- alice       # terminal 2: a few calls, then exits
//! cargo run -p examples --bin client -- --help      # every variable
//! ```
//!
//! The first argument is the user name presented as credentials (default
//! `alice`). It connects (handshake, then authentication), calls the
//! [`Greeter`](examples::greeter::Greeter) service, and closes.

use examples::greeter::{GreetError, GreeterClient};
use sockets::ClientBuilder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if examples::wants_help() {
        println!(
            "client [USER]: connects as USER (default alice), calls the greeter, exits.\n\n{}",
            examples::ENV_HELP
        );
        return Ok(());
    }
    examples::init_logging();
    let user = std::env::args().nth(1).unwrap_or_else(|| "alice".into());
    let client = ClientBuilder::from_env()?
        .credentials(&user)
        .connect()
        .await?;
    println!("connected as {user}");

    let greeter = GreeterClient::new(client.peer());
    match greeter.greet(user.clone()).await? {
        Ok(greeting) => println!("greet({user:?}) = {greeting:?}"),
        Err(error) => println!("greet({user:?}) failed: {error}"),
    }
    match greeter.greet(String::new()).await? {
        Ok(greeting) => println!("greet(\"\") = {greeting:?}"),
        Err(GreetError::EmptyName) => println!("greet(\"\") is refused by the service: EmptyName"),
    }
    println!(
        "sum([1, 2, 3, 4]) = {}",
        greeter.sum(vec![1, 2, 3, 4]).await?
    );
    println!("whoami() = {:?}", greeter.whoami().await?);

    client.close().await;
    println!("closed");
    Ok(())
}
