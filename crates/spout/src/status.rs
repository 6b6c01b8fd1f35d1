//! `spout status`: what a running spout is doing with each container, as a table for a person
//! on the host, from its `GET /containers`.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde::Deserialize;

/// One row of `GET /containers`, as far as the table shows it.
#[derive(Debug, Deserialize)]
pub struct Row {
    pub name: String,
    pub state: String,
    pub reason: Option<String>,
    pub lines_shipped: u64,
    pub last_read: Option<String>,
    pub last_accepted: Option<String>,
    pub routes: Vec<String>,
}

/// Why the status could not be had.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("cannot reach spout's HTTP API at {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("spout's HTTP API at {addr} answered {status}: {body}")]
    Status { addr: String, status: u16, body: String },
    #[error("spout's HTTP API at {addr} answered something that is not a container list: {source}")]
    Body { addr: String, source: serde_json::Error },
}

/// Asks the spout listening on `addr` for its containers, with its API token if it has one.
pub fn fetch(addr: &str, token: Option<&str>) -> Result<Vec<Row>, StatusError> {
    let connect = |source| StatusError::Connect { addr: addr.to_owned(), source };
    let (status, body) = get(addr, "/containers", token).map_err(connect)?;
    if status != 200 {
        return Err(StatusError::Status { addr: addr.to_owned(), status, body });
    }
    serde_json::from_str(&body).map_err(|source| StatusError::Body { addr: addr.to_owned(), source })
}

/// Whether the spout listening on `addr` is healthy: `Err` says why not (its report's problems,
/// or why it could not be asked).
pub fn health(addr: &str) -> Result<(), String> {
    let (status, body) =
        get(addr, "/health", None).map_err(|e| format!("cannot reach spout's HTTP API at {addr}: {e}"))?;
    if status == 200 {
        return Ok(());
    }
    let problems = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v["problems"].as_array().map(|p| p.iter().filter_map(|p| p.as_str()).collect::<Vec<_>>().join("; "))
        })
        .filter(|p| !p.is_empty());
    Err(match problems {
        Some(problems) => format!("unhealthy ({status}): {problems}"),
        None => format!("unhealthy ({status}): {body}"),
    })
}

/// A plain HTTP/1.1 GET (the API is on the host, usually on loopback).
fn get(addr: &str, path: &str, token: Option<&str>) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&reachable(addr)?, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    let authorization = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{authorization}Connection: close\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response");
    let (head, body) = response.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let chunked = head.lines().any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding: chunked"));
    Ok((status, if chunked { dechunk(body) } else { body.to_owned() }))
}

/// How long asking may take: less than the image's health-check timeout (5 s), so that a hung
/// API is reported by spout, with its reason, not by the timeout.
const TIMEOUT: Duration = Duration::from_secs(3);

/// The address to connect to for an API listening on `addr`: one listening on every address
/// (`0.0.0.0:8000`, as in the image) is asked on loopback.
fn reachable(addr: &str) -> std::io::Result<std::net::SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, ToSocketAddrs};
    if addr == "off" {
        let off = "the HTTP API is off (--http off): there is nothing to ask";
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, off));
    }
    let mut found = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("'{addr}' has no address")))?;
    if found.ip().is_unspecified() {
        found.set_ip(if found.is_ipv4() { Ipv4Addr::LOCALHOST.into() } else { Ipv6Addr::LOCALHOST.into() });
    }
    Ok(found)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { break };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// The rows as a table: one line per container, sorted as the API sorts them.
pub fn table(rows: &[Row]) -> String {
    let header = ["NAME", "STATE", "LINES", "LAST READ", "BEHIND", "ROUTES"];
    let mut cells: Vec<[String; 6]> = vec![header.map(str::to_owned)];
    for row in rows {
        let state = match &row.reason {
            Some(reason) => format!("{}: {reason}", row.state),
            None => row.state.clone(),
        };
        cells.push([
            row.name.clone(),
            state,
            row.lines_shipped.to_string(),
            row.last_read.clone().unwrap_or_else(|| "-".to_owned()),
            behind(row.last_read.as_deref(), row.last_accepted.as_deref()),
            if row.routes.is_empty() { "-".to_owned() } else { row.routes.join(",") },
        ]);
    }
    let widths: Vec<usize> = (0..6).map(|i| cells.iter().map(|c| c[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in &cells {
        for (i, cell) in row.iter().enumerate() {
            if i == 5 {
                let _ = writeln!(out, "{cell}");
            } else if i == 2 {
                let _ = write!(out, "{cell:>w$}  ", w = widths[i]);
            } else {
                let _ = write!(out, "{cell:<w$}  ", w = widths[i]);
            }
        }
    }
    out
}

/// How far the lines every route accepted lag behind the lines read, in Docker's time.
fn behind(read: Option<&str>, accepted: Option<&str>) -> String {
    let parse = |t: Option<&str>| t.and_then(|t| crate::timestamp::parse_rfc3339_ns(t.as_bytes()));
    match (parse(read), parse(accepted)) {
        (Some(read), Some(accepted)) => format!("{:.1}s", (read - accepted).max(0) as f64 / 1e9),
        (Some(_), None) => "all".to_owned(),
        _ => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, state: &str, read: Option<&str>, accepted: Option<&str>) -> Row {
        Row {
            name: name.into(),
            state: state.into(),
            reason: None,
            lines_shipped: 12,
            last_read: read.map(str::to_owned),
            last_accepted: accepted.map(str::to_owned),
            routes: vec!["gelf+tcp://graylog:12201".into()],
        }
    }

    #[test]
    fn a_table_with_aligned_columns_and_how_far_behind() {
        let rows = [
            row("web", "caught_up", Some("2026-12-02T10:00:05Z"), Some("2026-12-02T10:00:05Z")),
            row("worker-1", "waiting_for_route", Some("2026-12-02T10:00:05.5Z"), Some("2026-12-02T10:00:01Z")),
            row("new", "reading", Some("2026-12-02T10:00:05Z"), None),
        ];
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("NAME      STATE"), "{t}");
        assert!(lines[1].contains("caught_up") && lines[1].contains(" 0.0s "), "{t}");
        assert!(lines[2].contains(" 4.5s "), "{t}");
        assert!(lines[3].contains(" all "), "{t}");
        let column = |l: &str| l.find("LAST READ").or_else(|| l.find("2026"));
        assert!(lines.iter().all(|l| column(l) == column(lines[0])), "aligned:\n{t}");
    }

    #[test]
    fn an_api_on_every_address_is_asked_on_loopback() {
        assert_eq!(reachable("0.0.0.0:8000").expect("valid").to_string(), "127.0.0.1:8000");
        assert_eq!(reachable("[::]:8000").expect("valid").to_string(), "[::1]:8000");
        assert_eq!(reachable("10.0.0.7:80").expect("valid").to_string(), "10.0.0.7:80");
        assert!(reachable("off").expect_err("off").to_string().contains("--http off"));
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), "hello world");
    }
}
