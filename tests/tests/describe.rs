//! `sockets.describe` and the compatibility check at connect (issue #13):
//! who may call the reserved method, what it answers, and compatible and
//! incompatible changes to a service, each with its outcome.

use std::sync::{Arc, Mutex};

use sockets::descriptor::{DESCRIBE_METHOD, Document, MethodKind, Type};
use sockets::service::{DispatchError, HandlerFuture, ServiceInfo};
use sockets::testing::Harness;
use sockets::{
    AuthDecision, CallOptions, ClientState, Context, DescribeAccess, Error, Server, ServerBuilder,
    Service,
};
use tests::within;

/// The version a client was built against.
mod v1 {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    pub struct Item {
        pub name: String,
        pub count: u32,
    }

    #[derive(Serialize, Deserialize)]
    pub enum Status {
        Open,
        Closed,
    }

    /// A shop.
    #[sockets::service]
    pub trait Shop {
        /// Adds an item.
        async fn add(&self, item: Item) -> u64;
        async fn status(&self) -> Status;
        #[sockets(open)]
        async fn ping(&self) -> bool;
    }
}

/// Compatible with v1: a method added, a wider count, an optional field, a
/// variant added to an enum the server reads.
mod v2 {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    pub struct Item {
        pub name: String,
        pub count: u64,
        pub note: Option<String>,
    }

    #[derive(Serialize, Deserialize)]
    pub enum Status {
        Open,
        Closed,
    }

    /// A shop, version 2.
    #[sockets::service]
    pub trait Shop {
        async fn add(&self, item: Item) -> u64;
        async fn status(&self) -> Status;
        #[sockets(open)]
        async fn ping(&self) -> bool;
        async fn remove(&self, name: String) -> bool;
    }
}

/// Incompatible with v1: `count` narrowed, a required field added, a variant
/// added to an enum the server returns, `ping` gone.
mod v3 {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    pub struct Item {
        pub name: String,
        pub count: u16,
        pub price: u64,
    }

    #[derive(Serialize, Deserialize)]
    pub enum Status {
        Open,
        Closed,
        Holiday,
    }

    #[sockets::service]
    pub trait Shop {
        async fn add(&self, item: Item) -> u64;
        async fn status(&self) -> Status;
    }
}

struct V1;
impl v1::Shop for V1 {
    async fn add(&self, _item: v1::Item) -> u64 {
        1
    }
    async fn status(&self) -> v1::Status {
        v1::Status::Open
    }
    async fn ping(&self) -> bool {
        true
    }
}

struct V2;
impl v2::Shop for V2 {
    async fn add(&self, item: v2::Item) -> u64 {
        item.count
    }
    async fn status(&self) -> v2::Status {
        v2::Status::Closed
    }
    async fn ping(&self) -> bool {
        true
    }
    async fn remove(&self, _name: String) -> bool {
        false
    }
}

struct V3;
impl v3::Shop for V3 {
    async fn add(&self, _item: v3::Item) -> u64 {
        3
    }
    async fn status(&self) -> v3::Status {
        v3::Status::Holiday
    }
}

/// Admits the credentials "guest" as a guest, anything else as authenticated.
fn server(builder: ServerBuilder) -> Harness {
    Harness::new(builder.auth(|user: String, _peer| async move {
        if user == "guest" {
            AuthDecision::Guest
        } else {
            AuthDecision::accept(user)
        }
    }))
    .expect("the server builds")
}

async fn describe(peer: &sockets::Peer) -> Result<Document, Error> {
    peer.call(DESCRIBE_METHOD, &[(); 0], CallOptions::default())
        .await
}

#[tokio::test]
async fn the_server_describes_its_services_to_authenticated_sessions() {
    let harness = server(Server::builder().serve(v1::ShopServer::new(V1)));
    let client = within(harness.client().credentials("ada").connect())
        .await
        .unwrap();
    let document = within(describe(&client.peer())).await.unwrap();
    assert_eq!(document.version, 1);
    assert_eq!(
        document.services.len(),
        1,
        "the reserved service is not listed"
    );
    let shop = &document.services[0];
    assert_eq!(shop, v1::ShopClient::descriptor());
    assert_eq!(shop.name, "shop");
    assert_eq!(shop.doc, "A shop.");
    let add = shop.method("shop.add").unwrap();
    assert_eq!(add.kind, MethodKind::Call);
    assert_eq!(add.doc, "Adds an item.");
    assert_eq!(add.returns, Some(Type::U64));
    assert!(shop.method("shop.ping").unwrap().open);

    // A guest is refused by default.
    let guest = within(harness.client().credentials("guest").connect())
        .await
        .unwrap();
    assert!(matches!(
        within(describe(&guest.peer())).await,
        Err(Error::Unauthorized)
    ));
}

