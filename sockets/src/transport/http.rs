//! The HTTP/1.1 exchange before a WebSocket (RFC 6455 §4): the client's
//! upgrade request and the server's `101 Switching Protocols`, and the plain
//! HTTP answers a server gives to everything else.
//!
//! A server answers, and then closes:
//! - an upgrade request: `101`, and the connection becomes a WebSocket;
//! - `GET` or `HEAD` of its health route (if it has one): `200 ok`;
//! - any other well-formed request (a browser, a monitor): `426 Upgrade Required`;
//! - a request that is not HTTP, or too large: `400 Bad Request`;
//! - a WebSocket version other than 13: `426` with `Sec-WebSocket-Version: 13`.
//!
//! None of these proves or disproves anything about the shared secret, so
//! the per-address failure budget does not count them (`server/limits.rs`).
//! The request head is read through a small limit ([`MAX_HEAD`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Gauge, Io, TransportError};
use crate::identity::Headers;

/// The largest request or response head read, bytes: room for the cookies a
/// browser may send along, and no more.
pub(crate) const MAX_HEAD: usize = 16 * 1024;

/// Headers parsed at most.
const MAX_HEADERS: usize = 64;

/// The largest body of a refusal a client reads (the reason).
const MAX_BODY: usize = 1024;

/// RFC 6455 §1.3: appended to the client's key before hashing.
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// How a server answers plain HTTP requests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct HttpOptions {
    /// The path answered `200 ok`, for load balancers and monitors.
    pub(crate) health_path: Option<String>,
}

/// What came of a request on a server.
#[derive(Debug)]
pub(crate) enum Request {
    /// A WebSocket upgrade was accepted (`101` sent): the request's headers,
    /// and the bytes the client sent after its request.
    Upgraded(Headers, BytesMut),
    /// A plain HTTP request, answered with this status.
    Answered(u16),
}

/// Whether a `Sec-WebSocket-Key` is what RFC 6455 §4.1 asks: 16 bytes in base64.
pub(crate) fn valid_key(key: &[u8]) -> bool {
    BASE64.decode(key.trim_ascii()).is_ok_and(|k| k.len() == 16)
}

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
pub(crate) fn accept_key(key: &[u8]) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    context.update(key);
    context.update(ACCEPT_GUID);
    BASE64.encode(context.finish())
}

/// Reads a request or response head (through the blank line) into `buf`;
/// returns its length. `Ok(None)`: the peer closed first. The buffer's
/// size is reported to `gauge`, if there is one. `plausible` looks at what
/// has arrived so far: bytes that cannot start a head are refused at once,
/// not when the limit or the deadline is reached.
async fn read_head(
    io: &mut dyn Io,
    buf: &mut BytesMut,
    gauge: &mut Option<Gauge>,
    plausible: fn(&[u8]) -> bool,
) -> Result<Option<usize>, TransportError> {
    let mut searched = 0;
    loop {
        if let Some(end) = find_end(buf, searched) {
            return Ok(Some(end));
        }
        if !plausible(buf) {
            return Err(TransportError::Http("not an HTTP request"));
        }
        searched = buf.len().saturating_sub(3);
        if buf.len() >= MAX_HEAD {
            return Err(TransportError::Http("request head too large"));
        }
        buf.reserve(1024.min(MAX_HEAD - buf.len()));
        if let Some(gauge) = gauge {
            gauge.set(buf.capacity());
        }
        let room = MAX_HEAD - buf.len();
        let read = (&mut *io).take(room as u64).read_buf(buf).await?;
        if read == 0 {
            return Ok(None);
        }
    }
}

/// Whether `buf` can be the start of an HTTP request.
fn plausible_request(buf: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    // Anything that fails to parse now would be answered 400 when complete.
    !matches!(
        httparse::Request::new(&mut headers).parse(buf),
        Err(error) if error != httparse::Error::TooManyHeaders
    )
}

fn find_end(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| from + at + 4)
}

