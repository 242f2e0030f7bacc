// Free functions grouped into a service: context by reference, `mut` arguments, options, helpers.
#[sockets::service]
pub mod tools {
    use sockets::Context;

    #[sockets::handler]
    pub async fn trim(mut text: String) -> String {
        text.truncate(3);
        text
    }

    #[sockets::handler]
    async fn who(cx: &Context, greeting: String) -> String {
        format!("{greeting} {}", cx.connection_id())
    }

    #[sockets::handler]
    #[sockets(notify)]
    pub async fn ping() {}

    #[sockets::handler]
    #[sockets(open)]
    pub async fn version() -> u32 {
        1
    }

    /// Ordinary items stay as they are.
    pub struct Helper;
    pub fn helper() -> Helper {
        Helper
    }
}

fn main() {
    use sockets::Service;
    let info = tools::ToolsServer.info();
    assert_eq!(info.name, "tools");
    assert!(info.method("tools.ping").is_some_and(|m| m.notify));
    let _ = tools::helper();
    let _ = tools::ToolsClient::new;
}

/// Inner attributes of a service module stay inside it.
#[sockets::service]
pub(crate) mod inner_attributes {
    #![allow(clippy::unused_async)]
    //! An inner doc comment.

    #[sockets::handler]
    pub async fn noop() {}
}

/// Names that could shadow each other in generated code do not.
#[sockets::service]
pub mod shadowing {
    #[sockets::handler]
    pub async fn count(count: u32) -> u32 {
        count
    }

    #[sockets::handler]
    pub async fn args(method: String, request: String, cx: u8) -> String {
        format!("{method}{request}{cx}")
    }
}

#[sockets::service]
pub trait Shadowing {
    async fn count(&self, count: u32, cx: u8, method: String, args: Vec<u8>) -> u32;
}