#[tokio::test]
async fn describe_can_be_opened_to_guests_or_turned_off() {
    let open = server(
        Server::builder()
            .serve(v1::ShopServer::new(V1))
            .describe(DescribeAccess::Guests),
    );
    let guest = within(open.client().credentials("guest").connect())
        .await
        .unwrap();
    let document = within(describe(&guest.peer())).await.unwrap();
    assert_eq!(document.services[0].name, "shop");

    let off = server(
        Server::builder()
            .serve(v1::ShopServer::new(V1))
            .describe(DescribeAccess::Off),
    );
    let client = within(off.client().credentials("ada").connect())
        .await
        .unwrap();
    assert!(matches!(
        within(describe(&client.peer())).await,
        Err(Error::UnknownMethod(_))
    ));
    // Arguments are refused: the method takes none.
    let peer = guest.peer();
    let bad = peer.call::<_, Document>(DESCRIBE_METHOD, &(1,), CallOptions::default());
    assert!(matches!(within(bad).await, Err(Error::BadRequest(_))));
}

#[tokio::test]
async fn a_user_service_cannot_take_the_reserved_name() {
    #[sockets::service]
    pub trait Sockets {
        async fn x(&self) -> u8;
    }
    struct S;
    impl Sockets for S {
        async fn x(&self) -> u8 {
            0
        }
    }
    let built = Server::builder()
        .secret(tests::secret())
        .serve(SocketsServer::new(S))
        .build();
    assert!(matches!(built, Err(Error::Config(message)) if message.contains("reserved")));
}

#[tokio::test]
async fn a_client_answers_describe_for_the_services_it_serves() {
    let harness = server(Server::builder());
    let client = within(
        harness
            .client()
            .credentials("ada")
            .serve(v2::ShopServer::new(V2))
            .connect(),
    )
    .await
    .unwrap();
    let id = client.server_connection_id().unwrap();
    let peer = harness.server().peer(id).unwrap();
    let document = within(describe(&peer)).await.unwrap();
    assert_eq!(&document.services[0], v2::ShopClient::descriptor());
}

