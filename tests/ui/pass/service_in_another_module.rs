// A service defined in one module, implemented in another, used from a third.
mod api {
    #[sockets::service]
    pub trait Greeter {
        async fn greet(&self, name: String) -> String;
    }
}

mod server {
    pub struct Polite;

    impl crate::api::Greeter for Polite {
        async fn greet(&self, name: String) -> String {
            format!("hello, {name}")
        }
    }
}

fn main() {
    use std::sync::Arc;
    let service: Arc<dyn sockets::Service> = Arc::new(api::GreeterServer::new(server::Polite));
    assert_eq!(service.info().name, "greeter");
    let _ = api::GreeterClient::new;
}
