// A guard path that names nothing.
#[sockets::service]
pub trait Admin {
    #[sockets(guard = policies::admins_only)]
    async fn reset(&self) -> bool;
}

fn main() {}
