// Methods without arguments, without a return value, and with an explicit `()`.
#[sockets::service]
pub trait Lamp {
    async fn on(&self);
    async fn off(&self) -> ();
    async fn is_on(&self) -> bool;
}

struct Bulb;

impl Lamp for Bulb {
    async fn on(&self) {}
    async fn off(&self) {}
    async fn is_on(&self) -> bool {
        true
    }
}

fn main() {
    let _ = LampServer::new(Bulb);
    let _ = LampRequest::On;
    let _ = LampResponse::IsOn(true);
    let _ = LampResponse::Off(());
}
