//! The conveniences of generated code for strings and bytes (issue #10): a
//! `String` parameter of a client takes anything that converts into a
//! `String`; a `Vec<u8>` parameter or return value travels as MessagePack
//! `bin`, in both directions, at about half the size of serde's array.

// `Texts` spells `String` in full on purpose.
#![allow(unused_qualifications)]

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sockets::__internal::protocol::codec;
use sockets::serde_bytes::ByteBuf;
use sockets::service::{BoxFuture, Caller, EncodedValue, ServiceRequest, ServiceResponse};
use sockets::{CallOptions, Error, Peer};
use tests::{client, server, within};

/// Echoes text, declared with each spelling of `String`.
#[sockets::service]
pub trait Texts {
    /// `name`, greeted.
    async fn greet(&self, name: String) -> String;
    /// The two texts joined by `+`.
    async fn join(&self, a: std::string::String, b: ::std::string::String) -> String;
}

struct Echo;

impl Texts for Echo {
    async fn greet(&self, name: String) -> String {
        format!("hello, {name}")
    }

    async fn join(&self, a: String, b: String) -> String {
        format!("{a}+{b}")
    }
}

#[tokio::test]
async fn string_parameters_take_anything_that_converts_into_a_string() {
    let server = server()
        .serve(TextsServer::new(Echo))
        .start()
        .await
        .unwrap();
    let caller = within(client(server.local_addr()).connect()).await.unwrap();
    let texts = TextsClient::new(caller.peer());

    let name = String::from("ada");
    assert_eq!(within(texts.greet("ada")).await.unwrap(), "hello, ada");
    assert_eq!(within(texts.greet(&name)).await.unwrap(), "hello, ada");
    assert_eq!(
        within(texts.greet(name.clone())).await.unwrap(),
        "hello, ada"
    );
    assert_eq!(
        within(texts.greet(Cow::Borrowed("cow"))).await.unwrap(),
        "hello, cow"
    );
    assert_eq!(
        within(texts.greet(Box::<str>::from("box"))).await.unwrap(),
        "hello, box"
    );
    assert_eq!(within(texts.greet('x')).await.unwrap(), "hello, x");
    assert_eq!(within(texts.join("a", name)).await.unwrap(), "a+ada");

    caller.close().await;
    server.shutdown(Duration::from_secs(1)).await;
}

/// Bytes in, bytes out, declared with each spelling of `Vec<u8>`.
#[sockets::service]
pub trait Blobs {
    /// The bytes reversed.
    async fn reverse(&self, data: Vec<u8>) -> Vec<u8>;
    /// The tag and the lengths of both buffers.
    async fn sizes(&self, tag: String, a: std::vec::Vec<u8>, b: ::std::vec::Vec<u8>) -> String;
}

struct Reverser;

impl Blobs for Reverser {
    async fn reverse(&self, mut data: Vec<u8>) -> Vec<u8> {
        data.reverse();
        data
    }

    async fn sizes(&self, tag: String, a: Vec<u8>, b: Vec<u8>) -> String {
        format!("{tag}: {} {}", a.len(), b.len())
    }
}

/// A peer that records the encoded arguments it is handed and answers
/// `blobs.reverse` with `reverse` and anything else with the string `ok`.
struct Recorder {
    reverse: Vec<u8>,
    args: Mutex<Vec<Vec<u8>>>,
}

impl Recorder {
    fn new(reverse: Vec<u8>) -> Arc<Self> {
        Arc::new(Self {
            reverse,
            args: Mutex::default(),
        })
    }
}

impl Caller for Recorder {
    fn call(
        &self,
        method: Cow<'static, str>,
        args: EncodedValue,
        _options: CallOptions,
    ) -> BoxFuture<'static, Result<EncodedValue, Error>> {
        self.args.lock().unwrap().push(args.to_vec());
        let reply = match &*method {
            "blobs.reverse" => self.reverse.clone(),
            _ => codec::to_vec("ok").unwrap(),
        };
        Box::pin(async move { Ok(EncodedValue::from(reply)) })
    }

    fn notify(
        &self,
        _method: Cow<'static, str>,
        _args: EncodedValue,
    ) -> BoxFuture<'static, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }
}

/// Whether `byte` starts a MessagePack `bin` (8-, 16- or 32-bit length).
fn is_bin_marker(byte: u8) -> bool {
    matches!(byte, 0xc4..=0xc6)
}

