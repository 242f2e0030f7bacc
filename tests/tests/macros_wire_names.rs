//! A generated client hands its method's wire name to the peer's `Caller`
//! as the `&'static str` the macro generated (`Cow::Borrowed`), for calls
//! and notifications alike: no call copies the name.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use sockets::__internal::protocol::codec;
use sockets::service::{BoxFuture, Caller, EncodedValue};
use sockets::{CallOptions, Error, Peer};

/// A calculator that only this test's fake peer answers.
#[sockets::service]
pub trait Adder {
    /// Adds.
    async fn add(&self, a: i64, b: i64) -> i64;
    /// Fire-and-forget.
    #[sockets(notify)]
    async fn poke(&self, times: u8);
}

/// One message the fake peer was handed.
#[derive(Debug, PartialEq, Eq)]
struct Sent {
    method: String,
    /// The name arrived as `Cow::Borrowed`, not copied.
    borrowed: bool,
    notify: bool,
    args: Vec<u8>,
}

/// A peer that records what it is handed and answers every call with 42.
#[derive(Default)]
struct Recorder {
    sent: Mutex<Vec<Sent>>,
}

impl Recorder {
    fn record(&self, method: Cow<'static, str>, notify: bool, args: Vec<u8>) {
        self.sent.lock().unwrap().push(Sent {
            borrowed: matches!(method, Cow::Borrowed(_)),
            method: method.into_owned(),
            notify,
            args,
        });
    }
}

impl Caller for Recorder {
    fn call(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
        _options: CallOptions,
    ) -> BoxFuture<'static, Result<EncodedValue, Error>> {
        self.record(method, false, args.to_vec());
        let reply = codec::to_vec(&42i64).expect("an i64 encodes");
        Box::pin(async move { Ok(EncodedValue::from(reply)) })
    }

    fn notify(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
    ) -> BoxFuture<'static, Result<(), Error>> {
        self.record(method, true, args.to_vec());
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn generated_clients_hand_their_wire_names_over_borrowed() {
    let recorder = Arc::new(Recorder::default());
    let adder = AdderClient::new(Peer::new(recorder.clone()));

    assert_eq!(adder.add(1, 2).await.unwrap(), 42);
    adder.poke(3).await.unwrap();

    assert_eq!(
        *recorder.sent.lock().unwrap(),
        [
            Sent {
                method: "adder.add".into(),
                borrowed: true,
                notify: false,
                args: vec![0x92, 0x01, 0x02],
            },
            Sent {
                method: "adder.poke".into(),
                borrowed: true,
                notify: true,
                args: vec![0x91, 0x03],
            },
        ]
    );
}

/// The recorder tells a copied name apart: `Peer::call` and `Peer::notify`
/// keep their signatures, taking a `&str` of any lifetime that they must copy.
#[tokio::test]
async fn the_untyped_peer_copies_the_name_it_is_given() {
    let recorder = Arc::new(Recorder::default());
    let peer = Peer::new(recorder.clone());
    let name = String::from("adder.add");
    let sum: i64 = peer
        .call(&name, &(1, 2), CallOptions::default())
        .await
        .unwrap();
    assert_eq!(sum, 42);
    peer.notify("adder.poke", &(3u8,)).await.unwrap();
    let sent = recorder.sent.lock().unwrap();
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|sent| !sent.borrowed), "{sent:?}");
}
