// Two method names that become the same request variant.
#[sockets::service]
pub trait Users {
    async fn get_user(&self) -> u64;
    async fn get__user(&self) -> u64;
}

fn main() {}
