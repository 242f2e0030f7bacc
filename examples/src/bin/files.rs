//! Streams a client sends: an upload that replies once, and a two-way stream.
//!
//! ```text
//! cargo run -p examples --bin files
//! ```
//!
//! The client uploads a 200-chunk text file to a server that stores it
//! slowly (a millisecond a chunk) through a window of 8 chunks: the client's
//! chunks are made only as the server grants credit, so the client never
//! runs more than the window ahead, however fast it could go. Then it asks,
//! word by word over one two-way stream, how often each word occurs in the
//! file, sending the next word only when the last answer came back. Last,
//! it downloads the whole file in one call, as a `sockets::Blob`: the store
//! shares its bytes with the reply (no copy) and the client receives a view
//! of the message it arrived in (no copy either). It prints what happened,
//! checks it, and exits by itself.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sockets::crypto::{Secret, generate_key};
use sockets::{Blob, Client, Server, Stream};

/// What an upload stored.
#[derive(Debug, Serialize, Deserialize)]
pub struct Stored {
    /// Chunks received.
    pub chunks: u64,
    /// Bytes stored.
    pub bytes: u64,
}

/// What the server serves.
#[sockets::service]
pub trait Files {
    /// Stores the chunks under `name`, at most 8 chunks (64 KiB) ahead of
    /// what is stored; fails if the upload is cut short.
    #[sockets(window(items = 8, bytes = 65536))]
    async fn upload(&self, name: String, chunks: Stream<Vec<u8>>) -> Result<Stored, String>;
    /// For each word sent, how often it occurs in the file `name`.
    async fn count(&self, name: String, words: Stream<String>) -> Stream<(String, usize)>;
    /// The file `name`, whole.
    async fn download(&self, name: String) -> Result<Blob, String>;
}

#[derive(Clone, Default)]
struct Store {
    /// Blobs: a download shares a file's bytes instead of copying them.
    files: Arc<Mutex<HashMap<String, Blob>>>,
    /// Chunks stored so far (the client compares it with what it made).
    stored: Arc<AtomicU64>,
}

impl Files for Store {
    async fn upload(&self, name: String, mut chunks: Stream<Vec<u8>>) -> Result<Stored, String> {
        let mut file = Vec::new();
        let mut count = 0;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| format!("upload of {name} cut short: {e}"))?;
            // A slow disk.
            tokio::time::sleep(Duration::from_millis(1)).await;
            file.extend_from_slice(&chunk);
            count += 1;
            self.stored.fetch_add(1, Ordering::Relaxed);
        }
        let stored = Stored {
            chunks: count,
            bytes: file.len() as u64,
        };
        self.files
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(name, Blob::from(file));
        Ok(stored)
    }

    async fn count(&self, name: String, words: Stream<String>) -> Stream<(String, usize)> {
        let text = self
            .files
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&name)
            .map(|file| String::from_utf8_lossy(file).into_owned())
            .unwrap_or_default();
        Stream::new(words.filter_map(move |word| {
            let answer = word
                .ok()
                .map(|word| (text.split_whitespace().filter(|w| *w == word).count(), word))
                .map(|(n, word)| (word, n));
            std::future::ready(answer)
        }))
    }

    async fn download(&self, name: String) -> Result<Blob, String> {
        self.files
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&name)
            .cloned()
            .ok_or_else(|| format!("no file {name}"))
    }
}

const CHUNKS: u64 = 200;

/// Chunk `i` of the file: a few lines of text, 1 KiB or so.
fn chunk(i: u64) -> Vec<u8> {
    let mut text = String::new();
    for line in 0..16 {
        let word = if (i + line) % 3 == 0 { "apple" } else { "pear" };
        text.push_str(&format!(
            "chunk {i:03} line {line:02}: {word} {word} plum\n"
        ));
    }
    text.into_bytes()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = Secret::from_base64(&generate_key())?;
    let store = Store::default();
    let server = Server::builder()
        .address("127.0.0.1:0")
        .secret(secret.clone())
        .serve(FilesServer::new(store.clone()))
        .start()
        .await?;
    let client = Client::builder()
        .url(format!("ws://{}/", server.local_addr()))
        .secret(secret)
        .connect()
        .await?;
    let files = FilesClient::new(client.peer());

    // The upload: each chunk is made only when the server has room for it.
    let made = Arc::new(AtomicU64::new(0));
    let ahead = Arc::new(AtomicU64::new(0));
    let chunks = {
        let (made, ahead, stored) = (
            Arc::clone(&made),
            Arc::clone(&ahead),
            Arc::clone(&store.stored),
        );
        futures_util::stream::iter(0..CHUNKS).map(move |i| {
            let made = made.fetch_add(1, Ordering::Relaxed) + 1;
            ahead.fetch_max(made - stored.load(Ordering::Relaxed), Ordering::Relaxed);
            chunk(i)
        })
    };
    let stored = files
        .with_timeout(Duration::from_secs(30))
        .upload("fruit.txt", Stream::new(chunks))
        .await??;
    let ahead = ahead.load(Ordering::Relaxed);
    println!(
        "uploaded fruit.txt: {} chunks, {} bytes; the client was at most {ahead} chunks ahead of the store",
        stored.chunks, stored.bytes
    );
    assert_eq!(stored.chunks, CHUNKS);
    assert_eq!(made.load(Ordering::Relaxed), CHUNKS);
    // The window (8), the chunk in the server's hands, and the one being made.
    assert!(ahead <= 10, "flow control held the client to the window");

    // The two-way stream: one word at a time, each answer before the next word.
    let (words, outgoing) = Stream::channel(1);
    let mut answers = files.count("fruit.txt", outgoing).await?;
    let mut counts = Vec::new();
    for word in ["apple", "pear", "plum", "kiwi"] {
        words.send(word.to_owned()).await?;
        let (echoed, n) = answers.next().await.ok_or("the stream ended early")??;
        println!("{echoed}: {n}");
        counts.push(n);
    }
    drop(words);
    assert!(answers.next().await.is_none(), "ends after the last word");
    let lines = (CHUNKS * 16) as usize;
    assert_eq!(counts[2], lines, "one plum a line");
    assert_eq!(
        counts[0] + counts[1],
        2 * lines,
        "two apples or two pears a line"
    );
    assert_eq!(counts[3], 0);

    // The whole file in one call, as a blob.
    let file = files.download("fruit.txt").await??;
    let expected: Vec<u8> = (0..CHUNKS).flat_map(chunk).collect();
    println!("downloaded fruit.txt: {} bytes in one call", file.len());
    assert_eq!(&file[..], expected, "the file as it was uploaded");
    let missing = files.download("nothing.txt").await?;
    assert_eq!(missing, Err("no file nothing.txt".to_owned()));

    client.close().await;
    server.shutdown(Duration::from_secs(1)).await;
    Ok(())
}
