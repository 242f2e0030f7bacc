/// Greets people.
#[sockets::service]
pub trait Greeter {
    /// Says hello to `name`.
    async fn hello(&self, name: String) -> Result<String, Refusal>;
    /// Who is asking, from the call's context.
    async fn whoami(&self, cx: &sockets::Context) -> u64;
    #[sockets(notify)]
    async fn wave(&self);
    /// A smaller copy of `image`; both travel as MessagePack `bin`.
    async fn thumbnail(&self, width: u32, image: Vec<u8>) -> Vec<u8>;
}
