// A guard that is not a `fn(&Context, &str) -> Result<(), Refusal>`.
fn is_admin(user: &str) -> bool {
    user == "root"
}

#[sockets::service]
pub trait Admin {
    #[sockets(guard = is_admin)]
    async fn reset(&self) -> bool;
}

fn main() {}
