// `crate = "..."` names the runtime through a re-export, on a trait and on a module.
#![no_implicit_prelude]

extern crate std;

mod reexports {
    pub use ::sockets as runtime;
}

#[::sockets::service(crate = "crate::reexports::runtime")]
pub trait Renamed {
    async fn add(&self, a: u8, b: u8) -> u8;
    async fn whoami(&self, cx: &crate::reexports::runtime::Context) -> u64;
}

#[::sockets::service(crate = "crate::reexports::runtime")]
pub mod tools {
    #[crate::reexports::runtime::handler]
    pub async fn echo(value: u8) -> u8 {
        value
    }

    #[handler]
    #[sockets(notify)]
    pub async fn poke() {}
}

fn main() {
    let _ = RenamedServer::<()>::new;
    let _ = RenamedClient::new;
    let _ = tools::ToolsServer;
    let _ = tools::ToolsClient::new;
}

impl Renamed for () {
    async fn add(&self, a: u8, b: u8) -> u8 {
        a + b
    }
    async fn whoami(&self, cx: &crate::reexports::runtime::Context) -> u64 {
        cx.connection_id().get()
    }
}
