//! Guards, rate limits and argument validation, in one process.
//!
//! ```text
//! cargo run -p examples --bin guards
//! ```
//!
//! A server with an accounts service: `reset` has its own guard (admins
//! only), every call passes a per-connection rate limit (5 at once, then 10
//! a second), and `register` validates its argument's fields. Two users
//! connect and see each outcome: forbidden, rate limited with a retry hint,
//! invalid fields listed by path. The program checks every outcome and exits
//! non-zero if one differs.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sockets::crypto::{Secret, generate_key};
use sockets::guard::RateLimit;
use sockets::{AuthDecision, Client, Context, Error, Refusal, Server};

/// A sign-up form, with its rules.
#[derive(Debug, Serialize, Deserialize, garde::Validate)]
pub struct NewUser {
    /// 1 to 16 characters.
    #[garde(length(min = 1, max = 16))]
    pub name: String,
    /// Adults only.
    #[garde(range(min = 18))]
    pub age: u32,
}

/// What the server serves.
#[sockets::service]
pub trait Accounts {
    /// Anyone signed in.
    async fn balance(&self) -> u64;
    /// Admins only.
    #[sockets(guard = admins_only)]
    async fn reset(&self, account: String) -> bool;
    /// Checked against `NewUser`'s rules before the handler runs.
    #[sockets(validate)]
    async fn register(&self, user: NewUser) -> String;
}

/// The auth hook stores the user's name; admins' start with `admin:`.
pub fn admins_only(cx: &Context, method: &str) -> Result<(), Refusal> {
    match cx.meta::<String>() {
        Some(user) if user.starts_with("admin:") => Ok(()),
        Some(user) => Err(Refusal::forbidden(format!("{user} may not call {method}"))),
        None => Err(Refusal::forbidden("sign in first")),
    }
}

struct Bank;

impl Accounts for Bank {
    async fn balance(&self) -> u64 {
        100
    }

    async fn reset(&self, _account: String) -> bool {
        true
    }

    async fn register(&self, user: NewUser) -> String {
        format!("welcome, {}", user.name)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if examples::describe(&[AccountsClient::descriptor()]) {
        return Ok(());
    }
    examples::init_logging();
    let secret = Secret::from_base64(&generate_key())?;
    let server = Server::builder()
        .address("127.0.0.1:0")
        .secret(secret.clone())
        .guard(RateLimit::per_connection(10, Duration::from_secs(1)).burst(5))
        .serve(AccountsServer::new(Bank))
        .auth(|user: String, _peer| async move { AuthDecision::accept(user) })
        .start()
        .await?;
    let url = format!("ws://{}/", server.local_addr());
    let connect = |user: &'static str| {
        Client::builder()
            .url(url.clone())
            .secret(secret.clone())
            .credentials(user)
            .connect()
    };
    let ada = AccountsClient::new(connect("ada").await?.peer());
    let root = AccountsClient::new(connect("admin:root").await?.peer());

    match ada.reset("acct-1").await {
        Err(Error::Forbidden(reason)) => println!("ada: reset is forbidden: {reason}"),
        other => return Err(format!("ada's reset was not forbidden: {other:?}").into()),
    }
    println!("root: reset -> {}", root.reset("acct-1").await?);

    let invalid = ada
        .register(NewUser {
            name: String::new(),
            age: 12,
        })
        .await;
    match invalid {
        Err(error) => {
            let mut fields = error.invalid_arguments().ok_or("no field errors")?;
            fields.sort_by(|a, b| a.path.cmp(&b.path));
            for field in &fields {
                println!("ada: register refused: {}: {}", field.path, field.message);
            }
            if fields.len() != 2 {
                return Err(format!("expected two field errors, got {fields:?}").into());
            }
        }
        Ok(answer) => return Err(format!("an invalid form was accepted: {answer}").into()),
    }
    println!(
        "ada: register -> {}",
        ada.register(NewUser {
            name: "ada".into(),
            age: 36,
        })
        .await?
    );

    // Ada has spent 3 of her burst of 5; 8 more at once: some pass, the rest
    // are told when to retry. Root's connection has its own bucket.
    let burst = futures_util::future::join_all((0..8).map(|_| ada.balance())).await;
    let limited: Vec<_> = burst
        .iter()
        .filter_map(|result| match result {
            Err(Error::Rejected(reason)) => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    println!(
        "ada: a burst of 8: {} passed, {} rate limited (\"{}\")",
        burst.iter().filter(|result| result.is_ok()).count(),
        limited.len(),
        limited.first().copied().unwrap_or("-"),
    );
    if limited.is_empty() {
        return Err("the burst was not rate limited".into());
    }
    println!("root: balance -> {}", root.balance().await?);

    server.shutdown(Duration::from_secs(1)).await;
    Ok(())
}
