// A borrowed return type.
#[sockets::service]
pub trait Names {
    async fn first(&self) -> &str;
}

fn main() {}
