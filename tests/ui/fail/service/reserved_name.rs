// A method named like one the generated client already has.
#[sockets::service]
pub trait Factory {
    async fn new(&self) -> u64;
}

fn main() {}