#[tokio::test]
async fn compatible_changes_connect() {
    let harness = server(Server::builder().serve(v2::ShopServer::new(V2)));
    let client = within(
        harness
            .client()
            .credentials("ada")
            .expect_services([v1::ShopClient::descriptor()])
            .connect(),
    )
    .await
    .expect("v2 is compatible with v1");
    // And the v1 client's calls work against v2.
    let shop = v1::ShopClient::new(client.peer());
    let added = within(shop.add(v1::Item {
        name: "pen".into(),
        count: 7,
    }))
    .await
    .unwrap();
    assert_eq!(added, 7);
    assert!(matches!(
        within(shop.status()).await,
        Ok(v1::Status::Closed)
    ));
    // The same service on both sides: compatible, of course.
    within(
        harness
            .client()
            .credentials("ada")
            .expect_services([v2::ShopClient::descriptor()])
            .connect(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn incompatible_changes_fail_connect_listing_each_difference() {
    let harness = server(Server::builder().serve(v3::ShopServer::new(V3)));
    let outcome = within(
        harness
            .client()
            .credentials("ada")
            .reconnect(sockets::Reconnect::disabled())
            .expect_services([v1::ShopClient::descriptor()])
            .connect(),
    )
    .await;
    let Err(Error::Incompatible(incompatible)) = outcome else {
        panic!("expected Incompatible, got {outcome:?}");
    };
    let listed: Vec<String> = incompatible
        .differences
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        listed,
        [
            "shop.add: argument `item`, field `count`: this side sends u32, the peer expects u16",
            "shop.add: argument `item`: the peer requires field `price`, which this side does not send",
            "shop.status: return value: the peer may send variant `Holiday`, which this side does not know",
            "shop.ping: the peer does not serve this method",
        ]
    );
    // A missing service, and a server that does not describe itself.
    let empty = server(Server::builder().describe(DescribeAccess::Off));
    let outcome = within(
        empty
            .client()
            .credentials("ada")
            .expect_services([v1::ShopClient::descriptor()])
            .connect(),
    )
    .await;
    assert!(
        matches!(&outcome, Err(Error::Incompatible(i)) if i.differences[0].at == DESCRIBE_METHOD),
        "{outcome:?}"
    );
    let empty = server(Server::builder());
    let outcome = within(
        empty
            .client()
            .credentials("ada")
            .expect_services([v1::ShopClient::descriptor()])
            .connect(),
    )
    .await;
    let Err(Error::Incompatible(incompatible)) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        incompatible.to_string(),
        "1 difference: shop: the peer does not serve this service"
    );
}

#[tokio::test]
async fn a_guest_needs_the_methods_it_expects_open_to_be_open() {
    mod closed {
        #[sockets::service]
        pub trait Shop {
            async fn add(&self, item: super::v1::Item) -> u64;
            async fn status(&self) -> super::v1::Status;
            async fn ping(&self) -> bool;
        }
    }
    struct Closed;
    impl closed::Shop for Closed {
        async fn add(&self, _item: v1::Item) -> u64 {
            0
        }
        async fn status(&self) -> v1::Status {
            v1::Status::Open
        }
        async fn ping(&self) -> bool {
            false
        }
    }
    let harness = server(
        Server::builder()
            .serve(closed::ShopServer::new(Closed))
            .describe(DescribeAccess::Guests),
    );
    let connect = |user: &'static str| {
        harness
            .client()
            .credentials(user)
            .expect_services([v1::ShopClient::descriptor()])
            .connect()
    };
    within(connect("ada"))
        .await
        .expect("authenticated: open does not matter");
    let outcome = within(connect("guest")).await;
    assert!(
        matches!(&outcome, Err(Error::Incompatible(i)) if i.differences[0].at == "shop.ping"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn the_server_can_require_services_of_its_clients() {
    let harness = server(Server::builder().expect_client_services([v1::ShopClient::descriptor()]));
    // A client that serves a compatible shop stays.
    let good = within(
        harness
            .client()
            .credentials("ada")
            .serve(v2::ShopServer::new(V2))
            .connect(),
    )
    .await
    .unwrap();
    // One that serves an incompatible one is disconnected, told why.
    let bad = within(
        harness
            .client()
            .credentials("bob")
            .reconnect(sockets::Reconnect::disabled())
            .serve(v3::ShopServer::new(V3))
            .connect(),
    )
    .await
    .unwrap();
    let mut states = bad.states();
    let reason = within(async {
        loop {
            if let ClientState::Disconnected(reason) = bad.state() {
                return reason;
            }
            match states.recv().await {
                Ok(ClientState::Disconnected(reason)) => return reason,
                Ok(_) => {}
                Err(error) => panic!("{error}"),
            }
        }
    })
    .await;
    assert_eq!(reason.code.to_u16(), 4006);
    assert!(
        reason.reason.starts_with("incompatible services: "),
        "{reason}"
    );
    // The good one was checked too, and is still connected: a call proves it.
    let server = harness.server().clone();
    let id = good.server_connection_id().unwrap();
    let peer = server.peer(id).unwrap();
    assert!(within(describe(&peer)).await.is_ok());
    assert!(good.is_connected());
}

/// Records what reaches the fallback service.
#[derive(Default)]
struct Recorder(Mutex<Vec<(String, Vec<u8>)>>, tokio::sync::Notify);

struct Fallback(Arc<Recorder>);

static FALLBACK: ServiceInfo = ServiceInfo {
    name: "*",
    methods: &[],
};

impl Service for Fallback {
    fn info(&self) -> &'static ServiceInfo {
        &FALLBACK
    }

    fn dispatch(
        self: Arc<Self>,
        _cx: Context,
        method: &str,
        args: &[u8],
    ) -> Result<HandlerFuture, DispatchError> {
        self.0
            .0
            .lock()
            .unwrap()
            .push((method.to_owned(), args.to_vec()));
        self.0.1.notify_one();
        if method == "any.call" {
            return Ok(Box::pin(async { Ok(vec![0x2a].into()) }));
        }
        Err(DispatchError::UnknownMethod(method.to_owned()))
    }
}

#[tokio::test]
async fn a_fallback_service_receives_what_no_service_serves() {
    let harness = server(Server::builder());
    let recorder = Arc::new(Recorder::default());
    let client = within(
        harness
            .client()
            .credentials("ada")
            .serve_fallback(Fallback(Arc::clone(&recorder)))
            .connect(),
    )
    .await
    .unwrap();
    let id = client.server_connection_id().unwrap();
    let peer = harness.server().peer(id).unwrap();
    within(peer.notify("chat.message", &("hi",))).await.unwrap();
    within(recorder.1.notified()).await;
    let answer: u8 = within(peer.call("any.call", &(1, 2), CallOptions::default()))
        .await
        .unwrap();
    assert_eq!(answer, 42);
    let refused = within(peer.call::<_, u8>("other.call", &(), CallOptions::default())).await;
    assert!(matches!(refused, Err(Error::UnknownMethod(_))));
    let seen = recorder.0.lock().unwrap().clone();
    assert_eq!(seen[0].0, "chat.message");
    assert_eq!(seen[0].1, [0x91, 0xa2, b'h', b'i']);
    assert_eq!(seen[1].0, "any.call");
    // The fallback is not described.
    let document = within(describe(&peer)).await.unwrap();
    assert!(document.services.is_empty());
}
