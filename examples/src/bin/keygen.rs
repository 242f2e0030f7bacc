//! Prints a fresh random 32-byte key in base64: the recommended shared secret.
//!
//! ```text
//! cargo run -p examples --bin keygen
//! ```
//!
//! Give the same key to the server and its clients (for example as
//! `SOCKETS_SECRET`), and keep it out of logs and version control.

fn main() {
    println!("{}", sockets::crypto::generate_key());
}