fn header<'a>(headers: &[httparse::Header<'a>], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// Whether a comma-separated header value lists `token` (case-insensitive).
pub(crate) fn lists(value: Option<&[u8]>, token: &str) -> bool {
    value.is_some_and(|value| {
        value
            .split(|b| *b == b',')
            .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// Writes a plain response and its body; `head_only` for a HEAD request.
async fn respond(
    io: &mut dyn Io,
    status: u16,
    extra: &str,
    body: &str,
    head_only: bool,
) -> Result<(), TransportError> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        426 => "Upgrade Required",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\n{extra}Connection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    if !head_only {
        response.push_str(body);
    }
    io.write_all(response.as_bytes()).await?;
    io.flush().await?;
    Ok(())
}

/// The server side: reads the request and answers it. The request head's
/// buffer counts towards `gauge`, if there is one.
///
/// # Errors
/// I/O errors; a peer that closes before its request ends is `Io` too.
pub(crate) async fn serve(
    io: &mut dyn Io,
    options: &HttpOptions,
    gauge: &mut Option<Gauge>,
) -> Result<Request, TransportError> {
    let mut buf = BytesMut::new();
    let end = match read_head(io, &mut buf, gauge, plausible_request).await {
        Ok(Some(end)) => end,
        Ok(None) => return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into()),
        Err(TransportError::Http(reason)) => {
            respond(io, 400, "", reason, false).await?;
            return Ok(Request::Answered(400));
        }
        Err(other) => return Err(other),
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let parsed = request.parse(&buf[..end]);
    if !matches!(parsed, Ok(httparse::Status::Complete(_))) {
        respond(io, 400, "", "malformed HTTP request", false).await?;
        return Ok(Request::Answered(400));
    }
    let method = request.method.unwrap_or_default();
    let path = request.path.unwrap_or_default();
    let headers = request.headers;
    let upgrade = lists(header(headers, "upgrade"), "websocket")
        && lists(header(headers, "connection"), "upgrade");
    if !upgrade {
        let health = options.health_path.as_deref().is_some_and(|health| {
            path.split('?').next() == Some(health) && (method == "GET" || method == "HEAD")
        });
        let (status, body) = if health {
            (200, "ok\n")
        } else {
            (426, "this endpoint speaks WebSocket only\n")
        };
        respond(io, status, "Upgrade: websocket\r\n", body, method == "HEAD").await?;
        return Ok(Request::Answered(status));
    }
    if method != "GET" || request.version != Some(1) {
        respond(
            io,
            400,
            "",
            "a WebSocket upgrade is a GET over HTTP/1.1\n",
            false,
        )
        .await?;
        return Ok(Request::Answered(400));
    }
    if header(headers, "sec-websocket-version") != Some(b"13") {
        let extra = "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
        respond(io, 426, extra, "WebSocket version 13 only\n", false).await?;
        return Ok(Request::Answered(426));
    }
    let key = header(headers, "sec-websocket-key").map(<[u8]>::trim_ascii);
    let Some(key) = key.filter(|key| valid_key(key)) else {
        respond(
            io,
            400,
            "",
            "missing or malformed Sec-WebSocket-Key\n",
            false,
        )
        .await?;
        return Ok(Request::Answered(400));
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key)
    );
    io.write_all(response.as_bytes()).await?;
    io.flush().await?;
    let headers = Headers::new(
        headers
            .iter()
            .filter_map(|h| Some((h.name, std::str::from_utf8(h.value).ok()?))),
    );
    buf.advance(end);
    Ok(Request::Upgraded(headers, buf))
}

/// Tells a client that the server refuses it, without an upgrade:
/// `503` with `reason` as the body. Writes only what the socket takes at
/// once, and never waits: for refusals past the ones answered properly.
pub(crate) fn refuse_now(tcp: &tokio::net::TcpStream, reason: &str) {
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{reason}",
        reason.len()
    );
    // A fresh socket's send buffer takes a few hundred bytes; if not, the
    // peer learns nothing more than from a reset.
    let _ = tcp.try_write(response.as_bytes());
}

/// A `ws://` or `wss://` URL, taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Url {
    /// `wss://`.
    pub(crate) secure: bool,
    /// The host, without brackets for IPv6.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Path and query, starting with `/`.
    pub(crate) target: String,
    /// What the `Host` header says: the host, and the port unless it is the default.
    pub(crate) authority: String,
    /// More headers for the upgrade request (`Authorization`, `Cookie`).
    pub(crate) headers: Vec<(String, String)>,
}

