//! The services of a crate that names the runtime `rpc`, served on
//! 127.0.0.1:0 and called through their generated clients.

use std::time::Duration;

use renamed_crate_test::{CounterClient, CounterServer, Tally, tools};
use rpc::crypto::Secret;
use rpc::{Client, Server};

#[tokio::test]
async fn services_of_a_renamed_runtime_serve_and_call() {
    let secret = Secret::from_key(&[7u8; 32]);
    let server = Server::builder()
        .address("127.0.0.1:0")
        .secret(secret.clone())
        .serve(CounterServer::new(Tally))
        .serve(tools::ToolsServer)
        .start()
        .await
        .expect("the server starts");
    let client = Client::builder()
        .url(format!("ws://{}/", server.local_addr()))
        .secret(secret)
        .connect()
        .await
        .expect("the client connects");

    let counter = CounterClient::new(client.peer());
    assert_eq!(counter.add(2, 3).await.unwrap(), 5);
    let id = client.server_connection_id().expect("connected").get();
    assert_eq!(
        counter.greet(String::from("ada")).await.unwrap(),
        format!("hello ada, connection {id}")
    );
    assert_eq!(counter.divide(7, 2).await.unwrap(), Ok(3));
    assert_eq!(
        counter.divide(7, 0).await.unwrap(),
        Err("by zero".to_owned())
    );
    counter.poke(3).await.unwrap();

    let tools = tools::ToolsClient::new(client.peer());
    assert_eq!(tools.reverse(vec![1, 2, 3]).await.unwrap(), [3, 2, 1]);
    assert!(!tools.is_guest().await.unwrap());

    client.close().await;
    server.shutdown(Duration::from_secs(1)).await;
}