#[tokio::test]
async fn vec_u8_arguments_and_replies_are_bin_at_half_the_size_of_an_array() {
    // Bytes from 128 up take two bytes each in an array of integers.
    let payload = vec![0xa5u8; 1000];

    // What serde alone would send: a one-element array holding an array.
    let array = codec::to_vec(&(payload.clone(),)).unwrap();
    assert_eq!(array[..2], [0x91, 0xdc]);
    assert_eq!(array.len(), 1 + 3 + 2 * 1000);

    // The request enum (as `Server::send_to` encodes it): the element is `bin`.
    let mut encoded = Vec::new();
    BlobsRequest::Reverse {
        data: payload.clone(),
    }
    .encode_args(&mut encoded)
    .unwrap();
    assert_eq!(encoded[0], 0x91);
    assert!(is_bin_marker(encoded[1]), "{:#04x}", encoded[1]);
    assert_eq!(encoded.len(), 1 + 3 + 1000);
    assert!(
        encoded.len() * 100 <= array.len() * 51,
        "about half the size"
    );

    // The generated client sends the same bytes, and decodes a `bin` reply.
    let recorder = Recorder::new(codec::to_vec(&ByteBuf::from(vec![1u8, 2, 3])).unwrap());
    let blobs = BlobsClient::new(Peer::new(recorder.clone()));
    assert_eq!(blobs.reverse(payload.clone()).await.unwrap(), [1, 2, 3]);
    let ok = blobs.sizes("t", vec![0xff; 300], Vec::new()).await.unwrap();
    assert_eq!(ok, "ok");
    let sent = std::mem::take(&mut *recorder.args.lock().unwrap());
    assert_eq!(sent[0], encoded);
    // `[tag, a, b]`: a one-byte string header and `t`, then two `bin`s.
    assert_eq!(sent[1][..3], [0x93, 0xa1, b't']);
    assert_eq!(sent[1][3..6], [0xc5, 0x01, 0x2c]);
    assert_eq!(sent[1][6 + 300..], [0xc4, 0x00]);

    // A reply in serde's array form (an older peer) still decodes.
    let recorder = Recorder::new(codec::to_vec(&vec![7u8, 8]).unwrap());
    let blobs = BlobsClient::new(Peer::new(recorder));
    assert_eq!(blobs.reverse(Vec::new()).await.unwrap(), [7, 8]);
}

#[tokio::test]
async fn vec_u8_round_trips_through_a_real_server_as_bin() {
    let server = server()
        .serve(BlobsServer::new(Reverser))
        .start()
        .await
        .unwrap();
    let caller = within(client(server.local_addr()).connect()).await.unwrap();
    let blobs = BlobsClient::new(caller.peer());

    let payload: Vec<u8> = (0..=255).cycle().take(70_000).collect();
    let mut reversed = payload.clone();
    reversed.reverse();
    assert_eq!(
        within(blobs.reverse(payload.clone())).await.unwrap(),
        reversed
    );
    assert!(within(blobs.reverse(Vec::new())).await.unwrap().is_empty());
    assert_eq!(
        within(blobs.sizes("two", vec![1; 10], vec![2; 20]))
            .await
            .unwrap(),
        "two: 10 20"
    );

    // The server's reply itself is `bin`, and the response enum decodes it.
    let mut args = Vec::new();
    BlobsRequest::Reverse {
        data: vec![0xf0; 1000],
    }
    .encode_args(&mut args)
    .unwrap();
    let peer = caller.peer();
    let reply = within(peer.caller().call(
        Cow::Borrowed("blobs.reverse"),
        args.into(),
        CallOptions::default(),
    ))
    .await
    .unwrap();
    assert!(is_bin_marker(reply[0]), "{:#04x}", reply[0]);
    assert_eq!(reply.len(), 3 + 1000);
    let response = BlobsResponse::decode("blobs.reverse", &reply).unwrap();
    let BlobsResponse::Reverse(bytes) = response else {
        panic!("another variant: {response:?}");
    };
    assert_eq!(bytes, [0xf0; 1000]);

    // Arguments in serde's array form (an older peer) are still understood.
    let old: ByteBuf =
        within(peer.call("blobs.reverse", &(vec![1u8, 2, 3],), CallOptions::default()))
            .await
            .unwrap();
    assert_eq!(old.into_vec(), [3, 2, 1]);

    caller.close().await;
    server.shutdown(Duration::from_secs(1)).await;
}

/// A user type whose byte fields are marked to travel as `bin`, through the
/// crates `sockets` re-exports.
#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Upload {
    #[serde(with = "sockets::serde_bytes")]
    data: Vec<u8>,
    signature: sockets::bytes::Bytes,
    plain: Vec<u8>,
}

#[test]
fn nested_bytes_are_bin_only_when_marked() {
    let upload = Upload {
        data: vec![0xff; 2],
        signature: sockets::bytes::Bytes::from_static(&[0xee]),
        plain: vec![0xdd],
    };
    let encoded = codec::to_vec(&upload).unwrap();
    // A map of three fields; `data` and `signature` are `bin`, `plain` an array.
    let expected: Vec<u8> = [
        &[0x83][..],
        &[0xa4],
        b"data",
        &[0xc4, 0x02, 0xff, 0xff],
        &[0xa9],
        b"signature",
        &[0xc4, 0x01, 0xee],
        &[0xa5],
        b"plain",
        &[0x91, 0xcc, 0xdd],
    ]
    .concat();
    assert_eq!(encoded, expected);
    assert_eq!(codec::decode_value::<Upload>(&encoded).unwrap(), upload);
}