impl Url {
    /// Parses `ws://host[:port][/path][?query]` (or `wss://`).
    ///
    /// # Errors
    /// [`TransportError::BadUrl`] with what is wrong.
    pub(crate) fn parse(url: &str) -> Result<Self, TransportError> {
        let bad = |why: &str| TransportError::BadUrl(why.to_owned());
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("the url must be ws:// or wss://"))?;
        let secure = if scheme.eq_ignore_ascii_case("ws") {
            false
        } else if scheme.eq_ignore_ascii_case("wss") {
            true
        } else {
            return Err(bad("the url must be ws:// or wss://"));
        };
        let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        let target = target.split('#').next().unwrap_or_default();
        if authority.contains('@') {
            return Err(bad("the url must not carry user information"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("the url has an unclosed [ in its host"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("the url has no host"));
        }
        let default_port = if secure { 443 } else { 80 };
        let port = match port {
            None | Some("") => default_port,
            Some(port) => port
                .parse()
                .map_err(|_| bad("the url's port is not a number"))?,
        };
        let target = if target.starts_with('/') {
            target.to_owned()
        } else {
            format!("/{target}")
        };
        Ok(Self {
            secure,
            host: host.to_owned(),
            port,
            target,
            authority: authority.to_owned(),
            headers: Vec::new(),
        })
    }
}

/// Whether `name: value` can be sent as a header: a token name, and a value
/// without line breaks (which would smuggle more headers in).
pub(crate) fn valid_header(name: &str, value: &str) -> bool {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    !name.is_empty() && name.chars().all(token) && !value.contains(['\r', '\n', '\0'])
}

/// The client side: sends the upgrade request for `url` and checks the
/// server's answer. Returns bytes the server sent after its `101`.
///
/// # Errors
/// [`TransportError::Refused`] when the server answered with another status
/// (with its body as the reason), [`TransportError::Http`] for an answer
/// that is not a valid upgrade, I/O errors.
pub(crate) async fn upgrade(io: &mut dyn Io, url: &Url) -> Result<BytesMut, TransportError> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|_| TransportError::Http("no entropy for the key"))?;
    let key = BASE64.encode(nonce);
    let mut request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n",
        url.target, url.authority
    );
    for (name, value) in &url.headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    io.write_all(request.as_bytes()).await?;
    io.flush().await?;
    let mut buf = BytesMut::new();
    let Some(end) = read_head(io, &mut buf, &mut None, |_| true).await? else {
        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    if !matches!(
        response.parse(&buf[..end]),
        Ok(httparse::Status::Complete(_))
    ) {
        return Err(TransportError::Http("malformed HTTP response"));
    }
    let status = response.code.unwrap_or_default();
    if status != 101 {
        let length = header(response.headers, "content-length")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0)
            .min(MAX_BODY);
        buf.advance(end);
        while buf.len() < length {
            if (&mut *io)
                .take((length - buf.len()) as u64)
                .read_buf(&mut buf)
                .await?
                == 0
            {
                break;
            }
        }
        let body = String::from_utf8_lossy(&buf[..buf.len().min(length)]);
        return Err(TransportError::Refused {
            status,
            reason: body.trim().to_owned(),
        });
    }
    let headers = response.headers;
    let upgraded = lists(header(headers, "upgrade"), "websocket")
        && lists(header(headers, "connection"), "upgrade");
    if !upgraded {
        return Err(TransportError::Http("101 without a WebSocket upgrade"));
    }
    if header(headers, "sec-websocket-accept").map(<[u8]>::trim_ascii)
        != Some(accept_key(key.as_bytes()).as_bytes())
    {
        return Err(TransportError::Http("wrong Sec-WebSocket-Accept"));
    }
    if header(headers, "sec-websocket-extensions").is_some() {
        return Err(TransportError::Http(
            "the server chose an extension nobody asked for",
        ));
    }
    buf.advance(end);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    use super::*;

    #[test]
    fn the_accept_key_of_rfc_6455() {
        // §1.3's example.
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn urls_parse_and_bad_ones_say_why() {
        let url = Url::parse("ws://127.0.0.1:7878/").unwrap();
        assert_eq!(
            (url.secure, url.host.as_str(), url.port),
            (false, "127.0.0.1", 7878)
        );
        assert_eq!(
            (url.target.as_str(), url.authority.as_str()),
            ("/", "127.0.0.1:7878")
        );
        let url = Url::parse("wss://[::1]:9/rpc?x=1#frag").unwrap();
        assert_eq!((url.secure, url.host.as_str(), url.port), (true, "::1", 9));
        assert_eq!(url.target, "/rpc?x=1");
        let url = Url::parse("WS://example.com").unwrap();
        assert_eq!((url.port, url.target.as_str()), (80, "/"));
        assert_eq!(Url::parse("wss://example.com?q").unwrap().target, "/?q");
        for bad in [
            "http://x/",
            "ws://",
            "ws://:80/",
            "ws://h:port/",
            "ws://u@h/",
            "ws://[::1/",
            "x",
        ] {
            assert!(
                matches!(Url::parse(bad), Err(TransportError::BadUrl(_))),
                "{bad}"
            );
        }
    }

    async fn answer(request: &str, options: &HttpOptions) -> (Option<u16>, String) {
        let (mut client, mut server) = duplex(64 * 1024);
        client.write_all(request.as_bytes()).await.unwrap();
        let served = serve(&mut server, options, &mut None).await.unwrap();
        drop(server);
        let mut response = String::new();
        client.read_to_string(&mut response).await.unwrap();
        let status = match served {
            Request::Answered(status) => Some(status),
            Request::Upgraded(..) => None,
        };
        (status, response)
    }

    const UPGRADE: &str = "GET /rpc HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

    #[tokio::test]
    async fn a_server_upgrades_or_answers_each_kind_of_request() {
        let health = HttpOptions {
            health_path: Some("/healthz".into()),
        };
        let (status, response) = answer(UPGRADE, &health).await;
        assert_eq!(status, None);
        assert!(response.starts_with("HTTP/1.1 101 "), "{response}");
        assert!(response.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        let (mut client, mut server) = duplex(64 * 1024);
        client
            .write_all(
                UPGRADE
                    .replace("Host: h", "Host: h\r\nAuthorization: Bearer t0k3n")
                    .as_bytes(),
            )
            .await
            .unwrap();
        let Ok(Request::Upgraded(headers, _)) = serve(&mut server, &health, &mut None).await else {
            panic!("an upgrade")
        };
        assert_eq!(headers.get("authorization"), Some("Bearer t0k3n"));
        assert!(
            !format!("{headers:?}").contains("t0k3n"),
            "values stay out of Debug"
        );
        let (status, response) = answer("GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n", &health).await;
        assert_eq!(status, Some(200));
        assert!(response.starts_with("HTTP/1.1 200 OK") && response.ends_with("\r\n\r\nok\n"));
        let (status, response) = answer("HEAD /healthz?x HTTP/1.1\r\n\r\n", &health).await;
        assert_eq!(status, Some(200));
        assert!(response.ends_with("\r\n\r\n"), "no body for HEAD");
        // Without a health route, the same probe is told to upgrade.
        let (status, response) =
            answer("GET /healthz HTTP/1.1\r\n\r\n", &HttpOptions::default()).await;
        assert_eq!(status, Some(426));
        assert!(response.starts_with("HTTP/1.1 426 Upgrade Required"));
        let (status, _) = answer("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &health).await;
        assert_eq!(status, Some(426));
        let (status, _) = answer("\u{1}\u{2} garbage\r\n\r\n", &health).await;
        assert_eq!(status, Some(400));
        let (status, response) =
            answer(&UPGRADE.replace("Version: 13", "Version: 8"), &health).await;
        assert_eq!(status, Some(426));
        assert!(response.contains("Sec-WebSocket-Version: 13"));
        let (status, _) = answer(
            &UPGRADE.replace("dGhlIHNhbXBsZSBub25jZQ==", "short"),
            &health,
        )
        .await;
        assert_eq!(status, Some(400));
        let (status, _) = answer(&UPGRADE.replace("GET", "PUT"), &health).await;
        assert_eq!(status, Some(400));
    }

    #[tokio::test]
    async fn a_request_head_past_the_limit_gets_400_without_reading_on() {
        let (mut client, mut server) = duplex(4 * MAX_HEAD);
        let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(2 * MAX_HEAD));
        client.write_all(huge.as_bytes()).await.unwrap();
        let total = std::sync::Arc::new(super::super::PreAuthBytes::default());
        let mut gauge = Some(Gauge::new(std::sync::Arc::clone(&total)));
        let served = serve(&mut server, &HttpOptions::default(), &mut gauge)
            .await
            .unwrap();
        assert!(matches!(served, Request::Answered(400)));
        assert!(total.peak() <= MAX_HEAD + 1024, "{}", total.peak());
    }

    #[tokio::test]
    async fn client_and_server_upgrade_and_keep_early_bytes() {
        let (mut client, mut server) = duplex(64 * 1024);
        let url = Url::parse("ws://example.com:81/rpc").unwrap();
        let server_side = tokio::spawn(async move {
            let served = serve(&mut server, &HttpOptions::default(), &mut None)
                .await
                .unwrap();
            server.write_all(b"early").await.unwrap();
            (served, server)
        });
        let early = upgrade(&mut client, &url).await.unwrap();
        let (served, _server) = server_side.await.unwrap();
        assert!(matches!(served, Request::Upgraded(_, ref rest) if rest.is_empty()));
        let mut early = early;
        while early.len() < 5 {
            client.read_buf(&mut early).await.unwrap();
        }
        assert_eq!(&early[..], b"early");
    }

    #[tokio::test]
    async fn a_client_reports_a_refusal_with_its_reason() {
        let (mut client, mut server) = duplex(64 * 1024);
        let url = Url::parse("ws://example.com/").unwrap();
        let refuse = tokio::spawn(async move {
            let mut head = BytesMut::new();
            read_head(&mut server, &mut head, &mut None, plausible_request)
                .await
                .unwrap();
            respond(&mut server, 503, "", "server busy", false)
                .await
                .unwrap();
        });
        let refused = upgrade(&mut client, &url).await;
        refuse.await.unwrap();
        match refused {
            Err(TransportError::Refused {
                status: 503,
                reason,
            }) => assert_eq!(reason, "server busy"),
            other => panic!("{other:?}"),
        }
    }
}
