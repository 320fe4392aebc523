//! The console's security rules, applied to every request before any page: the `Host` header
//! must name the bound address (DNS rebinding), the one-time token becomes a session cookie,
//! a session locks after its idle limit, every POST carries the session's CSRF token, and
//! every response (errors too) carries the security
//! headers. Nothing here logs a request.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand_core::{OsRng, RngCore};

use super::i18n::{t, Lang};
use super::pages;
use super::upload;

/// The session cookie's name.
const COOKIE: &str = "trm_console";

/// The headers on every response.
const HEADERS: [(&str, &str); 6] = [
    (
        "content-security-policy",
        "default-src 'self'; script-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("cache-control", "no-store"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("x-content-type-options", "nosniff"),
    ("cross-origin-resource-policy", "same-origin"),
];

/// The one browser session (a new token exchange replaces it).
struct Live {
    id: String,
    csrf: String,
    last: Instant,
}

/// What the console guards: its bound address, the unused token, the session.
pub(crate) struct Guard {
    bound: SocketAddr,
    idle: Duration,
    token: Mutex<Option<String>>,
    live: Mutex<Option<Live>>,
}

/// The per-session CSRF token, handed to the pages (forms carry it, POSTs must match it).
#[derive(Clone)]
pub(crate) struct Csrf(pub(crate) String);

/// 32 random bytes from the OS, as hex.
fn random_hex() -> String {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Compares secrets in time independent of where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Why a request has no session.
enum NoSession {
    Missing,
    Locked,
}

impl Guard {
    pub(crate) fn new(bound: SocketAddr, idle: Duration) -> Self {
        Self {
            bound,
            idle,
            token: Mutex::new(None),
            live: Mutex::new(None),
        }
    }

    /// Makes a new one-time token and prints the console's link with it on stdout (the first
    /// line at start; again when a session locked).
    pub(crate) fn print_new_link(&self) {
        let token = random_hex();
        println!("http://{}/?token={token}", self.bound);
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(token);
    }

    /// The `Host` header names exactly the bound address.
    fn host_ok(&self, headers: &HeaderMap) -> bool {
        let want = self.bound.to_string();
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|h| h == want)
    }

    /// Spends the one-time token: a new session (replacing any other) and its cookie id.
    fn exchange(&self, given: &str) -> Option<String> {
        let mut token = self.token.lock().unwrap_or_else(|e| e.into_inner());
        if !token.as_deref().is_some_and(|t| same_secret(t, given)) {
            return None;
        }
        *token = None;
        let id = random_hex();
        *self.live.lock().unwrap_or_else(|e| e.into_inner()) = Some(Live {
            id: id.clone(),
            csrf: random_hex(),
            last: Instant::now(),
        });
        Some(id)
    }

    /// The session named by the request's cookie, touched; locks it (and prints a new link)
    /// when idle too long.
    fn session(&self, headers: &HeaderMap) -> Result<Csrf, NoSession> {
        let cookie = cookie_value(headers).ok_or(NoSession::Missing)?;
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let Some(s) = live.as_mut().filter(|s| same_secret(&s.id, &cookie)) else {
            return Err(NoSession::Missing);
        };
        if s.last.elapsed() > self.idle {
            *live = None;
            drop(live);
            self.print_new_link();
            return Err(NoSession::Locked);
        }
        s.last = Instant::now();
        Ok(Csrf(s.csrf.clone()))
    }
}

/// The session cookie's value, if the request has one.
fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The `token` parameter of a query string.
fn token_param(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| v)
}

