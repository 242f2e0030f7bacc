// `Vec<u8>` parameters and return values in every spelling, in a trait and a module; aliases and nested bytes stay as declared.
#![allow(unused_qualifications)]

type Blob = Vec<u8>;

#[sockets::service]
pub trait Store {
    async fn put(&self, key: String, value: Vec<u8>) -> std::vec::Vec<u8>;
    async fn spelled(&self, a: std::vec::Vec<u8>, b: ::std::vec::Vec<u8>) -> ::std::vec::Vec<u8>;
    async fn alias(&self, blob: Blob) -> Blob;
    async fn nested(&self, maybe: Option<Vec<u8>>) -> Result<Vec<u8>, String>;
    async fn other(&self, words: Vec<u16>) -> Vec<i8>;
    #[sockets(notify)]
    async fn drop_bytes(&self, bytes: Vec<u8>);
}

#[sockets::service]
pub mod tools {
    #[sockets::handler]
    pub async fn reverse(mut bytes: Vec<u8>) -> Vec<u8> {
        bytes.reverse();
        bytes
    }
}

#[allow(dead_code)]
async fn calls(store: StoreClient, tools: tools::ToolsClient) -> Result<(), sockets::Error> {
    let value: Vec<u8> = store.put("k", vec![1]).await?;
    let _: Vec<u8> = store.spelled(value.clone(), Vec::new()).await?;
    let _: Blob = store.alias(value.clone()).await?;
    let _: Result<Vec<u8>, String> = store.nested(Some(value.clone())).await?;
    let _: Vec<i8> = store.other(vec![1u16]).await?;
    store.drop_bytes(value.clone()).await?;
    let _: Vec<u8> = tools.reverse(value).await?;
    Ok(())
}

fn main() {}
