//! Route URIs: `SCHEME://HOST:PORT?option=value&…`, parsed into validated settings.

use std::collections::BTreeMap;
use std::fmt;

use std::time::Duration;

use gelf::Compression;
use hyper::header::{HeaderName, HeaderValue};

use super::codec::{Format, Framing, Packing};
use super::options::{bool_option, duration_option, number_option, parsed_option};
use super::syslog::{Rfc, Syslog};
use super::tls::TlsSettings;

use crate::backoff::Backoff;
use crate::enrich::filter::RouteFilter;
use crate::router::WhenFull;
use crate::suggest;

/// Largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65_507;
/// A syslog datagram's default size: what RFC 5426 says every receiver should take.
const SYSLOG_UDP_MAX: usize = 2048;
/// An HTTP body's default size: Graylog's HTTP input takes 64 KiB.
const DEFAULT_MAX_BODY: usize = 64 * 1024;
/// An OTLP body's: well within the OpenTelemetry Collector's 20 MiB.
const DEFAULT_MAX_OTLP_BODY: usize = 4 * 1024 * 1024;
const MIN_BODY: usize = 1024;
const MAX_BODY: usize = 16 * 1024 * 1024;
const MIN_CHUNK_SIZE: usize = 100;
const MAX_QUEUE: usize = 1_000_000;
const DEFAULT_QUEUE: usize = 10_000;
const DEFAULT_BACKOFF: Duration = Duration::from_millis(100);
const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(30);
const DEFAULT_RESOLVE_EVERY: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(15);

/// Where a route sends, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// The URI as given: what is saved, and compared.
    pub uri: String,
    /// The URI as shown wherever routes are (logs, errors, /health, /metrics, `spout routes`):
    /// header values hidden.
    pub shown: String,
    pub kind: RouteKind,
    /// Messages held in memory for this route.
    pub queue: usize,
    pub when_full: WhenFull,
    /// Delays between attempts to reach the destination.
    pub backoff: Backoff,
    /// Which containers and streams the route wants (`filter.*` options).
    pub filter: RouteFilter,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteKind {
    Udp(UdpRoute),
    Tcp(TcpRoute),
    Http(HttpRoute),
    Stdout,
}

/// Datagrams over UDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpRoute {
    pub addr: HostPort,
    pub packing: Packing,
    /// How often the destination's name is looked up again (it may move; UDP would never say).
    pub resolve_every: Duration,
}

/// A stream over TCP, or over TLS over TCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpRoute {
    pub addr: HostPort,
    pub format: Format,
    pub framing: Framing,
    pub tls: Option<TlsSettings>,
    /// How long written data may go unacknowledged by the peer before the connection is taken
    /// for dead (TCP_USER_TIMEOUT, and spout's own deadline).
    pub timeout: Duration,
    /// Idle time before keepalive probes; three probes a third of it apart.
    pub keepalive: Duration,
}

/// Requests over HTTP, or HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    pub addr: HostPort,
    /// The path posted to, e.g. `/gelf`.
    pub path: String,
    pub tls: Option<TlsSettings>,
    pub payload: Payload,
    pub compress: BodyEncoding,
    /// The most bytes a body holds before compression; a longer message is cut to fit.
    pub max_body: usize,
    /// Sent with every request.
    pub headers: Vec<Header>,
    /// How long a request may go unanswered.
    pub timeout: Duration,
}

/// What an HTTP route posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// GELF, one message a request.
    Gelf,
    /// GELF, many messages a request, separated by newlines.
    GelfBulk,
    /// OTLP logs, many records a request, in protobuf.
    Otlp,
}

/// What a body is compressed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEncoding {
    Gzip,
    Identity,
}

impl std::str::FromStr for BodyEncoding {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "gzip" => Ok(BodyEncoding::Gzip),
            "none" => Ok(BodyEncoding::Identity),
            other => Err(format!("'{other}' is not gzip or none")),
        }
    }
}

/// A header every request carries (`header=NAME:VALUE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: HeaderName,
    pub value: HeaderValue,
}

