//! `sockets::Blob`: binary data that travels as MessagePack `bin`, exactly
//! as a `Vec<u8>` does, so peers may declare either; large ones arrive
//! without a copy (counted in `bulk_copies.rs`), and every size arrives whole.

use std::time::Duration;

use sockets::Blob;
use tests::{client, server, within};

/// The same service, its bytes as owned vectors.
mod owned {
    /// Stores files.
    #[sockets::service]
    pub trait Files {
        /// Stores `data` under `name`; returns it, reversed.
        async fn put(&self, name: String, data: Vec<u8>) -> Vec<u8>;
    }
}

/// The same service, its bytes as blobs.
mod viewed {
    use sockets::Blob;

    /// Stores files.
    #[sockets::service]
    pub trait Files {
        /// Stores `data` under `name`; returns it, reversed.
        async fn put(&self, name: String, data: Blob) -> Blob;
    }
}

struct Reverse;

impl owned::Files for Reverse {
    async fn put(&self, _name: String, mut data: Vec<u8>) -> Vec<u8> {
        data.reverse();
        data
    }
}

impl viewed::Files for Reverse {
    async fn put(&self, _name: String, data: Blob) -> Blob {
        let mut reversed = data.to_vec();
        reversed.reverse();
        Blob::from(reversed)
    }
}

/// Bytes that differ at every offset in a 251-byte cycle, so a shifted or
/// truncated view cannot pass for the original.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn reversed(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.reverse();
    bytes
}

/// From nothing, through the inline sizes, across one frame (1 MiB by
/// default: the message then comes in a chain of two) to several frames.
const SIZES: [usize; 8] = [0, 1, 32, 39, 4096, 1 << 20, (1 << 20) + 7, 3 << 20];

#[test]
fn a_blob_and_a_vec_of_bytes_describe_the_same_method() {
    let owned = owned::FilesClient::descriptor();
    let viewed = viewed::FilesClient::descriptor();
    assert_eq!(owned, viewed);
    assert_eq!(
        owned.methods[0].signature(),
        "files.put(name: string, data: bytes) -> bytes"
    );
}

#[tokio::test]
async fn blobs_of_every_size_arrive_whole_from_a_peer_that_sends_vectors_and_back() {
    let server = server()
        .serve(viewed::FilesServer::new(Reverse))
        .start()
        .await
        .unwrap();
    let caller = within(client(server.local_addr()).connect()).await.unwrap();
    let files = owned::FilesClient::new(caller.peer());
    for size in SIZES {
        let reply = within(files.put("f", pattern(size))).await.unwrap();
        assert_eq!(reply, reversed(pattern(size)), "{size} bytes");
    }
    caller.close().await;
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn vectors_of_every_size_arrive_whole_from_a_peer_that_sends_blobs_and_back() {
    let server = server()
        .serve(owned::FilesServer::new(Reverse))
        .start()
        .await
        .unwrap();
    let caller = within(client(server.local_addr()).connect()).await.unwrap();
    let files = viewed::FilesClient::new(caller.peer());
    for size in SIZES {
        let reply = within(files.put("f", Blob::from(pattern(size))))
            .await
            .unwrap();
        assert_eq!(&reply[..], reversed(pattern(size)), "{size} bytes");
    }
    // Many blobs in flight at once share frames: each still arrives whole.
    let calls = (0..64).map(|i| {
        let files = &files;
        async move {
            let data = pattern(100 + i * 37);
            let reply = files.put("f", Blob::from(data.clone())).await.unwrap();
            assert_eq!(&reply[..], reversed(data));
        }
    });
    within(futures_util::future::join_all(calls)).await;
    caller.close().await;
    server.shutdown(Duration::from_secs(1)).await;
}
