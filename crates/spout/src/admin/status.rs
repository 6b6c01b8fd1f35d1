//! `spout status`: what a running spout is doing with each container, as a table for a person
//! on the host, from its `GET /containers`; and `spout health`, from its `GET /health`.

use std::time::Duration;

use serde::Deserialize;

use super::client::{self, Answer, Call, ClientError, Endpoint};

/// One row of `GET /containers`, as far as the table shows it.
#[derive(Debug, Deserialize)]
pub struct Row {
    pub name: String,
    pub state: String,
    pub reason: Option<String>,
    /// `files` or `api`, once its reader knows.
    #[serde(default)]
    pub source: Option<String>,
    pub lines_shipped: u64,
    pub last_read: Option<String>,
    pub last_accepted: Option<String>,
    pub routes: Vec<String>,
}

/// Asks the spout at `at` for its containers, with its API token if it has one.
pub fn fetch(at: &Endpoint, token: Option<&str>) -> Result<Vec<Row>, ClientError> {
    let call = Call { method: "GET", path: "/containers", body: None, timeout: TIMEOUT };
    let body = client::call(at, call, token)?;
    serde_json::from_slice(&body).map_err(|e| ClientError::Garbled { at: at.clone(), why: e.to_string() })
}

/// Whether the spout at `at` is healthy: `Err` says why not (its report's problems, or why it
/// could not be asked).
pub fn health(at: &Endpoint) -> Result<(), String> {
    let call = Call { method: "GET", path: "/health", body: None, timeout: TIMEOUT };
    let Answer { status, body } = client::answer(at, call, None).map_err(|e| e.to_string())?;
    if status == 200 {
        return Ok(());
    }
    let body = String::from_utf8_lossy(&body);
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

/// How long asking may take: less than the image's health-check timeout (5 s), so that a hung
/// API is reported by spout, with its reason, not by the timeout.
const TIMEOUT: Duration = Duration::from_secs(3);

/// The rows as a table: one line per container, sorted as the API sorts them.
pub fn table(rows: &[Row]) -> String {
    let header = ["NAME", "STATE", "SOURCE", "LINES", "LAST READ", "BEHIND", "ROUTES"].map(str::to_owned).to_vec();
    let mut cells = vec![header];
    for row in rows {
        let state = match &row.reason {
            Some(reason) => format!("{}: {reason}", row.state),
            None => row.state.clone(),
        };
        cells.push(vec![
            row.name.clone(),
            state,
            row.source.clone().unwrap_or_else(|| "-".to_owned()),
            row.lines_shipped.to_string(),
            row.last_read.clone().unwrap_or_else(|| "-".to_owned()),
            behind(row.last_read.as_deref(), row.last_accepted.as_deref()),
            if row.routes.is_empty() { "-".to_owned() } else { row.routes.join(",") },
        ]);
    }
    super::columns(&cells, &[3])
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
            source: Some("files".into()),
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
}
