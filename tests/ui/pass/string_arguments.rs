// Client parameters declared `String` take `impl Into<String>`; other types, aliases included, stay as declared.
type Text = String;

#[sockets::service]
pub trait Greeter {
    async fn greet(&self, name: String, times: u8) -> String;
    async fn spelled(&self, a: std::string::String, b: ::std::string::String);
    async fn alias(&self, text: Text) -> Text;
    #[sockets(notify)]
    async fn wave(&self, to: String);
}

#[sockets::service]
pub mod tools {
    #[sockets::handler]
    pub async fn shout(text: String) -> String {
        text.to_uppercase()
    }
}

#[allow(dead_code)]
async fn calls(greeter: GreeterClient, tools: tools::ToolsClient) -> Result<(), sockets::Error> {
    let name = String::from("ada");
    greeter.greet("ada", 1).await?;
    greeter.greet(&name, 2).await?;
    greeter.greet(format!("{name}!"), 3).await?;
    greeter.greet(name.clone(), 4).await?;
    greeter.greet(std::borrow::Cow::Borrowed("cow"), 5).await?;
    greeter.spelled("a", String::new()).await?;
    let text: Text = greeter.alias(name.clone()).await?;
    greeter.wave(text).await?;
    tools.shout("hi").await?;
    tools.shout(name).await?;
    Ok(())
}

fn main() {}
