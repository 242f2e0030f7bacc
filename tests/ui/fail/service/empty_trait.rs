// A service without methods.
#[sockets::service]
pub trait Nothing {}

fn main() {}
