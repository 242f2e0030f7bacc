// Declared `Result`s, written in several ways, arrive nested in the call's own result.
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
pub enum Refused {
    TooLarge,
}

pub type Answer<T> = std::result::Result<T, Refused>;

#[sockets::service]
pub trait Vault {
    async fn store(&self, bytes: Vec<u8>) -> Result<u64, Refused>;
    async fn fetch(&self, id: u64) -> std::result::Result<Vec<u8>, String>;
    async fn size(&self, id: u64) -> Answer<u32>;
}

async fn use_client(vault: VaultClient) {
    let stored: Result<Result<u64, Refused>, sockets::Error> = vault.store(vec![1]).await;
    let _ = stored;
    let size: Result<Answer<u32>, sockets::Error> = vault.size(1).await;
    let _ = size;
}

fn main() {
    let _ = use_client;
}
