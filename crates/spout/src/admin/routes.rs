//! `spout routes`: a running spout's routes, listed, added and removed through its `/routes`.

use std::time::Duration;

use serde::Deserialize;

use super::client::{self, Call, ClientError, Endpoint};

/// One route as `GET /routes` lists it, as far as the table shows it.
#[derive(Debug, Deserialize)]
pub struct Listed {
    pub id: String,
    pub uri: String,
    pub origin: String,
    pub state: String,
    pub last_error: Option<String>,
}

/// Adding a route starts its task and saves the API's routes (an fsync): quick, but not a
/// health check's quick.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The routes of the spout at `at`.
pub fn list(at: &Endpoint, token: Option<&str>) -> Result<Vec<Listed>, ClientError> {
    let body = client::call(at, Call { method: "GET", path: "/routes", body: None, timeout: TIMEOUT }, token)?;
    serde_json::from_slice(&body).map_err(|e| ClientError::Garbled { at: at.clone(), why: e.to_string() })
}

/// Adds the route `uri`; the route as added.
pub fn add(at: &Endpoint, token: Option<&str>, uri: &str) -> Result<Listed, ClientError> {
    let body = Some(serde_json::json!({ "uri": uri }).to_string());
    let body = client::call(at, Call { method: "POST", path: "/routes", body, timeout: TIMEOUT }, token)?;
    serde_json::from_slice(&body).map_err(|e| ClientError::Garbled { at: at.clone(), why: e.to_string() })
}

/// Removes the route with `id`.
pub fn remove(at: &Endpoint, token: Option<&str>, id: &str) -> Result<(), ClientError> {
    // The API's ids are hex digits; anything else goes %-escaped, for the API to refuse by name.
    let escaped: String = id
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() { char::from(b).to_string() } else { format!("%{b:02X}") })
        .collect();
    let path = format!("/routes/{escaped}");
    client::call(at, Call { method: "DELETE", path: &path, body: None, timeout: TIMEOUT }, token).map(drop)
}

/// The routes as a table.
pub fn table(routes: &[Listed]) -> String {
    let mut cells = vec![["ID", "ORIGIN", "STATE", "URI", "LAST ERROR"].map(str::to_owned).to_vec()];
    for r in routes {
        let error = r.last_error.clone().unwrap_or_else(|| "-".to_owned());
        cells.push(vec![r.id.clone(), r.origin.clone(), r.state.clone(), r.uri.clone(), error]);
    }
    super::columns(&cells, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_of_routes() {
        let routes = [
            Listed {
                id: "9f0c2b7e4d1a6c35".into(),
                uri: "gelf+tcp://graylog:12201".into(),
                origin: "cli".into(),
                state: "up".into(),
                last_error: None,
            },
            Listed {
                id: "0123456789abcdef".into(),
                uri: "gelf://logstash:12201".into(),
                origin: "api".into(),
                state: "down".into(),
                last_error: Some("logstash:12201: Connection refused".into()),
            },
        ];
        let t = table(&routes);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "ID                ORIGIN  STATE  URI                       LAST ERROR");
        assert_eq!(lines[1], "9f0c2b7e4d1a6c35  cli     up     gelf+tcp://graylog:12201  -");
        assert!(lines[2].ends_with("gelf://logstash:12201     logstash:12201: Connection refused"), "{t}");
    }
}
