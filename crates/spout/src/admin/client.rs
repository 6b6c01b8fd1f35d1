//! A running spout's API as its own subcommands reach it: over its Unix socket, which needs no
//! token (only root can connect to it), or over TCP, with the token when the agent has one.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::cli::{self, ClientArgs};

/// The agent's TCP address when SPOUT_HTTP does not say.
const DEFAULT_HTTP: &str = "127.0.0.1:8000";
/// The largest answer read (a host with thousands of containers answers /containers in a few
/// MiB).
const MAX_ANSWER: usize = 64 << 20;

/// Where the running spout's API is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Socket(PathBuf),
    Tcp {
        addr: String,
        /// The socket looked for first, which was not there.
        no_socket: Option<PathBuf>,
    },
}

impl Endpoint {
    /// `--http` when given; else the API socket (`--api-socket`, or `api.sock` in the state
    /// directory) when it is there or was named; else the TCP address in `env_http`
    /// (SPOUT_HTTP) or 127.0.0.1:8000.
    pub fn choose(args: &ClientArgs, env_http: Option<&str>) -> Endpoint {
        if let Some(addr) = &args.http {
            return Endpoint::Tcp { addr: addr.clone(), no_socket: None };
        }
        let socket = cli::api_socket(&args.state_dir, args.api_socket.as_deref());
        match socket {
            // A path that cannot be looked at (a directory only root may read) is tried, so
            // that the error says why.
            Some(path) if args.api_socket.is_some() || !matches!(path.try_exists(), Ok(false)) => {
                Endpoint::Socket(path)
            }
            no_socket => Endpoint::Tcp { addr: env_http.unwrap_or(DEFAULT_HTTP).to_owned(), no_socket },
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Socket(path) => write!(f, "at {}", path.display()),
            Endpoint::Tcp { addr, no_socket: None } => write!(f, "at {addr}"),
            Endpoint::Tcp { addr, no_socket: Some(path) } => {
                write!(f, "at {addr} (there is no API socket at {})", path.display())
            }
        }
    }
}

/// Why a request got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach spout's API {at}: {why}")]
    Unreachable { at: Endpoint, why: String },
    #[error("spout's API {at} answered {status}: {message}")]
    Refused { at: Endpoint, status: u16, message: String },
    #[error("spout's API {at} answered something unexpected: {why}")]
    Garbled { at: Endpoint, why: String },
}

impl ClientError {
    /// Whether the request itself was at fault (400): the command was used wrongly.
    pub fn is_usage(&self) -> bool {
        matches!(self, ClientError::Refused { status: 400, .. })
    }
}

/// A request to the API: its method, path, and JSON body if any.
pub struct Call<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub body: Option<String>,
    /// How long the whole exchange may take.
    pub timeout: Duration,
}

/// An answer: its status and body.
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

/// Makes `call` at `at`, with `token` if any: a 2xx answer's body, or why there was none.
pub fn call(at: &Endpoint, call: Call<'_>, token: Option<&str>) -> Result<Bytes, ClientError> {
    let Answer { status, body } = answer(at, call, token)?;
    if (200..300).contains(&status) {
        return Ok(body);
    }
    // Every refusal of spout's API is {"error": "..."}.
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(1024)]).into_owned());
    Err(ClientError::Refused { at: at.clone(), status, message })
}

/// Makes `call` at `at`, with `token` if any: whatever it answered.
pub fn answer(at: &Endpoint, call: Call<'_>, token: Option<&str>) -> Result<Answer, ClientError> {
    let unreachable = |why: String| ClientError::Unreachable { at: at.clone(), why };
    let mut request = Request::builder().method(call.method).uri(call.path).header("host", "spout");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if call.body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(Full::new(Bytes::from(call.body.unwrap_or_default())))
        .map_err(|e| unreachable(format!("cannot make the request: {e}")))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| unreachable(format!("cannot start a runtime: {e}")))?;
    let exchange = async {
        match at {
            Endpoint::Socket(path) => {
                let stream =
                    tokio::net::UnixStream::connect(path).await.map_err(|e| Failure::Connect(socket_error(&e)))?;
                exchange(stream, request).await
            }
            Endpoint::Tcp { addr, .. } => {
                let addr = reachable(addr).map_err(Failure::Connect)?;
                let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| Failure::Connect(e.to_string()))?;
                exchange(stream, request).await
            }
        }
    };
    let answer = runtime.block_on(async { tokio::time::timeout(call.timeout, exchange).await });
    match answer {
        Ok(Ok((status, body))) => Ok(Answer { status, body }),
        Ok(Err(Failure::Connect(why))) => Err(unreachable(why)),
        Ok(Err(Failure::Exchange(why))) => Err(ClientError::Garbled { at: at.clone(), why }),
        Err(_) => Err(unreachable(format!("no answer within {:?}", call.timeout))),
    }
}

