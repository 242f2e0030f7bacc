// A parameter whose type is named `Context` is the call context, so another type of that name does not fit.
mod mine {
    #[derive(serde::Serialize, serde::Deserialize)]
    pub struct Context;
}

#[sockets::service]
pub trait Session {
    async fn join(&self, cx: &mine::Context) -> u8;
}

fn main() {}
