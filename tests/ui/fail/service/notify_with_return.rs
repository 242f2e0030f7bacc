// A `notify` method that declares a return value.
#[sockets::service]
pub trait Logger {
    #[sockets(notify)]
    async fn log(&self, line: String) -> bool;
}

fn main() {}