enum Failure {
    Connect(String),
    Exchange(String),
}

/// One request on a connection of its own: the answer's status and body.
async fn exchange<S>(stream: S, request: Request<Full<Bytes>>) -> Result<(u16, Bytes), Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let failed = |e: &dyn std::error::Error| Failure::Exchange(e.to_string());
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| failed(&e))?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await.map_err(|e| failed(&e))?;
    let status = response.status().as_u16();
    let body = Limited::new(response.into_body(), MAX_ANSWER).collect().await.map_err(|e| failed(&*e))?;
    Ok((status, body.to_bytes()))
}

/// What a failed connect to the socket means for the person who typed the command.
fn socket_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            format!("{e}: the API socket is root's; run this as root (e.g. with sudo), or ask the TCP API with --http")
        }
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => format!(
            "{e}: is spout running with this state directory? (--state-dir or --api-socket say where its socket is)"
        ),
        _ => e.to_string(),
    }
}

/// The address to connect to for an API listening on `addr`: one listening on every address
/// (`0.0.0.0:8000`, as in the image) is asked on loopback.
fn reachable(addr: &str) -> Result<SocketAddr, String> {
    use std::net::{Ipv4Addr, Ipv6Addr, ToSocketAddrs};
    if addr == "off" {
        return Err("the HTTP API is off (--http off) and there is no API socket: there is nothing to ask".to_owned());
    }
    let mut found = addr
        .to_socket_addrs()
        .map_err(|e| format!("'{addr}': {e}"))?
        .next()
        .ok_or_else(|| format!("'{addr}' has no address"))?;
    if found.ip().is_unspecified() {
        found.set_ip(if found.is_ipv4() { Ipv4Addr::LOCALHOST.into() } else { Ipv6Addr::LOCALHOST.into() });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(http: Option<&str>, socket: Option<&std::path::Path>, state_dir: &std::path::Path) -> ClientArgs {
        ClientArgs {
            api_socket: socket.map(|p| p.to_owned()),
            state_dir: state_dir.to_owned(),
            http: http.map(str::to_owned),
        }
    }

    #[test]
    fn the_socket_unless_http_is_given_or_it_is_not_there() {
        let dir = tempfile::tempdir().expect("dir");
        let at = dir.path().join("api.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&at).expect("bind");
        assert_eq!(Endpoint::choose(&args(None, None, dir.path()), None), Endpoint::Socket(at.clone()));
        let tcp = Endpoint::choose(&args(Some("127.0.0.1:9"), None, dir.path()), None);
        assert_eq!(tcp, Endpoint::Tcp { addr: "127.0.0.1:9".into(), no_socket: None });
        let elsewhere = dir.path().join("nothing-here");
        let fallback = Endpoint::choose(&args(None, None, &elsewhere), Some("0.0.0.0:8001"));
        assert_eq!(
            fallback,
            Endpoint::Tcp { addr: "0.0.0.0:8001".into(), no_socket: Some(elsewhere.join("api.sock")) }
        );
        let named = dir.path().join("named.sock");
        assert_eq!(Endpoint::choose(&args(None, Some(&named), dir.path()), None), Endpoint::Socket(named));
        let off = Endpoint::choose(&args(None, Some(std::path::Path::new("off")), dir.path()), None);
        assert_eq!(off, Endpoint::Tcp { addr: DEFAULT_HTTP.into(), no_socket: None });
    }

    #[test]
    fn an_api_on_every_address_is_asked_on_loopback() {
        assert_eq!(reachable("0.0.0.0:8000").expect("valid").to_string(), "127.0.0.1:8000");
        assert_eq!(reachable("[::]:8000").expect("valid").to_string(), "[::1]:8000");
        assert_eq!(reachable("10.0.0.7:80").expect("valid").to_string(), "10.0.0.7:80");
        assert!(reachable("off").expect_err("off").contains("--http off"));
    }

    #[test]
    fn a_missing_socket_says_what_to_check() {
        let dir = tempfile::tempdir().expect("dir");
        let at = Endpoint::Socket(dir.path().join("api.sock"));
        let call = Call { method: "GET", path: "/health", body: None, timeout: Duration::from_secs(3) };
        let e = super::call(&at, call, None).expect_err("nothing listens");
        assert!(e.to_string().contains("--state-dir or --api-socket"), "{e}");
        assert!(!e.is_usage());
    }
}
