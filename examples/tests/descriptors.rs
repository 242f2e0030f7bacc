//! The descriptors of the examples' services, as each binary prints them
//! with `--describe`, against the checked-in JSON in `tests/snapshots/`:
//! a change to a service's wire signature shows up here first. Rewrite the
//! snapshots with `UPDATE_SNAPSHOTS=1 cargo test -p examples --test descriptors`
//! and review the diff.

use std::path::Path;
use std::process::Command;

fn check(name: &str, binary: &str) {
    let output = Command::new(binary)
        .arg("--describe")
        .env_remove("SOCKETS_SECRET")
        .output()
        .expect("the example runs");
    assert!(output.status.success(), "{name} --describe failed");
    let actual = String::from_utf8(output.stdout).expect("utf-8");
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.json"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("the folder");
        std::fs::write(&path, &actual).expect("the snapshot is written");
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "the descriptors of `{name}` changed; review and rewrite with UPDATE_SNAPSHOTS=1:\n{actual}"
    );
    // And the JSON reads back as a document.
    let document: sockets::descriptor::Document =
        serde_json::from_str(&actual).expect("a descriptor document");
    assert_eq!(document.version, 1);
    assert!(!document.services.is_empty());
}

#[test]
fn demo() {
    check("demo", env!("CARGO_BIN_EXE_demo"));
}

#[test]
fn chat() {
    check("chat", env!("CARGO_BIN_EXE_chat"));
}

#[test]
fn agent() {
    check("agent", env!("CARGO_BIN_EXE_agent"));
}

#[test]
fn greeter() {
    check("greeter", env!("CARGO_BIN_EXE_server"));
}

#[test]
fn guards() {
    check("guards", env!("CARGO_BIN_EXE_guards"));
}

#[test]
fn ticker() {
    check("ticker", env!("CARGO_BIN_EXE_ticker"));
}