/// The middleware: every rule, then the headers on whatever the answer is.
pub(crate) async fn guard(
    State(g): State<std::sync::Arc<Guard>>,
    req: Request,
    next: Next,
) -> Response {
    let mut response = gate(&g, req, next).await;
    let headers = response.headers_mut();
    for (name, value) in HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn gate(g: &Guard, mut req: Request, next: Next) -> Response {
    let lang = Lang::from_headers(req.headers());
    if !g.host_ok(req.headers()) {
        let text = t(
            lang,
            "This console answers only to its own address (the Host header named another).",
        );
        return pages::refusal(lang, StatusCode::MISDIRECTED_REQUEST, text);
    }
    if req.uri().path() == "/style.css" {
        return next.run(req).await;
    }
    if let Some(token) = token_param(req.uri().query()) {
        return match g.exchange(token) {
            Some(id) => signed_in(&id),
            None => pages::refusal(lang,
                StatusCode::UNAUTHORIZED,
                t(lang, "This link was already used or is not this console's: use the newest link the console printed in its terminal."),
            ),
        };
    }
    match g.session(req.headers()) {
        Ok(csrf) if req.method() == Method::POST => match with_csrf(lang, req, &csrf).await {
            Ok(mut req) => {
                req.extensions_mut().insert(csrf);
                next.run(req).await
            }
            Err(refused) => refused,
        },
        Ok(csrf) => {
            req.extensions_mut().insert(csrf);
            next.run(req).await
        }
        Err(NoSession::Missing) => pages::refusal(lang,
            StatusCode::UNAUTHORIZED,
            t(lang, "No session: open the link the console printed in its terminal."),
        ),
        Err(NoSession::Locked) => pages::refusal(lang,
            StatusCode::UNAUTHORIZED,
            t(lang, "The session locked after being idle: open the new link the console printed in its terminal."),
        ),
    }
}

/// The largest form body the console reads.
const FORM_LIMIT: usize = 64 * 1024;

/// The largest upload (a multipart form: an audit bundle to verify) the console reads.
pub(crate) const UPLOAD_LIMIT: usize = 32 * 1024 * 1024;

/// Every POST: its form body must carry the session's CSRF token (`csrf=…`); the request goes
/// on with its body intact, or the refusal (403) comes back. A multipart form (an upload) is
/// read here whole (up to [`UPLOAD_LIMIT`]) and parsed once: its `csrf` field is checked the
/// same way and the page gets the fields as an [`Upload`] extension.
async fn with_csrf(lang: Lang, req: Request, csrf: &Csrf) -> Result<Request, Response> {
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(upload::boundary);
    if let Some(boundary) = multipart {
        return with_csrf_upload(lang, req, csrf, &boundary).await;
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, FORM_LIMIT).await else {
        return Err(pages::refusal(
            lang,
            StatusCode::PAYLOAD_TOO_LARGE,
            t(lang, "The form is too large."),
        ));
    };
    let given = std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| {
            text.split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == "csrf")
                .map(|(_, v)| v.to_string())
        })
        .unwrap_or_default();
    if given.is_empty() || !same_secret(&csrf.0, &given) {
        let text = t(
            lang,
            "The form's CSRF token is missing or wrong: reload the page and submit again.",
        );
        return Err(pages::refusal(lang, StatusCode::FORBIDDEN, text));
    }
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
}

/// A multipart POST: refused (413) beyond [`UPLOAD_LIMIT`], (400) when not well formed, (403)
/// without the session's CSRF token in its `csrf` field.
async fn with_csrf_upload(
    lang: Lang,
    req: Request,
    csrf: &Csrf,
    boundary: &str,
) -> Result<Request, Response> {
    let (mut parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, UPLOAD_LIMIT).await else {
        let text = t(
            lang,
            "The upload is too large for the console (32 MiB at most): use trm-admin audit verify.",
        );
        return Err(pages::refusal(lang, StatusCode::PAYLOAD_TOO_LARGE, text));
    };
    let Some(form) = upload::parse(&bytes, boundary) else {
        let text = t(lang, "The upload is not a well-formed form.");
        return Err(pages::refusal(lang, StatusCode::BAD_REQUEST, text));
    };
    let given = form.text("csrf");
    if given.is_empty() || !same_secret(&csrf.0, &given) {
        let text = "The form's CSRF token is missing or wrong: reload the page and submit again.";
        return Err(pages::refusal(lang, StatusCode::FORBIDDEN, text));
    }
    parts.extensions.insert(form);
    Ok(Request::from_parts(parts, axum::body::Body::empty()))
}

/// The token became a session: set its cookie and go to the home page (the token leaves the
/// address bar).
fn signed_in(id: &str) -> Response {
    let cookie = format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/");
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/".to_string()),
            (header::SET_COOKIE, cookie),
        ],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        let cases = [
            ("abc", "abc", true),
            ("abc", "abd", false),
            ("abc", "ab", false),
            ("", "", true),
        ];
        for (a, b, want) in cases {
            assert_eq!(same_secret(a, b), want, "{a} {b}");
        }
    }

    #[test]
    fn the_token_is_found_in_the_query() {
        let cases = [
            (Some("token=ab"), Some("ab")),
            (Some("x=1&token=cd"), Some("cd")),
            (Some("tokens=ab"), None),
            (None, None),
        ];
        for (q, want) in cases {
            assert_eq!(token_param(q), want, "{q:?}");
        }
    }

    #[test]
    fn a_token_is_spent_once_and_the_host_must_match() {
        let g = Guard::new("127.0.0.1:4000".parse().unwrap(), Duration::from_secs(60));
        *g.token.lock().unwrap() = Some("t".repeat(64));
        assert!(g.exchange(&"u".repeat(64)).is_none());
        assert!(g.exchange(&"t".repeat(64)).is_some());
        assert!(g.exchange(&"t".repeat(64)).is_none(), "spent");
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:4000"));
        assert!(g.host_ok(&h));
        h.insert(header::HOST, HeaderValue::from_static("evil.example:4000"));
        assert!(!g.host_ok(&h));
        assert!(!g.host_ok(&HeaderMap::new()));
    }
}
