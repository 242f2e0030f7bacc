//! `sockets`: the command-line tool for `sockets` servers.
//!
//! ```text
//! cargo install --path sockets-cli
//! export SOCKETS_SECRET=$(sockets keygen)
//! sockets serve-echo &                                   # a server to try it on
//! sockets describe ws://127.0.0.1:7878/                  # services and signatures (--json: the descriptor)
//! sockets call ws://127.0.0.1:7878/ echo.add '[1, 2]'    # or '{"a": 1, "b": 2}'
//! sockets listen ws://127.0.0.1:7878/                    # notifications and pushes, as JSON lines
//! sockets bench ws://127.0.0.1:7878/ echo.add '[1, 2]' -c 4 -k 16 -d 5
//! sockets completions bash > /etc/bash_completion.d/sockets
//! ```
//!
//! The secret, credentials, cipher and TLS come from the same `SOCKETS_*`
//! variables as the runtime's, or from flags (`--help`). Each kind of error
//! has its own exit code (see `exit.rs`, or the README).

mod bench;
mod connect;
mod echo;
mod exit;
mod json;
mod listing;

use std::borrow::Cow;
use std::io::{IsTerminal, Read};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use serde_json::Value;
use sockets::descriptor::{DESCRIBE_METHOD, Document, MethodDescriptor, MethodKind};
use sockets::service::{DispatchError, HandlerFuture, ServiceInfo};
use sockets::{CallOptions, Client, ClientState, Context, Error, Peer, Service};

use connect::Connection;
use exit::CliError;

/// Describe, call, listen to and load-test `sockets` servers.
#[derive(Parser, Debug)]
#[command(name = "sockets", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a fresh random key for SOCKETS_SECRET.
    Keygen,
    /// List a server's services and method signatures.
    Describe {
        /// The server: ws://host:port/, wss://…, tcp://host:port, unix:///path.
        url: String,
        /// Print the descriptor document as JSON (docs/DESCRIPTOR.md).
        #[arg(long)]
        json: bool,
    },
    /// Call a method with JSON arguments and print its result as JSON.
    Call {
        /// The server.
        url: String,
        /// The method: service.method.
        method: String,
        /// The arguments as JSON: an array in order, or an object by
        /// parameter name; `-` reads them from standard input; none for `[]`.
        args: Option<String>,
        /// Indent the printed JSON.
        #[arg(long)]
        pretty: bool,
    },
    /// Print the notifications and calls the server sends, as JSON lines.
    Listen {
        /// The server.
        url: String,
        /// Answer calls with this JSON value (default: refuse them as unknown methods).
        #[arg(long)]
        reply: Option<String>,
        /// Exit after this many messages.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Run a throwaway server with an `echo` service to try the other commands on.
    ServeEcho {
        /// Where to listen: host:port (port 0 picks one), tcp://…, unix:///….
        #[arg(long, default_value = "127.0.0.1:7878")]
        address: String,
    },
    /// Load-test a method: throughput and a latency histogram.
    Bench {
        /// The server.
        url: String,
        /// The method: service.method.
        method: String,
        /// The arguments as JSON, as for `call`.
        args: Option<String>,
        /// Connections.
        #[arg(short = 'c', long, default_value_t = 1)]
        connections: usize,
        /// Calls in flight per connection.
        #[arg(short = 'k', long, default_value_t = 16)]
        in_flight: usize,
        /// How long, in seconds.
        #[arg(short = 'd', long, default_value_t = 5.0)]
        duration: f64,
    },
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Declared) => ExitCode::from(CliError::Declared.code()),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.code())
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let connection = cli.connection;
    match cli.command {
        Command::Keygen => {
            println!("{}", sockets::crypto::generate_key());
            Ok(())
        }
        Command::Describe { url, json } => describe(&connection, &url, json).await,
        Command::Call {
            url,
            method,
            args,
            pretty,
        } => call(&connection, &url, &method, args.as_deref(), pretty).await,
        Command::Listen { url, reply, count } => {
            listen(&connection, &url, reply.as_deref(), count).await
        }
        Command::ServeEcho { address } => serve_echo(&connection, &address).await,
        Command::Bench {
            url,
            method,
            args,
            connections,
            in_flight,
            duration,
        } => {
            if connections == 0 || in_flight == 0 || !(duration > 0.0 && duration < 1e6) {
                return Err(CliError::Config(
                    "-c and -k must be at least 1, -d above 0".into(),
                ));
            }
            let setup = Setup {
                connections,
                in_flight,
                duration: Duration::from_secs_f64(duration),
            };
            bench(&connection, &url, &method, args.as_deref(), setup).await
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "sockets",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    }
}

