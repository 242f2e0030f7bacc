// A handler whose future is not `Send`: the runtime could not spawn it.
#[sockets::service]
mod counter {
    use std::rc::Rc;

    #[sockets::handler]
    pub async fn count() -> u32 {
        let held = Rc::new(1);
        std::future::ready(()).await;
        *held
    }
}

fn main() {}
