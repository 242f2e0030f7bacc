// Doc comments and `#[cfg]`s carry over to the generated items; `missing_docs` stays quiet.
#![deny(missing_docs)]
//! A crate with a documented service.

/// Keeps notes.
#[sockets::service]
pub trait Notes {
    /// Adds a note.
    ///
    /// Returns its number.
    async fn add(&self, text: String) -> u32;
    /// Only in test builds; the generated items for it vanish too.
    #[cfg(any())]
    async fn debug_dump(&self) -> String;
    /// How many notes there are.
    async fn count(&self) -> u32;
}

struct Pad;

impl Notes for Pad {
    async fn add(&self, _text: String) -> u32 {
        1
    }
    async fn count(&self) -> u32 {
        1
    }
}

fn main() {
    let _ = NotesServer::new(Pad);
    assert_eq!(NotesRequest::INFO.methods.len(), 2);
}

/// A service that exists only when its `cfg` holds: here never, so neither
/// does anything generated for it.
#[cfg(any())]
#[sockets::service]
pub trait Absent {
    /// Never compiled.
    async fn nothing(&self) -> Undefined;
}
