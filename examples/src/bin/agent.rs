//! A master that calls methods on its connected agents; agents come back by
//! themselves when the master restarts.
//!
//! ```text
//! cargo run -p examples --bin agent                   # self-contained: a master and 3 agents
//! cargo run -p examples --bin agent -- --agents 5
//! cargo run -p examples --bin agent -- --describe   # its services' descriptors, as JSON
//! ```
//!
//! The agents are clients that serve the `Agent` service; the master is a
//! server that calls them: one agent by connection id (`send_to`), and all
//! of them at once (`call_all`). Then the master stops and a new one starts
//! on the same port, as after a crash or a deployment: each agent's client
//! notices the loss, retries with exponential backoff and jitter, redoes
//! the handshake and authentication, and is called again.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sockets::crypto::{Secret, generate_key};
use sockets::{AuthDecision, Client, ClientState, Reconnect, Server};

/// What an agent reports.
#[derive(Debug, Serialize, Deserialize)]
pub struct Status {
    /// The agent's name.
    pub name: String,
    /// Jobs it has run since it started.
    pub jobs: u64,
}

/// Why an agent refused a job.
#[derive(Debug, Serialize, Deserialize)]
pub enum JobError {
    /// The agent does not know that job.
    Unknown(String),
}

/// What every agent serves; the master calls it.
#[sockets::service]
pub trait Agent {
    /// The agent's name and counters.
    async fn status(&self) -> Status;
    /// Runs a named job and returns its output.
    async fn run(&self, job: String) -> Result<String, JobError>;
}

struct Worker {
    name: String,
    jobs: std::sync::atomic::AtomicU64,
}

impl Agent for Worker {
    async fn status(&self) -> Status {
        Status {
            name: self.name.clone(),
            jobs: self.jobs.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    async fn run(&self, job: String) -> Result<String, JobError> {
        match job.as_str() {
            "rotate-logs" => {
                self.jobs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(format!("{}: logs rotated", self.name))
            }
            _ => Err(JobError::Unknown(job)),
        }
    }
}

/// A master on `address`; agents authenticate with their name.
async fn master(address: &str, secret: &Secret) -> Result<Server, sockets::Error> {
    Server::builder()
        .address(address)
        .secret(secret.clone())
        .auth(|name: String, _peer| async move {
            if name.starts_with("agent-") {
                AuthDecision::accept(name)
            } else {
                AuthDecision::reject("agents only")
            }
        })
        .start()
        .await
}

/// Waits until `n` agents are connected to `server`.
async fn await_agents(server: &Server, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let mut events = server.events();
    tokio::time::timeout(Duration::from_secs(15), async {
        while server.connections().len() < n {
            if events.recv().await.is_err() {
                events = server.events();
            }
        }
    })
    .await?;
    Ok(())
}

/// Calls every agent at once and prints their statuses by name.
async fn roll_call(server: &Server) -> Result<(), Box<dyn std::error::Error>> {
    let replies = server.call_all(&AgentRequest::Status).await?;
    let mut by_name = BTreeMap::new();
    for (id, reply) in replies {
        match reply? {
            AgentResponse::Status(status) => {
                by_name.insert(status.name, status.jobs);
            }
            _ => return Err(format!("{id} answered another method").into()),
        }
    }
    for (name, jobs) in by_name {
        println!("master: {name} is up, {jobs} job(s) run");
    }
    Ok(())
}

fn parse_agents() -> Result<usize, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut agents = 3;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--agents" => {
                agents = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n >= 1)
                    .ok_or("--agents needs a number >= 1")?;
            }
            "--help" | "-h" => {
                println!("agent [--agents N]: a master and N agents (default 3) in one process");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)").into()),
        }
    }
    Ok(agents)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if examples::describe(&[AgentClient::descriptor()]) {
        return Ok(());
    }
    examples::init_logging();
    let count = parse_agents()?;
    let secret = Secret::from_base64(&generate_key())?;
    let first = master("127.0.0.1:0", &secret).await?;
    let address = first.local_addr().to_string();
    println!("master: listening on {address}");

    let mut agents = Vec::with_capacity(count);
    for i in 1..=count {
        let name = format!("agent-{i}");
        let client = Client::builder()
            .url(format!("ws://{address}/"))
            .secret(secret.clone())
            .credentials(&name)
            .serve(AgentServer::new(Worker {
                name: name.clone(),
                jobs: 0.into(),
            }))
            .reconnect(Reconnect {
                initial_delay: Duration::from_millis(50),
                max_delay: Duration::from_millis(500),
                ..Reconnect::default()
            })
            .connect()
            .await?;
        agents.push((name, client));
    }
    await_agents(&first, count).await?;
    roll_call(&first).await?;

    // One agent, by the name its auth hook stored.
    let target = *first
        .connections_of(|name: &String| name == "agent-1")
        .first()
        .ok_or("agent-1 is not connected")?;
    match first
        .send_to(
            target,
            &AgentRequest::Run {
                job: "rotate-logs".into(),
            },
        )
        .await?
    {
        AgentResponse::Run(Ok(output)) => println!("master: agent-1 ran rotate-logs: {output:?}"),
        _ => return Err("an unexpected reply".into()),
    }
    match first
        .send_to(
            target,
            &AgentRequest::Run {
                job: "format-disk".into(),
            },
        )
        .await?
    {
        AgentResponse::Run(Err(JobError::Unknown(job))) => {
            println!("master: agent-1 refused {job:?}: unknown job")
        }
        _ => return Err("an unexpected reply".into()),
    }

    // Restart the master on the same port.
    let mut states: Vec<_> = agents.iter().map(|(_, c)| c.states()).collect();
    first.shutdown(Duration::from_secs(1)).await;
    println!("master: stopped");
    for ((name, _), states) in agents.iter().zip(&mut states) {
        wait_for(states, |s| matches!(s, ClientState::Disconnected(_))).await?;
        println!("{name}: lost the master, reconnecting");
    }
    let second = master(&address, &secret).await?;
    println!("master: restarted on {}", second.local_addr());
    for ((name, _), states) in agents.iter().zip(&mut states) {
        // A restarted master knows nothing of the old sessions: a new one.
        wait_for(states, |s| *s == ClientState::SessionLost).await?;
        println!("{name}: reconnected in a new session (new handshake and authentication)");
    }
    await_agents(&second, count).await?;
    roll_call(&second).await?;

    for (_, client) in &agents {
        client.close().await;
    }
    second.shutdown(Duration::from_secs(1)).await;
    println!("master: shut down");
    Ok(())
}

/// Waits for a state change matching `done`.
async fn wait_for(
    states: &mut tokio::sync::broadcast::Receiver<ClientState>,
    done: impl Fn(&ClientState) -> bool,
) -> Result<(), Box<dyn std::error::Error>> {
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match states.recv().await {
                Ok(state) if done(&state) => return Ok(()),
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    return Err("the client stopped");
                }
            }
        }
    })
    .await??;
    Ok(())
}
