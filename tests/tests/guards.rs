//! Guards and argument validation: a server-wide guard, a service's guard
//! and a method's `#[sockets(guard = ...)]` each let calls through or refuse
//! them with their reason, before the arguments are decoded; a guard on a
//! client's service refuses the server's calls; a refused notification is
//! dropped and counted; rate limits under a burst, on the paused clock;
//! `#[sockets(validate)]` field errors read back by the caller.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sockets::guard::RateLimit;
use sockets::testing::Harness;
use sockets::{
    AuthDecision, CallOptions, Context, Error, InvalidArgument, Refusal, Server, ServiceExt,
};
use tokio::sync::mpsc;

/// A payload with rules, for `#[sockets(validate)]`.
#[derive(Debug, serde::Serialize, serde::Deserialize, garde::Validate)]
pub struct NewUser {
    /// 1 to 16 characters.
    #[garde(length(min = 1, max = 16))]
    pub name: String,
    /// Adults only.
    #[garde(range(min = 18))]
    pub age: u32,
    /// Each checked.
    #[garde(dive)]
    pub tags: Vec<Tag>,
}

/// A nested payload.
#[derive(Debug, serde::Serialize, serde::Deserialize, garde::Validate)]
pub struct Tag(#[garde(length(min = 1))] pub String);

/// The service under test.
#[sockets::service]
pub trait Accounts {
    /// Anyone signed in.
    async fn balance(&self, cx: &Context) -> u64;
    /// Admins only, by the method's own guard.
    #[sockets(guard = admins_only)]
    async fn reset(&self, account: String) -> bool;
    /// Checked against its rules before the handler runs.
    #[sockets(validate)]
    async fn register(&self, user: NewUser, referrer: Tag) -> String;
    /// Notifications pass guards too.
    #[sockets(notify, guard = admins_only)]
    async fn audit(&self, note: String);
}

/// The method guard: the auth hook stores the user's name; admins' start with `admin:`.
pub fn admins_only(cx: &Context, method: &str) -> Result<(), Refusal> {
    match cx.meta::<String>() {
        Some(user) if user.starts_with("admin:") => Ok(()),
        Some(user) => Err(Refusal::forbidden(format!("{user} may not call {method}"))),
        None => Err(Refusal::forbidden("sign in first")),
    }
}

/// Counts the handler runs, to show a refused call never ran.
#[derive(Clone, Default)]
struct Bank {
    runs: Arc<AtomicUsize>,
    audits: Option<mpsc::UnboundedSender<String>>,
}

impl Accounts for Bank {
    async fn balance(&self, _cx: &Context) -> u64 {
        self.runs.fetch_add(1, Ordering::SeqCst);
        100
    }

    async fn reset(&self, _account: String) -> bool {
        self.runs.fetch_add(1, Ordering::SeqCst);
        true
    }

    async fn register(&self, user: NewUser, _referrer: Tag) -> String {
        self.runs.fetch_add(1, Ordering::SeqCst);
        user.name
    }

    async fn audit(&self, note: String) {
        if let Some(audits) = &self.audits {
            let _ = audits.send(note);
        }
    }
}

fn accept_user()
-> impl Fn(String, sockets::server::PeerInfo) -> std::future::Ready<AuthDecision> + Send + Sync + 'static
{
    |user: String, _peer| std::future::ready(AuthDecision::accept(user))
}

#[tokio::test]
async fn a_method_guard_refuses_before_decoding_and_lets_admins_through() {
    let bank = Bank::default();
    let harness = Harness::new(
        Server::builder()
            .serve(AccountsServer::new(bank.clone()))
            .auth(accept_user()),
    )
    .unwrap();
    let ada = harness.client().credentials("ada").connect().await.unwrap();
    let root = harness
        .client()
        .credentials("admin:root")
        .connect()
        .await
        .unwrap();
    let as_ada = AccountsClient::new(ada.peer());
    let as_root = AccountsClient::new(root.peer());

    match as_ada.reset("acct-1").await {
        Err(Error::Forbidden(reason)) => assert_eq!(reason, "ada may not call accounts.reset"),
        other => panic!("expected Forbidden, got {other:?}"),
    }
    assert_eq!(
        bank.runs.load(Ordering::SeqCst),
        0,
        "a refused call never runs"
    );
    // Unguarded methods of the same service are not affected.
    assert_eq!(as_ada.balance().await.unwrap(), 100);
    assert!(as_root.reset("acct-1").await.unwrap());
    assert_eq!(bank.runs.load(Ordering::SeqCst), 2);

    // The guard runs before the arguments are decoded: undecodable
    // arguments from a refused caller get FORBIDDEN, not BAD_REQUEST.
    let raw = ada
        .peer()
        .caller()
        .call(
            "accounts.reset".into(),
            vec![0xc1].into(),
            CallOptions::default(),
        )
        .await;
    assert!(matches!(raw, Err(Error::Forbidden(_))), "{raw:?}");
}

#[tokio::test]
async fn a_server_wide_guard_and_a_service_guard_run_outermost_first() {
    let bank = Bank::default();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (outer, inner) = (Arc::clone(&order), Arc::clone(&order));
    let harness = Harness::new(
        Server::builder()
            .guard(move |cx: &Context, _method: &str| {
                outer.lock().unwrap().push("server");
                match cx.meta::<String>().map(String::as_str) {
                    Some("banned") => Err(Refusal::forbidden("banned")),
                    _ => Ok(()),
                }
            })
            .serve(AccountsServer::new(bank.clone()).with_guard(
                move |cx: &Context, method: &str| {
                    inner.lock().unwrap().push("service");
                    match cx.meta::<String>().map(String::as_str) {
                        Some("late") => Err(Refusal::rejected(format!("{method}: try later"))),
                        _ => Ok(()),
                    }
                },
            ))
            .auth(accept_user()),
    )
    .unwrap();
    let call = |user: &'static str| {
        let harness = harness.clone();
        async move {
            let client = harness.client().credentials(user).connect().await.unwrap();
            AccountsClient::new(client.peer()).balance().await
        }
    };
    assert_eq!(call("ada").await.unwrap(), 100);
    assert_eq!(*order.lock().unwrap(), ["server", "service"]);
    order.lock().unwrap().clear();
    match call("banned").await {
        Err(Error::Forbidden(reason)) => assert_eq!(reason, "banned"),
        other => panic!("expected Forbidden, got {other:?}"),
    }
    assert_eq!(*order.lock().unwrap(), ["server"], "the first refusal wins");
    match call("late").await {
        Err(Error::Rejected(reason)) => assert_eq!(reason, "accounts.balance: try later"),
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert_eq!(bank.runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn sockets_describe_is_not_guarded() {
    let harness = Harness::new(
        Server::builder()
            .guard(|_: &Context, _: &str| Err(Refusal::forbidden("nothing")))
            .serve(AccountsServer::new(Bank::default()))
            .auth(accept_user()),
    )
    .unwrap();
    let client = harness.client().credentials("ada").connect().await.unwrap();
    let described: Result<serde::de::IgnoredAny, Error> = client
        .peer()
        .call("sockets.describe", &[(); 0], CallOptions::default())
        .await;
    assert!(described.is_ok(), "{described:?}");
    let refused = AccountsClient::new(client.peer()).balance().await;
    assert!(matches!(refused, Err(Error::Forbidden(_))), "{refused:?}");
}

#[tokio::test]
async fn a_refused_notification_is_dropped_and_counted() {
    let (audits, mut audited) = mpsc::unbounded_channel();
    let bank = Bank {
        audits: Some(audits),
        ..Bank::default()
    };
    let harness = Harness::new(
        Server::builder()
            .serve(AccountsServer::new(bank))
            .auth(accept_user()),
    )
    .unwrap();
    let ada = harness.client().credentials("ada").connect().await.unwrap();
    let root = harness
        .client()
        .credentials("admin:root")
        .connect()
        .await
        .unwrap();
    AccountsClient::new(ada.peer())
        .audit("from ada")
        .await
        .unwrap();
    AccountsClient::new(root.peer())
        .audit("from root")
        .await
        .unwrap();
    // Notifications on one connection are handled in order, so by the time
    // root's arrives, ada's (sent first on another connection) may not have:
    // wait for root's, then for the drop to be counted.
    assert_eq!(
        tests::within(audited.recv()).await.as_deref(),
        Some("from root")
    );
    tests::within(async {
        while harness.server().stats().dropped_notifications < 1 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(audited.try_recv().is_err(), "ada's notification never ran");
}

/// What a client serves: the server calls it back.
#[sockets::service]
pub trait Device {
    /// Reboots.
    async fn reboot(&self) -> bool;
}

struct Phone;

impl Device for Phone {
    async fn reboot(&self) -> bool {
        true
    }
}

/// The server's service.
#[sockets::service]
pub trait Fleet {
    /// Calls the caller's own `Device.reboot` back.
    async fn reboot_me(&self, cx: &Context) -> String;
}

struct Master;

impl Fleet for Master {
    async fn reboot_me(&self, cx: &Context) -> String {
        match DeviceClient::new(cx.peer().clone()).reboot().await {
            Ok(done) => format!("rebooted: {done}"),
            Err(error) => error.to_string(),
        }
    }
}

#[tokio::test]
async fn a_client_guard_refuses_the_servers_calls() {
    let harness = Harness::new(Server::builder().serve(FleetServer::new(Master))).unwrap();
    let locked = harness
        .client()
        .serve(DeviceServer::new(Phone))
        .guard(|_: &Context, method: &str| Err(Refusal::forbidden(format!("{method} is locked"))))
        .connect()
        .await
        .unwrap();
    let open = harness
        .client()
        .serve(DeviceServer::new(Phone))
        .connect()
        .await
        .unwrap();
    assert_eq!(
        FleetClient::new(locked.peer()).reboot_me().await.unwrap(),
        "forbidden: device.reboot is locked"
    );
    assert_eq!(
        FleetClient::new(open.peer()).reboot_me().await.unwrap(),
        "rebooted: true"
    );
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_lets_a_burst_through_then_refuses_with_a_retry_hint() {
    let bank = Bank::default();
    let harness = Harness::new(
        Server::builder()
            // 10 a second per connection, bursts of 5.
            .guard(RateLimit::per_connection(10, Duration::from_secs(1)).burst(5))
            .serve(AccountsServer::new(bank.clone()))
            .auth(accept_user()),
    )
    .unwrap();
    let ada = harness.client().credentials("ada").connect().await.unwrap();
    let bob = harness.client().credentials("bob").connect().await.unwrap();
    let accounts = AccountsClient::new(ada.peer());
    // A burst of 8 at one instant: 5 pass, 3 are refused, each saying when
    // a token is back (100 ms: the clock does not move while paused).
    let results = futures_util::future::join_all((0..8).map(|_| accounts.balance())).await;
    let passed = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(passed, 5, "{results:?}");
    for refused in results.iter().filter(|r| r.is_err()) {
        match refused {
            Err(Error::Rejected(reason)) => assert_eq!(reason, "rate limited; retry in 100 ms"),
            other => panic!("expected Rejected, got {other:?}"),
        }
    }
    // Another connection has its own bucket.
    assert_eq!(
        AccountsClient::new(bob.peer()).balance().await.unwrap(),
        100
    );
    // After the hinted wait, one more passes, and only one.
    tokio::time::advance(Duration::from_millis(100)).await;
    assert_eq!(accounts.balance().await.unwrap(), 100);
    assert!(matches!(accounts.balance().await, Err(Error::Rejected(_))));
    assert_eq!(bank.runs.load(Ordering::SeqCst), 5 + 1 + 1);
}

#[tokio::test(start_paused = true)]
async fn a_per_user_rate_limit_spans_the_users_connections() {
    let harness = Harness::new(
        Server::builder()
            .serve(
                AccountsServer::new(Bank::default()).with_guard(RateLimit::per_key(
                    2,
                    Duration::from_secs(60),
                    |cx: &Context| cx.meta::<String>().cloned(),
                )),
            )
            .auth(accept_user()),
    )
    .unwrap();
    let first = harness.client().credentials("ada").connect().await.unwrap();
    let second = harness.client().credentials("ada").connect().await.unwrap();
    let other = harness.client().credentials("bob").connect().await.unwrap();
    assert!(AccountsClient::new(first.peer()).balance().await.is_ok());
    assert!(AccountsClient::new(second.peer()).balance().await.is_ok());
    match AccountsClient::new(second.peer()).balance().await {
        Err(Error::Rejected(reason)) => assert_eq!(reason, "rate limited; retry in 30000 ms"),
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(AccountsClient::new(other.peer()).balance().await.is_ok());
}

#[tokio::test]
async fn invalid_arguments_are_refused_with_every_field_error() {
    let bank = Bank::default();
    let harness = Harness::new(
        Server::builder()
            .serve(AccountsServer::new(bank.clone()))
            .auth(accept_user()),
    )
    .unwrap();
    let client = harness.client().credentials("ada").connect().await.unwrap();
    let accounts = AccountsClient::new(client.peer());
    let error = accounts
        .register(
            NewUser {
                name: String::new(),
                age: 12,
                tags: vec![Tag("ok".into()), Tag(String::new())],
            },
            Tag(String::new()),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, Error::BadRequest(_)), "{error:?}");
    let mut invalid = error.invalid_arguments().expect("field errors");
    invalid.sort_by(|a, b| a.path.cmp(&b.path));
    let paths: Vec<_> = invalid.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(
        paths,
        ["referrer[0]", "user.age", "user.name", "user.tags[1][0]"]
    );
    assert!(
        invalid
            .iter()
            .all(|InvalidArgument { message, .. }| !message.is_empty())
    );
    assert_eq!(
        bank.runs.load(Ordering::SeqCst),
        0,
        "an invalid call never runs"
    );

    let name = accounts
        .register(
            NewUser {
                name: "ada".into(),
                age: 36,
                tags: vec![Tag("ops".into())],
            },
            Tag("bob".into()),
        )
        .await
        .unwrap();
    assert_eq!(name, "ada");
    // A plain decoding failure is a BadRequest without field errors.
    let raw = client
        .peer()
        .caller()
        .call(
            "accounts.register".into(),
            vec![0x90].into(),
            CallOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(raw, Error::BadRequest(_)) && raw.invalid_arguments().is_none(),
        "{raw:?}"
    );
}
