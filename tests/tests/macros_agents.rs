//! A master and its agents, declared with `#[sockets::service]` alone: the
//! agents are clients serving `Agent`, the master is the server serving
//! `Master`. The master calls one agent (`send_to`) or all of them
//! (`call_all`) with the generated request enum, and an agent calls the
//! master back from inside its handler through the call's context.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sockets::{AuthDecision, Client, ConnectionId, Context, Error, Server};
use tests::{client, server, within};
use tokio::sync::mpsc;

/// What an agent reports about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// The agent's name.
    pub name: String,
    /// Commands run so far.
    pub jobs_run: u64,
}

/// What a command produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// Exit code.
    pub code: i32,
    /// What it printed.
    pub stdout: String,
}

/// Why a command did not run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentError {
    /// The agent does not know the command.
    UnknownCommand(String),
    /// The command failed on the agent.
    Failed(String),
}

/// What every agent serves to the master.
#[sockets::service]
pub trait Agent {
    /// The agent's status.
    async fn status(&self) -> AgentStatus;
    /// Runs a command: `uptime`, or `setting <key>`, which asks the master.
    async fn run(&self, cx: &Context, cmd: String) -> Result<Output, AgentError>;
}

/// What the master serves to its agents.
#[sockets::service]
pub trait Master {
    /// The caller's connection id as the master knows it; guests may ask.
    #[sockets(open)]
    async fn hello(&self, cx: &Context) -> ConnectionId;
    /// A configuration value for the calling agent.
    async fn setting(&self, cx: &Context, key: String) -> Option<String>;
}

// ---------------------------------------------------------------- the agent

struct Worker {
    name: String,
    /// A broken agent fails every `uptime`.
    broken: bool,
    jobs_run: AtomicU64,
}

impl Agent for Worker {
    async fn status(&self) -> AgentStatus {
        AgentStatus {
            name: self.name.clone(),
            jobs_run: self.jobs_run.load(Ordering::Relaxed),
        }
    }

    async fn run(&self, cx: &Context, cmd: String) -> Result<Output, AgentError> {
        self.jobs_run.fetch_add(1, Ordering::Relaxed);
        let mut words = cmd.split_whitespace();
        match (words.next(), words.next()) {
            (Some("uptime"), None) if self.broken => Err(AgentError::Failed("disk full".into())),
            (Some("uptime"), None) => Ok(Output {
                code: 0,
                stdout: format!("{} up", self.name),
            }),
            (Some("setting"), Some(key)) => {
                // Back to the master, over the connection this call came on.
                let master = MasterClient::new(cx.peer().clone());
                match master.setting(key.to_owned()).await {
                    Ok(Some(value)) => Ok(Output {
                        code: 0,
                        stdout: value,
                    }),
                    Ok(None) => Err(AgentError::Failed(format!("no setting `{key}`"))),
                    Err(error) => Err(AgentError::Failed(error.to_string())),
                }
            }
            _ => Err(AgentError::UnknownCommand(cmd)),
        }
    }
}

// ---------------------------------------------------------------- the master

/// What the auth hook stores for an agent: its name.
struct AgentName(String);

/// The master's service; reports every `setting` asked, with the asker.
struct Control {
    asked: mpsc::UnboundedSender<(ConnectionId, String)>,
}

impl Master for Control {
    async fn hello(&self, cx: &Context) -> ConnectionId {
        cx.connection_id()
    }

    async fn setting(&self, cx: &Context, key: String) -> Option<String> {
        let _ = self.asked.send((cx.connection_id(), key.clone()));
        let name = cx.meta::<AgentName>()?;
        (key == "region").then(|| format!("eu-west for {} on {}", name.0, cx.connection_id()))
    }
}

#[derive(Serialize, Deserialize)]
struct Login {
    agent: String,
}

async fn start() -> (Server, mpsc::UnboundedReceiver<(ConnectionId, String)>) {
    let (asked, asks) = mpsc::unbounded_channel();
    let server = server()
        .serve(MasterServer::new(Control { asked }))
        .auth(|login: Login, _peer| async move {
            if login.agent == "guest" {
                AuthDecision::Guest
            } else {
                AuthDecision::accept(AgentName(login.agent))
            }
        })
        .start()
        .await
        .unwrap();
    (server, asks)
}

/// How a connecting agent behaves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Serves `Agent` and runs commands.
    Healthy,
    /// Serves `Agent`, but every `uptime` fails.
    Broken,
    /// Serves nothing.
    Silent,
}

/// Connects an agent named `name`; returns it with its id on the master.
async fn agent(server: &Server, name: &str, role: Role) -> (Client, ConnectionId) {
    let mut builder = client(server.local_addr()).credentials(&Login { agent: name.into() });
    if role != Role::Silent {
        builder = builder.serve(AgentServer::new(Worker {
            name: name.into(),
            broken: role == Role::Broken,
            jobs_run: AtomicU64::new(0),
        }));
    }
    let client = within(builder.connect()).await.unwrap();
    let id = within(MasterClient::new(client.peer()).hello())
        .await
        .unwrap();
    (client, id)
}

/// The outcome of a `run` call, or a panic naming what came instead.
fn ran(reply: Result<AgentResponse, Error>) -> Result<Output, AgentError> {
    match reply {
        Ok(AgentResponse::Run(outcome)) => outcome,
        Ok(_) => panic!("the reply answers another method"),
        Err(error) => panic!("the call failed: {error}"),
    }
}

fn up(name: &str) -> Result<Output, AgentError> {
    Ok(Output {
        code: 0,
        stdout: format!("{name} up"),
    })
}