/// The peer's descriptor document.
async fn document(peer: &Peer, connection: &Connection) -> Result<Document, Error> {
    peer.call(
        DESCRIBE_METHOD,
        &[(); 0],
        CallOptions::timeout(connection.timeout()),
    )
    .await
}

async fn describe(connection: &Connection, url: &str, json: bool) -> Result<(), CliError> {
    let client = connection.connect(url).await?;
    let document = document(&client.peer(), connection).await;
    client.close().await;
    let document = document?;
    if json {
        let text =
            serde_json::to_string_pretty(&document).map_err(|e| CliError::Other(e.to_string()))?;
        println!("{text}");
    } else {
        print!("{}", listing::document(&document));
    }
    Ok(())
}

/// The arguments from the command line (`-` reads standard input).
fn read_args(args: Option<&str>) -> Result<Option<Value>, CliError> {
    let text = match args {
        None => return Ok(None),
        Some("-") => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            text
        }
        Some(text) => text.to_owned(),
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| CliError::Arguments(format!("the arguments are not JSON: {e}")))
}

/// What to send for `method`: its descriptor (if the server describes
/// itself) and the encoded arguments.
async fn prepare(
    peer: &Peer,
    connection: &Connection,
    method: &str,
    args: Option<&Value>,
) -> Result<(Option<MethodDescriptor>, Vec<u8>), CliError> {
    let document = match document(peer, connection).await {
        Ok(document) => document,
        Err(error @ (Error::UnknownMethod(_) | Error::Unauthorized)) => {
            eprintln!(
                "warning: the server does not describe itself ({error}); sending the arguments as plain JSON"
            );
            return Ok((None, plain_args(args)?));
        }
        Err(error) => return Err(error.into()),
    };
    let Some((_, descriptor)) = document.method(method) else {
        return Err(CliError::UnknownMethod(unknown_method(method, &document)));
    };
    let encoded = json::encode_args(descriptor, args).map_err(|mismatch| {
        CliError::Arguments(format!(
            "the arguments do not fit `{method}`: {mismatch}\n  expected: {}",
            listing::signature(descriptor)
        ))
    })?;
    Ok((Some(descriptor.clone()), encoded))
}

/// Arguments without a descriptor: a JSON array, as it is.
fn plain_args(args: Option<&Value>) -> Result<Vec<u8>, CliError> {
    let args = match args {
        None => Value::Array(Vec::new()),
        Some(array @ Value::Array(_)) => array.clone(),
        Some(_) => {
            return Err(CliError::Arguments(
                "without a descriptor the arguments must be a JSON array, in order".into(),
            ));
        }
    };
    sockets::__internal::protocol::codec::to_vec(&args)
        .map_err(|e| CliError::Arguments(e.to_string()))
}

/// A streaming method is refused with its own exit code: one reply is all
/// `call` and `bench` handle.
fn refuse_streams(method: &str, descriptor: Option<&MethodDescriptor>) -> Result<(), CliError> {
    let what = match descriptor.map(|m| m.kind) {
        Some(MethodKind::ServerStream) => "returns a stream",
        Some(MethodKind::ClientStream) => "takes a stream",
        Some(MethodKind::BidiStream) => "takes and returns streams",
        _ => return Ok(()),
    };
    Err(CliError::Stream(format!(
        "`{method}` {what}, which this tool does not open: call it from code (the generated client, or `Peer::stream`, `Peer::upload`, `Peer::duplex`)"
    )))
}

