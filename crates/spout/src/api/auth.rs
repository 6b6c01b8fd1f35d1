//! Who may use what on the TCP address: with `--api-token`, /logs, /containers and /routes need
//! `Authorization: Bearer TOKEN`; without one, changing routes is refused unless the API listens
//! on loopback only (anyone who can reach it could otherwise send the host's logs anywhere). On
//! the Unix socket, its permissions decide: whoever can connect may do everything.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::state::{error, ApiState};

/// Lets a request through only with the right token, when there is one.
pub async fn require_token(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        if !given.is_some_and(|given| same(given.as_bytes(), token.as_bytes())) {
            let mut refused = error(
                StatusCode::UNAUTHORIZED,
                "this endpoint needs Authorization: Bearer TOKEN (--api-token)".to_owned(),
            );
            refused.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return refused;
        }
    }
    next.run(request).await
}

/// Lets a request that changes something through only with a token or on loopback.
pub async fn guard_changes(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    if state.token.is_none() && !state.local && !request.method().is_safe() {
        return error(
            StatusCode::FORBIDDEN,
            "changes need --api-token when the API listens beyond loopback; `spout routes` makes them through the API socket, with none".to_owned(),
        );
    }
    next.run(request).await
}

/// Compares in time that depends on the lengths only, not on where the bytes differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"s3cret", b"s3cret"));
        assert!(!same(b"s3cret", b"s3creT"));
        assert!(!same(b"s3cret", b"s3cre"));
        assert!(!same(b"", b"x"));
    }
}
