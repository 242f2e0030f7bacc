// `#[sockets(validate)]` on a method whose argument type has no rules.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Signup {
    pub name: String,
}

#[sockets::service]
pub trait Users {
    #[sockets(validate)]
    async fn signup(&self, form: Signup) -> bool;
}

fn main() {}
