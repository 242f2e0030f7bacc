// An argument type with a lifetime.
use std::borrow::Cow;

#[sockets::service]
pub trait Printer {
    async fn print(&self, text: Cow<'_, str>);
}

fn main() {}