fn unknown_method(method: &str, document: &Document) -> String {
    let mut message = format!("the server has no method `{method}`; it offers:");
    for service in &document.services {
        for m in &service.methods {
            message.push_str("\n  ");
            message.push_str(&listing::signature(m));
        }
    }
    if document.services.is_empty() {
        message.push_str(" nothing");
    }
    message
}

async fn call(
    connection: &Connection,
    url: &str,
    method: &str,
    args: Option<&str>,
    pretty: bool,
) -> Result<(), CliError> {
    let args = read_args(args)?;
    let client = connection.connect(url).await?;
    let outcome = call_on(&client, connection, method, args.as_ref()).await;
    client.close().await;
    let (descriptor, reply) = outcome?;
    let Some(reply) = reply else {
        return Ok(());
    };
    let value = json::decode(&reply).map_err(|e| Error::Protocol(format!("the reply: {e}")))?;
    let declared = descriptor.as_ref().is_some_and(|m| m.error.is_some());
    let print = |value: &Value| {
        let text = if pretty {
            serde_json::to_string_pretty(value)
        } else {
            serde_json::to_string(value)
        };
        println!("{}", text.unwrap_or_default());
    };
    match value {
        Value::Object(mut object) if declared && object.len() == 1 => {
            if let Some(ok) = object.remove("Ok") {
                print(&ok);
                Ok(())
            } else if let Some(err) = object.remove("Err") {
                print(&err);
                eprintln!("error: `{method}` returned its declared error");
                Err(CliError::Declared)
            } else {
                print(&Value::Object(object));
                Ok(())
            }
        }
        value => {
            print(&value);
            Ok(())
        }
    }
}

/// Sends the call (or notification); the encoded reply of a call.
async fn call_on(
    client: &Client,
    connection: &Connection,
    method: &str,
    args: Option<&Value>,
) -> Result<
    (
        Option<MethodDescriptor>,
        Option<sockets::service::EncodedValue>,
    ),
    CliError,
> {
    let peer = client.peer();
    let (descriptor, encoded) = prepare(&peer, connection, method, args).await?;
    refuse_streams(method, descriptor.as_ref())?;
    let name = Cow::Owned(method.to_owned());
    if descriptor
        .as_ref()
        .is_some_and(|m| m.kind == MethodKind::Notify)
    {
        peer.caller().notify(name, encoded.into()).await?;
        return Ok((descriptor, None));
    }
    let reply = peer
        .caller()
        .call(
            name,
            encoded.into(),
            CallOptions::timeout(connection.timeout()),
        )
        .await?;
    Ok((descriptor, Some(reply)))
}

/// Prints what reaches it as JSON lines (`{"method": …, "args": […]}`);
/// answers calls with `reply`, or refuses them as unknown methods.
struct Printer {
    reply: Option<Vec<u8>>,
    seen: tokio::sync::mpsc::UnboundedSender<()>,
}

static PRINTER: ServiceInfo = ServiceInfo {
    name: "*",
    methods: &[],
};

impl Service for Printer {
    fn info(&self) -> &'static ServiceInfo {
        &PRINTER
    }

    fn dispatch(
        self: Arc<Self>,
        _cx: Context,
        method: &str,
        args: &[u8],
    ) -> Result<HandlerFuture, DispatchError> {
        let args =
            json::decode(args).unwrap_or_else(|e| Value::String(format!("undecodable: {e}")));
        // `method` first, whatever order the JSON library keeps.
        let name = Value::String(method.to_owned());
        println!("{{\"method\":{name},\"args\":{args}}}");
        let _ = self.seen.send(());
        match &self.reply {
            Some(reply) => {
                let reply = reply.clone();
                Ok(Box::pin(async move { Ok(reply.into()) }))
            }
            None => Err(DispatchError::UnknownMethod(method.to_owned())),
        }
    }
}