impl std::str::FromStr for Header {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (name, value) = s.split_once(':').ok_or_else(|| format!("'{}' is not NAME:VALUE", mask(s)))?;
        let name = HeaderName::try_from(name.trim()).map_err(|_| format!("'{name}' is not a header name"))?;
        if matches!(name.as_str(), "host" | "content-length" | "content-encoding" | "transfer-encoding" | "connection")
        {
            return Err(format!("{name} is spout's to set"));
        }
        let mut value =
            HeaderValue::try_from(value.trim()).map_err(|_| format!("the value of {name} is not a header value"))?;
        value.set_sensitive(true);
        Ok(Header { name, value })
    }
}

/// `NAME:VALUE` as shown wherever routes are: the value hidden.
pub fn mask(header: &str) -> String {
    match header.split_once(':') {
        Some((name, _)) => format!("{name}:***"),
        None => "***".to_owned(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl RouteKind {
    /// What a message is written as.
    pub fn format(&self) -> Format {
        match self {
            RouteKind::Udp(UdpRoute { packing: Packing::Whole { format, .. }, .. }) => *format,
            RouteKind::Udp(_) => Format::Gelf,
            RouteKind::Tcp(route) => route.format,
            // OTLP is no stream format: none of the stream options apply.
            RouteKind::Http(_) => Format::Gelf,
            RouteKind::Stdout => Format::Json,
        }
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl RouteSpec {
    /// `stdout://` with every default: the route when none is given.
    pub fn stdout() -> RouteSpec {
        RouteSpec {
            uri: "stdout://".into(),
            shown: "stdout://".into(),
            kind: RouteKind::Stdout,
            queue: DEFAULT_QUEUE,
            when_full: WhenFull::Block,
            backoff: Backoff::new(DEFAULT_BACKOFF, DEFAULT_BACKOFF_MAX),
            filter: RouteFilter::default(),
        }
    }
}

/// A route URI that cannot be used, and the part of it at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad route {uri:?}: {problem}")]
pub struct RouteError {
    pub uri: String,
    pub problem: String,
}

impl std::str::FromStr for RouteSpec {
    type Err = RouteError;

    fn from_str(uri: &str) -> Result<Self, RouteError> {
        parse(uri).map_err(|problem| RouteError { uri: shown(uri), problem })
    }
}

/// The schemes spout speaks.
const SCHEMES: [&str; 16] = [
    "gelf",
    "gelf+udp",
    "gelf+tcp",
    "gelf+tls",
    "json+tcp",
    "json+tls",
    "json+udp",
    "syslog",
    "syslog+udp",
    "syslog+tcp",
    "syslog+tls",
    "gelf+http",
    "gelf+https",
    "otlp+http",
    "otlp+https",
    "stdout",
];

/// A scheme is a row of defaults: a transport, and the format and framing (or packing) that
/// options may override.
enum Row {
    /// GELF's compressed chunks over UDP.
    GelfUdp,
    /// One message a datagram, of at most this many bytes.
    WholeUdp(Format, usize),
    /// A stream over TCP, over TLS when true.
    Stream(Format, Framing, bool),
    /// Posted over HTTP (over HTTPS when true): GELF, or OTLP when true.
    Http(bool, bool),
    Stdout,
}

fn row(scheme: &str) -> Option<Row> {
    let syslog = Format::Syslog(Syslog::new(Rfc::Rfc5424));
    Some(match scheme {
        "gelf" | "gelf+udp" => Row::GelfUdp,
        "json+udp" => Row::WholeUdp(Format::Json, MAX_DATAGRAM),
        "syslog" | "syslog+udp" => Row::WholeUdp(syslog, SYSLOG_UDP_MAX),
        "gelf+tcp" | "gelf+tls" => Row::Stream(Format::Gelf, Framing::Nul, scheme.ends_with("tls")),
        "json+tcp" | "json+tls" => Row::Stream(Format::Json, Framing::Newline, scheme.ends_with("tls")),
        "syslog+tcp" | "syslog+tls" => Row::Stream(syslog, Framing::OctetCount, scheme.ends_with("tls")),
        "gelf+http" | "gelf+https" => Row::Http(scheme.ends_with('s'), false),
        "otlp+http" | "otlp+https" => Row::Http(scheme.ends_with('s'), true),
        "stdout" => Row::Stdout,
        _ => return None,
    })
}

/// The `format=` option, and with a syslog format its `facility=`.
fn format_option(options: &mut BTreeMap<String, String>, default: Format) -> Result<Format, String> {
    let mut format = parsed_option(options, "format", default)?;
    if let Format::Syslog(syslog) = &mut format {
        syslog.facility = parsed_option(options, "facility", syslog.facility)?;
    }
    Ok(format)
}
/// Options a stream over TLS takes.
const TLS_OPTIONS: [&str; 9] =
    ["format", "framing", "timeout", "keepalive", "ca", "cert", "key", "server_name", "insecure_skip_verify"];
/// Options of TLS alone.
const TLS_ONLY: [&str; 5] = ["ca", "cert", "key", "server_name", "insecure_skip_verify"];
/// Options an HTTP route takes (OTLP's, all but the first); over HTTPS, the last ones (TLS's)
/// too.
const HTTP_OPTIONS: [&str; 10] =
    ["bulk", "compress", "max_body", "header", "timeout", "ca", "cert", "key", "server_name", "insecure_skip_verify"];
/// Options every route takes; each scheme adds its own.
const COMMON_OPTIONS: [&str; 9] = [
    "queue",
    "when_full",
    "backoff",
    "backoff_max",
    "filter.name",
    "filter.id",
    "filter.sources",
    "filter.labels",
    "filter.image",
];

fn parse(uri: &str) -> Result<RouteSpec, String> {
    let (scheme, rest) = uri.split_once("://").ok_or_else(|| {
        // `spout stauts` reads as a route: say which subcommand was meant.
        let subcommands = ["run", "check-config", "status", "health", "routes", "receive"];
        let meant = suggest::closest(uri, subcommands).map(|s| format!(" (did you mean the subcommand '{s}'?)"));
        format!("expected SCHEME://HOST:PORT, e.g. gelf+tcp://graylog:12201{}", meant.unwrap_or_default())
    })?;
    let (authority, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match authority.find('/') {
        Some(at) => (&authority[..at], Some(&authority[at..])),
        None => (authority, None),
    };
    let row = row(scheme);
    if let (Some(path), false) = (path, matches!(row, Some(Row::Http(..)))) {
        return Err(format!("unexpected path '{path}'"));
    }
    let (mut options, headers) = parse_query(query)?;
    if !headers.is_empty() && !matches!(row, Some(Row::Http(..))) {
        return Err(format!("unknown option 'header' for {scheme}:// (headers are for HTTP routes)"));
    }
    let kind = match row {
        Some(row @ (Row::GelfUdp | Row::WholeUdp(..))) => {
            let addr = parse_host_port(authority)?;
            let packing = match row {
                Row::WholeUdp(format, max_size) => Packing::Whole {
                    format: format_option(&mut options, format)?,
                    max_size: number_option(&mut options, "max_size", max_size, MIN_CHUNK_SIZE, MAX_DATAGRAM)?,
                },
                _ => Packing::GelfChunks {
                    compression: parsed_option(&mut options, "compress", Compression::Gzip)?,
                    chunk_size: number_option(&mut options, "chunk_size", 1420, MIN_CHUNK_SIZE, MAX_DATAGRAM)?,
                },
            };
            let resolve_every =
                duration_option(&mut options, "resolve_every", DEFAULT_RESOLVE_EVERY, Duration::from_secs(1))?;
            RouteKind::Udp(UdpRoute { addr, packing, resolve_every })
        }
        Some(Row::Stream(format, framing, tls)) => {
            let addr = parse_host_port(authority)?;
            let tls = match tls {
                true => Some(TlsSettings::from_options(&mut options, &addr.host)?),
                false => None,
            };
            RouteKind::Tcp(TcpRoute {
                addr,
                format: format_option(&mut options, format)?,
                framing: parsed_option(&mut options, "framing", framing)?,
                tls,
                timeout: duration_option(&mut options, "timeout", DEFAULT_TIMEOUT, Duration::from_secs(1))?,
                keepalive: duration_option(&mut options, "keepalive", DEFAULT_KEEPALIVE, Duration::from_secs(1))?,
            })
        }
        Some(Row::Http(https, otlp)) => {
            let addr = parse_host_port(authority)?;
            let path = path.unwrap_or(if otlp { "/v1/logs" } else { "/gelf" });
            if hyper::http::uri::PathAndQuery::try_from(path).is_err() {
                return Err(format!("bad path '{path}'"));
            }
            let tls = match https {
                true => Some(TlsSettings::from_options(&mut options, &addr.host)?),
                false => None,
            };
            let headers = headers
                .iter()
                .map(|h| h.parse::<Header>().map_err(|e| format!("option header: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            let (payload, max_body) = match otlp {
                true => (Payload::Otlp, DEFAULT_MAX_OTLP_BODY),
                false if bool_option(&mut options, "bulk", false)? => (Payload::GelfBulk, DEFAULT_MAX_BODY),
                false => (Payload::Gelf, DEFAULT_MAX_BODY),
            };
            RouteKind::Http(HttpRoute {
                addr,
                path: path.to_owned(),
                tls,
                payload,
                compress: parsed_option(&mut options, "compress", BodyEncoding::Gzip)?,
                max_body: number_option(&mut options, "max_body", max_body, MIN_BODY, MAX_BODY)?,
                headers,
                timeout: duration_option(&mut options, "timeout", DEFAULT_TIMEOUT, Duration::from_secs(1))?,
            })
        }
        Some(Row::Stdout) => {
            if !authority.is_empty() {
                return Err(format!("stdout:// takes no host, got '{authority}'"));
            }
            RouteKind::Stdout
        }
        None if scheme.is_empty() => return Err("missing scheme before '://'".to_owned()),
        None => {
            return Err(match suggest::closest(scheme, SCHEMES) {
                Some(meant) => format!("unknown scheme '{scheme}' (did you mean '{meant}'?)"),
                None => format!(
                    "unknown scheme '{scheme}' (expected {} or {})",
                    SCHEMES[..SCHEMES.len() - 1].join(", "),
                    SCHEMES[SCHEMES.len() - 1]
                ),
            })
        }
    };
    let queue = number_option(&mut options, "queue", DEFAULT_QUEUE, 1, MAX_QUEUE)?;
    let when_full = match options.remove("when_full").as_deref() {
        Some("block") => WhenFull::Block,
        Some("drop") => WhenFull::Drop,
        Some(other) => return Err(format!("option when_full: unknown value '{other}' (expected block or drop)")),
        // Even for UDP: its queue fills only while spout reads faster than it encodes (a backlog),
        // and waiting then costs nothing, since the lines wait in Docker's log file.
        None => WhenFull::Block,
    };
    let backoff_base = duration_option(&mut options, "backoff", DEFAULT_BACKOFF, Duration::from_millis(1))?;
    let backoff_max = duration_option(&mut options, "backoff_max", DEFAULT_BACKOFF_MAX, Duration::from_millis(1))?;
    if backoff_max < backoff_base {
        return Err(format!("option backoff_max: {backoff_max:?} is below backoff {backoff_base:?}"));
    }
    let filter = RouteFilter::from_options(&mut options).map_err(|problems| problems.join("; "))?;
    if let Some(name) = options.keys().next() {
        let own: &[&str] = match &kind {
            RouteKind::Udp(UdpRoute { packing: Packing::GelfChunks { .. }, .. }) => {
                &["compress", "chunk_size", "resolve_every"]
            }
            RouteKind::Udp(UdpRoute { packing: Packing::Whole { .. }, .. }) => &["format", "max_size", "resolve_every"],
            RouteKind::Tcp(TcpRoute { tls: None, .. }) => &["format", "framing", "timeout", "keepalive"],
            RouteKind::Tcp(TcpRoute { tls: Some(_), .. }) => &TLS_OPTIONS,
            RouteKind::Http(route) => {
                let all = match route.payload {
                    Payload::Otlp => &HTTP_OPTIONS[1..],
                    _ => &HTTP_OPTIONS[..],
                };
                match route.tls {
                    Some(_) => all,
                    None => &all[..all.len() - TLS_ONLY.len()],
                }
            }
            RouteKind::Stdout => &[],
        };
        let syslog: &[&str] = match kind.format() {
            Format::Syslog(_) => &["facility"],
            _ => &[],
        };
        let known = own.iter().chain(syslog).chain(&COMMON_OPTIONS).copied();
        return Err(format!("unknown option '{name}' for {scheme}://{}", suggest::did_you_mean(name, known)));
    }
    let backoff = Backoff::new(backoff_base, backoff_max);
    Ok(RouteSpec { uri: uri.to_owned(), shown: shown(uri), kind, queue, when_full, backoff, filter })
}

/// The options by name, and the values of `header`, the one option that may be given more than
/// once.
fn parse_query(query: Option<&str>) -> Result<(BTreeMap<String, String>, Vec<String>), String> {
    let mut options = BTreeMap::new();
    let mut headers = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) =
            pair.split_once('=').ok_or_else(|| format!("option '{pair}' has no value (expected NAME=VALUE)"))?;
        let value = percent_decode(value).ok_or_else(|| format!("option {name}: bad %-escape"))?;
        if name == "header" {
            headers.push(value);
        } else if options.insert(name.to_owned(), value).is_some() {
            return Err(format!("option '{name}' is given twice"));
        }
    }
    Ok((options, headers))
}

/// `uri` as shown wherever routes are: each header's value hidden.
pub fn shown(uri: &str) -> String {
    let Some((base, query)) = uri.split_once('?') else { return uri.to_owned() };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.strip_prefix("header=") {
            Some(header) => format!("header={}", mask(&percent_decode(header).unwrap_or_default())),
            None => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", pairs.join("&"))
}

/// `value` with its `%XX` escapes decoded (`%2C` for a comma, as Logspout's users write them);
/// `None` when an escape is malformed or decodes to something that is not UTF-8.
fn percent_decode(value: &str) -> Option<String> {
    if !value.contains('%') {
        return Some(value.to_owned());
    }
    let mut bytes = Vec::with_capacity(value.len());
    let mut rest = value.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = tail.get(..2).filter(|h| h.iter().all(u8::is_ascii_hexdigit))?;
            bytes.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

fn parse_host_port(authority: &str) -> Result<HostPort, String> {
    if authority.is_empty() {
        return Err("missing HOST:PORT".to_owned());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| format!("unclosed '[' in '{authority}'"))?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("bad IPv6 address '{host}'"));
        }
        let port = after.strip_prefix(':').ok_or_else(|| format!("missing port after '[{host}]'"))?;
        (host, port)
    } else {
        let (host, port) =
            authority.rsplit_once(':').ok_or_else(|| format!("missing port in '{authority}' (expected HOST:PORT)"))?;
        if host.is_empty() {
            return Err(format!("missing host in '{authority}'"));
        }
        let valid = host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if !valid {
            return Err(format!("bad host '{host}'"));
        }
        (host, port)
    };
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(HostPort { host: host.to_owned(), port: p }),
        _ => Err(format!("bad port '{port}' (expected 1 to 65535)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(uri: &str) -> RouteSpec {
        uri.parse().unwrap_or_else(|e| panic!("{uri}: {e}"))
    }

    fn problem(uri: &str) -> String {
        match uri.parse::<RouteSpec>() {
            Ok(spec) => panic!("{uri} parsed as {spec:?}"),
            Err(e) => e.problem,
        }
    }

    #[test]
    fn gelf_udp_defaults() {
        for uri in ["gelf://graylog:12201", "gelf+udp://graylog:12201"] {
            let spec = ok(uri);
            let addr = HostPort { host: "graylog".into(), port: 12201 };
            let udp = UdpRoute {
                addr,
                packing: Packing::GelfChunks { compression: Compression::Gzip, chunk_size: 1420 },
                resolve_every: Duration::from_secs(30),
            };
            assert_eq!(spec.kind, RouteKind::Udp(udp));
            assert_eq!((spec.queue, spec.when_full), (10_000, WhenFull::Block));
        }
    }

    #[test]
    fn gelf_udp_options() {
        let spec = ok("gelf+udp://10.0.0.1:514?compress=zlib&chunk_size=8192&queue=5&when_full=block&resolve_every=5s");
        let addr = HostPort { host: "10.0.0.1".into(), port: 514 };
        let packing = Packing::GelfChunks { compression: Compression::Zlib, chunk_size: 8192 };
        let udp = UdpRoute { addr, packing, resolve_every: Duration::from_secs(5) };
        assert_eq!(spec.kind, RouteKind::Udp(udp));
        assert_eq!((spec.queue, spec.when_full), (5, WhenFull::Block));
        assert!(matches!(
            ok("gelf://h:1?compress=none").kind,
            RouteKind::Udp(UdpRoute { packing: Packing::GelfChunks { compression: Compression::None, .. }, .. })
        ));
    }

    #[test]
    fn json_udp_sends_whole_records_up_to_max_size() {
        let packing = |uri: &str| match ok(uri).kind {
            RouteKind::Udp(u) => u.packing,
            other => panic!("not UDP: {other:?}"),
        };
        assert_eq!(packing("json+udp://h:1"), Packing::Whole { format: Format::Json, max_size: 65_507 });
        assert_eq!(packing("json+udp://h:1?max_size=1400"), Packing::Whole { format: Format::Json, max_size: 1400 });
    }

    #[test]
    fn syslog_is_rfc5424_octet_counted_on_streams_and_2048_byte_datagrams() {
        use crate::routes::syslog::{Facility, Rfc, Syslog};
        let rfc5424 = Format::Syslog(Syslog::new(Rfc::Rfc5424));
        let stream = |uri: &str| match ok(uri).kind {
            RouteKind::Tcp(t) => (t.format, t.framing, t.tls.is_some()),
            other => panic!("not a stream: {other:?}"),
        };
        assert_eq!(stream("syslog+tcp://h:514"), (rfc5424, Framing::OctetCount, false));
        assert_eq!(stream("syslog+tls://h:6514"), (rfc5424, Framing::OctetCount, true));
        let daemon: Facility = "daemon".parse().expect("facility");
        let bsd = Format::Syslog(Syslog { rfc: Rfc::Rfc3164, facility: daemon });
        assert_eq!(
            stream("syslog+tcp://h:514?format=rfc3164&framing=newline&facility=daemon"),
            (bsd, Framing::Newline, false)
        );
        let packing = |uri: &str| match ok(uri).kind {
            RouteKind::Udp(u) => u.packing,
            other => panic!("not UDP: {other:?}"),
        };
        assert_eq!(packing("syslog://h:514"), Packing::Whole { format: rfc5424, max_size: 2048 });
        assert_eq!(
            packing("syslog+udp://h:514?max_size=1400&format=rfc3164&facility=daemon"),
            Packing::Whole { format: bsd, max_size: 1400 }
        );
        // Any whole-datagram route takes a format: uncompressed GELF in one datagram.
        assert_eq!(packing("json+udp://h:1?format=gelf"), Packing::Whole { format: Format::Gelf, max_size: 65_507 });
    }

    #[test]
    fn http_routes_post_to_a_path_with_headers_whose_values_are_never_shown() {
        let spec = ok("gelf+http://graylog:12201?header=Authorization:Bearer%20s3cret&header=X-Team:pay");
        let RouteKind::Http(http) = &spec.kind else { panic!("not HTTP: {:?}", spec.kind) };
        assert_eq!(
            (http.path.as_str(), http.payload, http.compress, http.max_body),
            ("/gelf", Payload::Gelf, BodyEncoding::Gzip, 65_536)
        );
        assert!(http.tls.is_none());
        let headers: Vec<(&str, &[u8])> = http.headers.iter().map(|h| (h.name.as_str(), h.value.as_bytes())).collect();
        assert_eq!(headers, [("authorization", &b"Bearer s3cret"[..]), ("x-team", &b"pay"[..])]);
        assert_eq!(spec.shown, "gelf+http://graylog:12201?header=Authorization:***&header=X-Team:***");
        let spec = ok("gelf+https://graylog:443/in/gelf?bulk=true&compress=none&max_body=1024");
        let RouteKind::Http(http) = &spec.kind else { panic!("not HTTP: {:?}", spec.kind) };
        assert_eq!(
            (http.path.as_str(), http.payload, http.compress, http.max_body),
            ("/in/gelf", Payload::GelfBulk, BodyEncoding::Identity, 1024)
        );
        assert!(http.tls.is_some());
        let spec = ok("otlp+https://collector:4318?header=Authorization:Basic%20eA%3D%3D");
        let RouteKind::Http(otlp) = &spec.kind else { panic!("not HTTP: {:?}", spec.kind) };
        assert_eq!((otlp.path.as_str(), otlp.payload, otlp.max_body), ("/v1/logs", Payload::Otlp, 4 << 20));
        assert_eq!(spec.shown, "otlp+https://collector:4318?header=Authorization:***");
        // A bad route's error hides the header too.
        let err = "gelf+http://h:1?header=Authorization:s3cret&bulk=maybe".parse::<RouteSpec>().expect_err("bad");
        assert!(!err.to_string().contains("s3cret") && err.to_string().contains("option bulk"), "{err}");
    }

    #[test]
    fn gelf_tcp_and_stdout() {
        let spec = ok("gelf+tcp://[::1]:12201");
        let tcp = TcpRoute {
            addr: HostPort { host: "::1".into(), port: 12201 },
            format: Format::Gelf,
            framing: Framing::Nul,
            tls: None,
            timeout: Duration::from_secs(30),
            keepalive: Duration::from_secs(15),
        };
        assert_eq!(spec.kind, RouteKind::Tcp(tcp));
        assert!(matches!(
            ok("gelf+tcp://h:1?timeout=5s&keepalive=2s").kind,
            RouteKind::Tcp(TcpRoute { timeout, keepalive, .. })
                if timeout == Duration::from_secs(5) && keepalive == Duration::from_secs(2)
        ));
        assert_eq!(spec.when_full, WhenFull::Block);
        assert_eq!(ok("gelf+tcp://[::1]:12201").kind.to_owned(), spec.kind);
        assert_eq!(ok("stdout://").kind, RouteKind::Stdout);
        assert_eq!(ok("stdout://?queue=3").queue, 3);
        // A scheme is a row of defaults; format and framing override them.
        let framed = |uri: &str| match ok(uri).kind {
            RouteKind::Tcp(t) => (t.format, t.framing),
            other => panic!("not TCP: {other:?}"),
        };
        assert_eq!(framed("json+tcp://h:1"), (Format::Json, Framing::Newline));
        assert_eq!(framed("gelf+tls://h:1"), (Format::Gelf, Framing::Nul));
        assert_eq!(framed("json+tls://h:1"), (Format::Json, Framing::Newline));
        assert_eq!(framed("gelf+tcp://h:1?framing=newline"), (Format::Gelf, Framing::Newline));
        assert_eq!(framed("json+tcp://h:1?format=gelf&framing=nul"), (Format::Gelf, Framing::Nul));
        let spec = ok("gelf+tcp://h:1?backoff=250ms&backoff_max=5s");
        assert_eq!(spec.backoff, Backoff::new(Duration::from_millis(250), Duration::from_secs(5)));
    }

    #[test]
    fn every_error_names_the_bad_part() {
        let cases = [
            ("graylog:12201", "expected SCHEME://"),
            ("://graylog:12201", "missing scheme"),
            ("syslg+tcp://h:1", "unknown scheme 'syslg+tcp' (did you mean 'syslog+tcp'?)"),
            ("otlp://h:1", "unknown scheme 'otlp' (expected gelf, gelf+udp,"),
            ("json+tcp://h:1?format=xml", "option format: 'xml' is not gelf, json, rfc5424 or rfc3164"),
            ("gelf+tcp://h:1?framing=lf", "option framing: 'lf' is not nul, newline or octet-count"),
            ("syslog://h:1?facility=local8", "option facility: 'local8' is not a facility"),
            ("syslog+tcp://h:1?framing=octet-cont", "did you mean 'octet-count'"),
            ("gelf+tcp://h:1?facility=user", "unknown option 'facility' for gelf+tcp://"),
            ("syslog://h:1?framing=newline", "unknown option 'framing' for syslog://"),
            ("syslog://h:1?max_size=99", "option max_size: '99' is not a number from 100 to 65507"),
            ("gelf://h:1?framing=nul", "unknown option 'framing' for gelf://"),
            ("json+udp://h:1?compress=gzip", "unknown option 'compress' for json+udp://"),
            ("json+udp://h:1?max_size=99", "option max_size: '99' is not a number from 100 to 65507"),
            ("gelf://h:1?max_size=1000", "unknown option 'max_size' for gelf://"),
            ("gelf://", "missing HOST:PORT"),
            ("gelf://graylog", "missing port in 'graylog'"),
            ("gelf://:12201", "missing host"),
            ("gelf://gray log:1", "bad host 'gray log'"),
            ("gelf://graylog:0", "bad port '0'"),
            ("gelf://graylog:70000", "bad port '70000'"),
            ("gelf://graylog:http", "bad port 'http'"),
            ("gelf://[::1:1", "unclosed '['"),
            ("gelf://[zz]:1", "bad IPv6 address 'zz'"),
            ("gelf://[::1]", "missing port after '[::1]'"),
            ("gelf://h:1/path", "unexpected path '/path'"),
            ("syslog+tcp://h:1/path", "unexpected path '/path'"),
            ("gelf://h:1?compress=lz4", "option compress: unknown compression \"lz4\""),
            ("gelf://h:1?chunk_size=12", "option chunk_size: '12'"),
            ("gelf://h:1?chunk_size=70000", "option chunk_size: '70000'"),
            ("gelf://h:1?queue=0", "option queue: '0'"),
            ("gelf://h:1?when_full=later", "option when_full: unknown value 'later'"),
            ("gelf://h:1?verbose", "option 'verbose' has no value"),
            ("gelf://h:1?queue=1&queue=2", "option 'queue' is given twice"),
            ("gelf+tcp://h:1?compress=gzip", "unknown option 'compress' for gelf+tcp://"),
            ("stdout://somewhere:1", "stdout:// takes no host"),
            ("gelf+tcp://h:1?backoff=soon", "option backoff: 'soon'"),
            ("gelf+tcp://h:1?backoff_max=2h", "option backoff_max: '2h'"),
            ("gelf+tcp://h:1?backoff=10s&backoff_max=1s", "option backoff_max: 1s is below backoff 10s"),
            ("gelf+tcp://h:1?timeout=10ms", "option timeout: '10ms' is not a duration from 1s to 1h"),
            ("gelf+tcp://h:1?keepalive=forever", "option keepalive: 'forever'"),
            ("gelf://h:1?resolve_every=0s", "option resolve_every: '0s'"),
            ("gelf://h:1?timeout=5s", "unknown option 'timeout' for gelf://"),
            ("gelf+tcp://h:1?ca=/etc/ca.pem", "unknown option 'ca' for gelf+tcp://"),
            ("gelf+http://h:1?ca=/etc/ca.pem", "unknown option 'ca' for gelf+http://"),
            ("gelf+tcp://h:1?header=A:b", "unknown option 'header' for gelf+tcp://"),
            ("gelf+http://h:1?header=Authorization", "option header: '***' is not NAME:VALUE"),
            ("gelf+http://h:1?header=Host:x", "option header: host is spout's to set"),
            ("gelf+http://h:1?max_body=10", "option max_body: '10' is not a number from 1024"),
            ("gelf+http://h:1?compress=zlib", "option compress: 'zlib' is not gzip or none"),
            ("gelf+http://h:1/a b", "bad path '/a b'"),
            ("otlp+http://h:1?bulk=true", "unknown option 'bulk' for otlp+http://"),
            ("otlp+http://h:1?ca=/c.pem", "unknown option 'ca' for otlp+http://"),
            ("gelf+tls://h:1?ca=/nonexistent/ca.pem", "option ca: cannot read /nonexistent/ca.pem"),
            ("json+tls://h:1?cert=/c.pem", "option cert: given without key"),
            ("gelf+tls://h:1?sni=h", "unknown option 'sni' for gelf+tls://"),
        ];
        for (uri, expected) in cases {
            let got = problem(uri);
            assert!(got.contains(expected), "{uri}: {got:?} does not mention {expected:?}");
        }
    }

    #[test]
    fn filters_are_options_and_values_may_be_escaped() {
        let spec = ok("gelf+tcp://h:1?filter.name=ecs-web-*&filter.sources=stdout%2Cstderr&filter.labels=team:pay*");
        let mut options = [
            ("filter.name".to_owned(), "ecs-web-*".to_owned()),
            ("filter.sources".to_owned(), "stdout,stderr".to_owned()),
            ("filter.labels".to_owned(), "team:pay*".to_owned()),
        ]
        .into();
        assert_eq!(spec.filter, RouteFilter::from_options(&mut options).expect("valid"));
        assert_eq!(ok("stdout://").filter, RouteFilter::default());
        assert_eq!(percent_decode("a%2cb%20c"), Some("a,b c".into()));
        assert_eq!(percent_decode("100%"), None);
        assert_eq!(percent_decode("%+1"), None);
        assert!(problem("gelf://h:1?filter.name=a%zz").contains("option filter.name: bad %-escape"));
        assert!(problem("gelf://h:1?filter.sources=stdin").contains("option filter.sources: unknown source 'stdin'"));
    }

    #[test]
    fn display_brackets_ipv6() {
        assert_eq!(HostPort { host: "::1".into(), port: 1 }.to_string(), "[::1]:1");
        assert_eq!(HostPort { host: "h".into(), port: 1 }.to_string(), "h:1");
    }
}
