//! The generated request and response enums implement `Debug` whatever their
//! argument and return types, and print the variant, never the values.

use sockets::Error;
use sockets::service::ServiceResponse;

/// Not `Debug`, and secret: it must never be printed.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Password(String);

/// A vault whose password must never reach a log.
#[sockets::service]
pub trait Vault {
    /// Opens the vault.
    async fn open(&self, user: String, password: Password) -> Password;
    /// Nothing in, nothing out.
    async fn seal(&self);
    /// A notification with an argument.
    #[sockets(notify)]
    async fn note(&self, text: String);
}

#[test]
fn requests_print_their_variant_and_never_their_arguments() {
    let open = VaultRequest::Open {
        user: "ada".into(),
        password: Password("hunter2".into()),
    };
    assert_eq!(format!("{open:?}"), "Open { .. }");
    assert_eq!(format!("{:?}", VaultRequest::Seal), "Seal");
    let note = VaultRequest::Note {
        text: "secret".into(),
    };
    assert_eq!(format!("{note:#?}"), "Note { .. }");
}

#[test]
fn responses_print_their_variant_and_never_their_value() {
    let opened = VaultResponse::Open(Password("hunter2".into()));
    assert_eq!(format!("{opened:?}"), "Open(..)");
    assert_eq!(format!("{:?}", VaultResponse::Seal(())), "Seal(..)");
    // `Result<VaultResponse, Error>` can be unwrapped either way.
    let failed: Result<VaultResponse, Error> = VaultResponse::decode("vault.nope", &[]);
    assert!(matches!(failed.unwrap_err(), Error::UnknownMethod(_)));
    // MessagePack nil: the unit `vault.seal` returns.
    let sealed = VaultResponse::decode("vault.seal", &[0xc0]);
    assert_eq!(format!("{sealed:?}"), "Ok(Seal(..))");
    assert!(matches!(sealed.unwrap(), VaultResponse::Seal(())));
}
