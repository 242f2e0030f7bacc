// The largest argument list: sixteen arguments of assorted owned types.
use std::collections::HashMap;

#[sockets::service]
pub trait Wide {
    #[allow(clippy::too_many_arguments)]
    async fn sixteen(
        &self,
        a: u8,
        b: u16,
        c: u32,
        d: u64,
        e: i8,
        f: i16,
        g: i32,
        h: i64,
        i: f32,
        j: f64,
        k: bool,
        l: char,
        m: String,
        n: Vec<u8>,
        o: Option<String>,
        p: HashMap<String, (u8, [u16; 3])>,
    ) -> (u8, String);
}

fn main() {
    fn client_call(client: &WideClient) -> impl std::future::Future + '_ {
        client.sixteen(
            1, 2, 3, 4, 5, 6, 7, 8, 9.0, 10.0, true, 'l', "m", vec![], None, HashMap::new(),
        )
    }
    let _ = client_call;
}
