// `#[sockets::service]` on a struct.
#[sockets::service]
pub struct Calculator {
    total: i64,
}

fn main() {}
