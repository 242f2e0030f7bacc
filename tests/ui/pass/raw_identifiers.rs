// Raw identifiers and multi-word names: wire names drop `r#` and use snake_case service names.
use sockets::Service;

#[sockets::service]
pub trait HTTPGateway {
    async fn r#type(&self) -> String;
    async fn get_user(&self, r#ref: u32) -> String;
}

struct G;

impl HTTPGateway for G {
    async fn r#type(&self) -> String {
        String::new()
    }
    async fn get_user(&self, r#ref: u32) -> String {
        r#ref.to_string()
    }
}

fn main() {
    let info = HTTPGatewayServer::new(G).info();
    assert_eq!(info.name, "http_gateway");
    let names: Vec<_> = info.methods.iter().map(|m| m.name).collect();
    assert_eq!(names, ["http_gateway.type", "http_gateway.get_user"]);
    let _ = HTTPGatewayRequest::GetUser { r#ref: 1 };
    let _ = HTTPGatewayRequest::Type;
}