#[tokio::test]
async fn the_master_calls_one_agent() {
    let (server, _) = start().await;
    let (alpha_client, alpha) = agent(&server, "alpha", Role::Healthy).await;
    let (beta_client, beta) = agent(&server, "beta", Role::Healthy).await;

    let reply = within(server.send_to(alpha, &AgentRequest::Status)).await;
    let Ok(AgentResponse::Status(status)) = reply else {
        panic!("no status from alpha");
    };
    assert_eq!(
        status,
        AgentStatus {
            name: "alpha".into(),
            jobs_run: 0
        }
    );

    let uptime = AgentRequest::Run {
        cmd: "uptime".into(),
    };
    assert_eq!(ran(within(server.send_to(beta, &uptime)).await), up("beta"));
    let unknown = AgentRequest::Run {
        cmd: "reboot".into(),
    };
    assert_eq!(
        ran(within(server.send_to(beta, &unknown)).await),
        Err(AgentError::UnknownCommand("reboot".into()))
    );
    // Only beta ran anything.
    let Ok(AgentResponse::Status(status)) =
        within(server.send_to(beta, &AgentRequest::Status)).await
    else {
        panic!("no status from beta");
    };
    assert_eq!(status.jobs_run, 2);
    let Ok(AgentResponse::Status(status)) =
        within(server.send_to(alpha, &AgentRequest::Status)).await
    else {
        panic!("no status from alpha");
    };
    assert_eq!(status.jobs_run, 0);

    // Through a generated client on the master's peer for one connection.
    let to_alpha = AgentClient::new(server.peer(alpha).unwrap());
    assert_eq!(within(to_alpha.run("uptime")).await.unwrap(), up("alpha"));
    let quick = to_alpha.with_timeout(Duration::from_secs(5));
    assert_eq!(within(quick.status()).await.unwrap().jobs_run, 1);

    alpha_client.close().await;
    beta_client.close().await;
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn the_master_calls_every_agent_at_once() {
    let (server, _) = start().await;
    let (alpha_client, alpha) = agent(&server, "alpha", Role::Healthy).await;
    let (beta_client, beta) = agent(&server, "beta", Role::Healthy).await;
    let (gamma_client, gamma) = agent(&server, "gamma", Role::Broken).await;
    // An authenticated client that serves no agent, and a guest agent.
    let (watcher_client, watcher) = agent(&server, "watcher", Role::Silent).await;
    let (guest_client, guest) = agent(&server, "guest", Role::Healthy).await;

    let mut results = within(server.call_all(&AgentRequest::Run {
        cmd: "uptime".into(),
    }))
    .await
    .unwrap();
    let keys: HashSet<_> = results.keys().copied().collect();
    assert_eq!(
        keys,
        HashSet::from([alpha, beta, gamma, watcher]),
        "every authenticated connection, no guest ({guest})"
    );
    assert_eq!(ran(results.remove(&alpha).unwrap()), up("alpha"));
    assert_eq!(ran(results.remove(&beta).unwrap()), up("beta"));
    // An agent's own failure arrives typed, in its entry only.
    assert_eq!(
        ran(results.remove(&gamma).unwrap()),
        Err(AgentError::Failed("disk full".into()))
    );
    // A client that serves no agent: the call itself fails.
    let outcome = results.remove(&watcher).unwrap();
    assert!(
        matches!(&outcome, Err(Error::UnknownMethod(m)) if m == "agent.run"),
        "{:?}",
        outcome.err()
    );

    // The guest still serves whoever calls it directly.
    let reply = within(server.send_to(guest, &AgentRequest::Status)).await;
    assert!(matches!(&reply, Ok(AgentResponse::Status(s)) if s.name == "guest" && s.jobs_run == 0));

    for client in [
        alpha_client,
        beta_client,
        gamma_client,
        watcher_client,
        guest_client,
    ] {
        client.close().await;
    }
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn an_agent_calls_the_master_back_from_its_handler() {
    let (server, mut asks) = start().await;
    let (alpha_client, alpha) = agent(&server, "alpha", Role::Healthy).await;
    let (beta_client, beta) = agent(&server, "beta", Role::Healthy).await;

    let region = AgentRequest::Run {
        cmd: "setting region".into(),
    };
    // The master answers the callback from the same connection it called:
    // its handler sees alpha's id and the name alpha logged in with.
    assert_eq!(
        ran(within(server.send_to(alpha, &region)).await),
        Ok(Output {
            code: 0,
            stdout: format!("eu-west for alpha on {alpha}"),
        })
    );
    assert_eq!(within(asks.recv()).await, Some((alpha, "region".into())));

    // The master's own answer, none, becomes the agent's typed failure.
    let colour = AgentRequest::Run {
        cmd: "setting colour".into(),
    };
    assert_eq!(
        ran(within(server.send_to(beta, &colour)).await),
        Err(AgentError::Failed("no setting `colour`".into()))
    );
    assert_eq!(within(asks.recv()).await, Some((beta, "colour".into())));

    // Callbacks from every agent at once, each on its own connection.
    let mut results = within(server.call_all(&region)).await.unwrap();
    for (id, name) in [(alpha, "alpha"), (beta, "beta")] {
        assert_eq!(
            ran(results.remove(&id).unwrap()),
            Ok(Output {
                code: 0,
                stdout: format!("eu-west for {name} on {id}"),
            })
        );
    }
    let mut askers = HashSet::new();
    for _ in 0..2 {
        let (id, key) = within(asks.recv()).await.unwrap();
        assert_eq!(key, "region");
        askers.insert(id);
    }
    assert_eq!(askers, HashSet::from([alpha, beta]));

    alpha_client.close().await;
    beta_client.close().await;
    server.shutdown(Duration::from_secs(1)).await;
}
