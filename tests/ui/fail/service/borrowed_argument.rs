// A borrowed argument type.
#[sockets::service]
pub trait Printer {
    async fn print(&self, text: &str, lines: &[String]);
}

fn main() {}
