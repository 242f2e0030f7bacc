// Several mistakes in one trait are all reported in one compile.
#[sockets::service]
pub trait Broken {
    fn sync(&self) -> u8;
    async fn by_value(self);
    #[sockets(fast)]
    async fn option(&self);
    async fn borrowed(&self, text: &str);
}

fn main() {}
