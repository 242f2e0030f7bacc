//! The `sockets` binary end to end, as processes: `serve-echo` on
//! 127.0.0.1 port 0, then describe, call with each kind of argument, the
//! error exits, listen, bench for a couple of seconds, completions.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Bounds a hang; nothing here waits for it in a passing run.
const HANG: Duration = Duration::from_secs(60);

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sockets")
}

/// A fixed key for the tests' server.
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// A running `sockets serve-echo`, killed when dropped.
struct Echo {
    child: Child,
    url: String,
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads lines of `stream` on a thread, sending each one.
fn lines(stream: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The first line of `rx` that `matches`, waiting at most [`HANG`].
fn wait_for(rx: &mpsc::Receiver<String>, what: &str) -> String {
    loop {
        match rx.recv_timeout(HANG) {
            Ok(line) if line.contains(what) => return line,
            Ok(_) => {}
            Err(error) => panic!("no line with {what:?}: {error}"),
        }
    }
}

fn start() -> Echo {
    let mut child = Command::new(bin())
        .args(["serve-echo", "--address", "127.0.0.1:0"])
        .env("SOCKETS_SECRET", KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve-echo starts");
    let stdout = lines(child.stdout.take().expect("piped"));
    let line = wait_for(&stdout, "listening on ");
    let url = line.trim_start_matches("listening on ").trim().to_owned();
    Echo { child, url }
}

fn sockets(args: &[&str]) -> Command {
    let mut command = Command::new(bin());
    command
        .args(args)
        .env("SOCKETS_SECRET", KEY)
        .env_remove("SOCKETS_CREDENTIALS")
        .env_remove("SOCKETS_PASSPHRASE")
        .stdin(Stdio::null());
    command
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(command: &mut Command) -> Ran {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("the binary runs");
    Ran {
        code: status.code().expect("exited, not killed"),
        stdout: String::from_utf8(stdout).expect("utf-8"),
        stderr: String::from_utf8(stderr).expect("utf-8"),
    }
}

/// `sockets call URL METHOD ARGS`: exit code, stdout (trimmed), stderr.
fn call(echo: &Echo, method: &str, args: &str) -> Ran {
    let mut ran = run(&mut sockets(&["call", &echo.url, method, args]));
    ran.stdout = ran.stdout.trim().to_owned();
    ran
}

#[test]
fn describe_lists_signatures_and_the_json_matches_the_snapshot() {
    let echo = start();
    let listed = run(&mut sockets(&["describe", &echo.url]));
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    for line in [
        "service echo  (sha256 ",
        "  echo.add(a: i64, b: i64) -> i64",
        "  echo.double(n: u8) -> u8 ! EchoError",
        "  echo.reverse(data: bytes) -> bytes",
        "  echo.ping() -> string  [open]",
        "  echo.log(line: string)  [notify]",
        "  echo.count(n: u64) -> stream<u64>",
        "  echo.sum() <- stream<i64> -> i64",
        "    enum Shape { Empty, Circle(f64), Rect { width: f64, height: f64 }, Triangle(f64, f64, f64) }",
        "    struct Record { name: string, tags: [string], point: Point?, blob: bytes, level: Level }",
    ] {
        assert!(
            listed.stdout.contains(line),
            "{line:?} in:\n{}",
            listed.stdout
        );
    }
    let json = run(&mut sockets(&["describe", "--json", &echo.url]));
    assert_eq!(json.code, 0, "{}", json.stderr);
    snapshot("echo.json", &json.stdout);
}

/// Compares `actual` with `tests/snapshots/NAME`; `UPDATE_SNAPSHOTS=1` rewrites it.
fn snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("the folder");
        std::fs::write(&path, actual).expect("the snapshot is written");
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "{name} changed; review and rewrite with UPDATE_SNAPSHOTS=1:\n{actual}"
    );
}

#[test]
fn call_converts_each_kind_of_argument_through_the_descriptor() {
    let echo = start();
    let cases = [
        ("echo.add", r#"[1, 2]"#, "3"),
        ("echo.add", r#"{"a": -5, "b": 2}"#, "-3"),
        ("echo.echo", r#"["héllo"]"#, r#""héllo""#),
        ("echo.double", "[20]", "40"),
        ("echo.reverse", r#"["AQID"]"#, r#""AwIB""#),
        ("echo.reverse", "[[1, 2, 3]]", r#""AwIB""#),
        ("echo.area", r#"["Empty"]"#, "0.0"),
        (
            "echo.area",
            r#"[{"Rect": {"width": 2, "height": 3}}]"#,
            "6.0",
        ),
        ("echo.area", r#"[{"Triangle": [3, 4, 5]}]"#, "6.0"),
        ("echo.words", r#"["b a b"]"#, r#"{"a":1,"b":2}"#),
        (
            "echo.record",
            r#"[{"name": "r", "tags": ["b", "a"], "point": null, "blob": "aGk=", "level": "High"}]"#,
            r#"{"blob":"aGk=","level":"High","name":"r","point":null,"tags":["a","b"]}"#,
        ),
        (
            "echo.record",
            r#"[{"name": "r", "tags": [], "point": {"x": 1, "y": -2}, "blob": [], "level": "Low"}]"#,
            r#"{"blob":"","level":"Low","name":"r","point":{"x":1,"y":-2},"tags":[]}"#,
        ),
        ("echo.ping", "", r#""pong""#),
        ("echo.log", r#"["a line"]"#, ""),
    ];
    for (method, args, expected) in cases {
        let ran = call(&echo, method, args);
        assert_eq!(
            (ran.code, ran.stdout.as_str()),
            (0, expected),
            "{method} {args}: {}",
            ran.stderr
        );
    }
    // Arguments from standard input.
    let mut piped = sockets(&["call", &echo.url, "echo.add", "-"]);
    piped.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = piped.spawn().expect("runs");
    std::io::Write::write_all(&mut child.stdin.take().expect("piped"), b"[40, 2]")
        .expect("written");
    let output = child.wait_with_output().expect("ends");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "42");
}

#[test]
fn each_kind_of_error_has_its_own_exit_code_and_message() {
    let echo = start();
    let declared = call(&echo, "echo.double", "[200]");
    assert_eq!(
        (declared.code, declared.stdout.as_str()),
        (20, r#"{"TooLarge":{"max":127}}"#)
    );
    assert!(declared.stderr.contains("returned its declared error"));

    let stream = call(&echo, "echo.count", "[3]");
    assert_eq!(stream.code, 19, "{}", stream.stderr);
    assert!(
        stream.stderr.contains("returns a stream"),
        "{}",
        stream.stderr
    );
    let upload = call(&echo, "echo.sum", "[]");
    assert_eq!(upload.code, 19, "{}", upload.stderr);
    assert!(
        upload.stderr.contains("takes a stream"),
        "{}",
        upload.stderr
    );

    let not_json = call(&echo, "echo.add", "[1,");
    assert_eq!(not_json.code, 3);
    assert!(not_json.stderr.contains("not JSON"), "{}", not_json.stderr);

    for (args, problem) in [
        (r#"[1, "x"]"#, r#"at `b`: expected i64, found "x""#),
        ("[1]", "1 given, the method takes 2"),
        (r#"{"a": 1, "c": 2}"#, "at `c`: no parameter of that name"),
    ] {
        let ran = call(&echo, "echo.add", args);
        assert_eq!(ran.code, 3, "{args}");
        assert!(ran.stderr.contains(problem), "{args}: {}", ran.stderr);
        assert!(
            ran.stderr
                .contains("expected: echo.add(a: i64, b: i64) -> i64"),
            "{}",
            ran.stderr
        );
    }
    let too_big = call(&echo, "echo.double", "[300]");
    assert_eq!(too_big.code, 3);
    assert!(too_big.stderr.contains("300 does not fit in u8 (0..=255)"));
    let bad_variant = call(&echo, "echo.area", r#"["Square"]"#);
    assert_eq!(bad_variant.code, 3);
    assert!(bad_variant.stderr.contains("no variant `Square`"));

    let unknown = call(&echo, "echo.nope", "[]");
    assert_eq!(unknown.code, 4);
    assert!(unknown.stderr.contains("no method `echo.nope`"));
    assert!(unknown.stderr.contains("echo.add(a: i64, b: i64) -> i64"));

    let guest = run(&mut sockets(&[
        "call",
        "--credentials",
        r#""guest""#,
        &echo.url,
        "echo.add",
        "[1, 2]",
    ]));
    assert_eq!(guest.code, 11, "{}", guest.stderr);
    let guest_ping = run(&mut sockets(&[
        "call",
        "--credentials",
        r#""guest""#,
        &echo.url,
        "echo.ping",
    ]));
    assert_eq!(guest_ping.code, 0, "{}", guest_ping.stderr);

    let slow = run(&mut sockets(&[
        "call",
        "--timeout-ms",
        "200",
        &echo.url,
        "echo.sleep",
        "[5000]",
    ]));
    assert_eq!(slow.code, 9, "{}", slow.stderr);
    assert!(slow.stderr.contains("timed out"));

    let wrong = run(&mut sockets(&[
        "call",
        "--secret",
        "AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        &echo.url,
        "echo.ping",
    ]));
    assert_eq!(wrong.code, 7, "{}", wrong.stderr);
    assert!(wrong.stderr.contains("handshake failed"));

    let no_secret = run(sockets(&["call", &echo.url, "echo.ping"]).env_remove("SOCKETS_SECRET"));
    assert_eq!(no_secret.code, 5);
    assert!(no_secret.stderr.contains("no shared secret"));

    // A port nobody listens on: the server's, once it is gone.
    let url = echo.url.clone();
    drop(echo);
    let refused = run(&mut sockets(&["call", &url, "echo.ping"]));
    assert_eq!(refused.code, 6, "{}", refused.stderr);
}

#[test]
fn listen_prints_pushes_as_json_lines() {
    let echo = start();
    let mut listener = sockets(&["listen", &echo.url, "--count", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("listen starts");
    let stderr = lines(listener.stderr.take().expect("piped"));
    let stdout = lines(listener.stdout.take().expect("piped"));
    wait_for(&stderr, "listening on");
    assert_eq!(call(&echo, "echo.say", r#"["hello"]"#).code, 0);
    assert_eq!(call(&echo, "echo.say", r#"{"text": "bye"}"#).code, 0);
    assert_eq!(
        stdout.recv_timeout(HANG).expect("a line"),
        r#"{"method":"events.said","args":["hello"]}"#
    );
    assert_eq!(
        stdout.recv_timeout(HANG).expect("a line"),
        r#"{"method":"events.said","args":["bye"]}"#
    );
    let status = listener.wait().expect("listen ends after --count");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn bench_measures_for_the_duration_and_prints_a_histogram() {
    let echo = start();
    let ran = run(&mut sockets(&[
        "bench", &echo.url, "echo.add", "[1, 2]", "-c", "2", "-k", "4", "-d", "2",
    ]));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let out = &ran.stdout;
    assert!(
        out.contains("echo.add: 2 connections × 4 in flight, 2.0 s"),
        "{out}"
    );
    assert!(out.contains(" ok, 0 failed in 2."), "{out}");
    assert!(out.contains("calls/s"), "{out}");
    assert!(out.contains("p99 "), "{out}");
    assert!(out.contains("histogram"), "{out}");
    // Bad arguments fail before any load.
    let bad = run(&mut sockets(&[
        "bench", &echo.url, "echo.add", "[1]", "-d", "1",
    ]));
    assert_eq!(bad.code, 3);
}

#[test]
fn keygen_and_completions() {
    let key = run(sockets(&["keygen"]).env_remove("SOCKETS_SECRET"));
    assert_eq!(key.code, 0);
    assert_eq!(key.stdout.trim().len(), 44);
    let completions = run(&mut sockets(&["completions", "bash"]));
    assert_eq!(completions.code, 0);
    assert!(completions.stdout.contains("serve-echo"));
    let usage = run(&mut sockets(&["call"]));
    assert_eq!(usage.code, 2);
}