async fn listen(
    connection: &Connection,
    url: &str,
    reply: Option<&str>,
    count: Option<u64>,
) -> Result<(), CliError> {
    let reply = match reply {
        Some(text) => {
            let value: Value = serde_json::from_str(text)
                .map_err(|e| CliError::Arguments(format!("--reply is not JSON: {e}")))?;
            Some(
                sockets::__internal::protocol::codec::to_vec(&value)
                    .map_err(|e| CliError::Arguments(e.to_string()))?,
            )
        }
        None => None,
    };
    let (seen, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let client = connection
        .builder(url)?
        .serve_fallback(Printer { reply, seen })
        .connect()
        .await?;
    // One round trip: the server has registered the connection once it
    // answers, so nothing sent from now on is missed.
    let _ = document(&client.peer(), connection).await;
    eprintln!("listening on {url} (Ctrl-C to stop)");
    let mut states = client.states();
    let mut received = 0u64;
    loop {
        if count.is_some_and(|count| received >= count) {
            client.close().await;
            return Ok(());
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                client.close().await;
                return Ok(());
            }
            Some(()) = seen_rx.recv() => received += 1,
            state = states.recv() => match state {
                Ok(ClientState::Disconnected(reason)) => {
                    return Err(Error::Disconnected(reason).into());
                }
                Ok(ClientState::Closed) => return Ok(()),
                _ => {}
            },
        }
    }
}

async fn serve_echo(connection: &Connection, address: &str) -> Result<(), CliError> {
    let secret = match connection.secret() {
        Ok(secret) => secret,
        Err(_) if connection.secret.is_none() && connection.passphrase.is_none() => {
            let key = sockets::crypto::generate_key();
            println!("SOCKETS_SECRET={key}");
            sockets::crypto::Secret::from_base64(&key)
                .map_err(|e| CliError::Other(e.to_string()))?
        }
        Err(error) => return Err(error),
    };
    let server = echo::server()
        .secret(secret)
        .address(address)
        .start()
        .await?;
    println!("listening on {}", server.url().unwrap_or_default());
    tokio::signal::ctrl_c().await?;
    println!("shutting down");
    server.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

/// `-c`, `-k`, `-d`.
struct Setup {
    connections: usize,
    in_flight: usize,
    duration: Duration,
}

async fn bench(
    connection: &Connection,
    url: &str,
    method: &str,
    args: Option<&str>,
    setup: Setup,
) -> Result<(), CliError> {
    let args = read_args(args)?;
    let mut connecting = tokio::task::JoinSet::new();
    for _ in 0..setup.connections {
        let builder = connection.builder(url)?;
        connecting.spawn(builder.connect());
    }
    let mut clients = Vec::with_capacity(setup.connections);
    while let Some(connected) = connecting.join_next().await {
        let client = connected.map_err(|e| CliError::Other(e.to_string()))??;
        clients.push(client);
    }
    let (descriptor, encoded) =
        prepare(&clients[0].peer(), connection, method, args.as_ref()).await?;
    refuse_streams(method, descriptor.as_ref())?;
    if descriptor.is_some_and(|m| m.kind == MethodKind::Notify) {
        return Err(CliError::Arguments(format!(
            "`{method}` is a notification method: nothing to measure"
        )));
    }
    let head = format!(
        "sockets bench {url} {method}: {} connection{} × {} in flight, {:.1} s",
        setup.connections,
        if setup.connections == 1 { "" } else { "s" },
        setup.in_flight,
        setup.duration.as_secs_f64()
    );
    if std::io::stderr().is_terminal() {
        eprintln!("{head}");
    }
    let plan = bench::Plan {
        method: Box::leak(method.to_owned().into_boxed_str()),
        args: encoded.into(),
        in_flight: setup.in_flight,
        duration: setup.duration,
        timeout: connection.timeout(),
    };
    bench::run(plan, clients, head).await
}
