// `guard` without its function, and a second `guard` on one method.
fn admins(_: &sockets::Context, _: &str) -> Result<(), sockets::Refusal> {
    Ok(())
}

#[sockets::service]
pub trait Admin {
    #[sockets(guard)]
    async fn reset(&self) -> bool;
    #[sockets(guard = admins, guard = admins)]
    async fn wipe(&self) -> bool;
    #[sockets(guard = "admins")]
    async fn halt(&self) -> bool;
}

fn main() {}
