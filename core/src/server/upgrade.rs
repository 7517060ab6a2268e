//! Upgrade validation: what the server decides about an HTTP upgrade request before it
//! answers 101, so a bad request gets a real HTTP status instead of a dropped socket.
//!
//! Everything here is a pure function of the request: [`UpgradeRules::check`] can be
//! called and tested without a server.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// The parts of an HTTP upgrade request that validation looks at, borrowed from the
/// driver's parsed request.
#[derive(Debug, Clone, Copy)]
pub struct UpgradeRequest<'a> {
    /// The request target as sent: path and optional query (`/ws/?name=alice`). An
    /// absolute target (`http://host/ws/`) is accepted too.
    pub target: &'a str,
    /// The request headers; names compare case-insensitively.
    pub headers: &'a [(&'a str, &'a [u8])],
}

impl<'a> UpgradeRequest<'a> {
    /// A request for `target` with `headers`.
    pub fn new(target: &'a str, headers: &'a [(&'a str, &'a [u8])]) -> Self {
        UpgradeRequest { target, headers }
    }

    /// The path, without the query, as sent (not percent-decoded).
    pub fn path(&self) -> &'a str {
        let origin = origin_form(self.target);
        let end = origin.find(['?', '#']).unwrap_or(origin.len());
        &origin[..end]
    }

    /// The raw query string (after `?`, not decoded), if there is one.
    pub fn query(&self) -> Option<&'a str> {
        let origin = origin_form(self.target);
        let start = origin.find('?')? + 1;
        let rest = &origin[start..];
        Some(&rest[..rest.find('#').unwrap_or(rest.len())])
    }

    /// The query's `key=value` pairs, percent-decoded (`+` is a space), in order.
    /// An item is an error when its escapes are malformed or decode to invalid UTF-8.
    pub fn params(&self) -> impl Iterator<Item = Result<(Cow<'a, str>, Cow<'a, str>), QueryError>> {
        self.query()
            .unwrap_or("")
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                Ok((percent_decode(k)?, percent_decode(v)?))
            })
    }

    /// The first value of query parameter `key`, decoded, like the browser's
    /// `URLSearchParams.get`.
    pub fn param(&self, key: &str) -> Result<Option<Cow<'a, str>>, QueryError> {
        for item in self.params() {
            let (k, v) = item?;
            if k == key {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// Strips `scheme://authority` from an absolute request target.
fn origin_form(target: &str) -> &str {
    if target.starts_with('/') {
        return target;
    }
    match target.find("://") {
        Some(i) => {
            let rest = &target[i + 3..];
            match rest.find(['/', '?']) {
                Some(j) => &rest[j..],
                None => "/",
            }
        }
        None => target,
    }
}

/// A query string that cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueryError {
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// The decoded bytes are not UTF-8.
    NotUtf8,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::BadEscape => f.write_str("malformed percent-escape in the query"),
            QueryError::NotUtf8 => f.write_str("query does not decode to UTF-8"),
        }
    }
}

impl std::error::Error for QueryError {}

/// Decodes `application/x-www-form-urlencoded` text: `%XX` escapes and `+` for space.
/// Borrows when there is nothing to decode.
pub fn percent_decode(s: &str) -> Result<Cow<'_, str>, QueryError> {
    if !s.contains(['%', '+']) {
        return Ok(Cow::Borrowed(s));
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|b| hex(*b));
                let lo = bytes.get(i + 2).and_then(|b| hex(*b));
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(QueryError::BadEscape);
                };
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| QueryError::NotUtf8)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Which request paths the server accepts. Paths compare as sent, without
/// percent-decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRule {
    /// Any path.
    Any,
    /// Exactly this path (`/ws/` matches `/ws/` and `/ws/?name=a`, not `/ws` or `/ws/x`).
    Exact(String),
    /// Any path starting with this (`/ws/` matches `/ws/` and `/ws/room1`).
    Prefix(String),
}

impl PathRule {
    /// Whether `path` is accepted.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathRule::Any => true,
            PathRule::Exact(p) => path == p,
            PathRule::Prefix(p) => path.starts_with(p.as_str()),
        }
    }
}

/// A user function picking a client's name from its request.
pub type NameFn = Arc<dyn Fn(&UpgradeRequest<'_>) -> Option<String> + Send + Sync>;

/// A user function deciding whether a request may connect (authentication): it sees the
/// path, query and headers and accepts, or rejects with a status and body.
pub type AuthorizeFn = Arc<dyn Fn(&UpgradeRequest<'_>) -> Result<(), Rejection> + Send + Sync>;

/// Where a client's registry name comes from.
#[derive(Clone)]
pub enum NameSource {
    /// Clients are anonymous: not in the registry (still pinged, evicted, broadcast to).
    None,
    /// This query parameter, percent-decoded (seed 002's `?name=`).
    Query(String),
    /// The last segment of the path, percent-decoded (seed 003's `/websocket/name`,
    /// seed 000's `uid`); an empty last segment means no name.
    LastSegment,
    /// A user function.
    Custom(NameFn),
}

impl fmt::Debug for NameSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameSource::None => f.write_str("None"),
            NameSource::Query(k) => f.debug_tuple("Query").field(k).finish(),
            NameSource::LastSegment => f.write_str("LastSegment"),
            NameSource::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// Which web pages may open a WebSocket to this server, judged by the `Origin` header a
/// browser sends with every handshake. A request without `Origin` (a non-browser client)
/// is always accepted: only a browser acts on behalf of a user who did not choose the
/// page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginRule {
    /// Pages of this server (the `Origin`'s `host[:port]` is the request's `Host`), and
    /// the listed origins (`https://app.example`, compared without regard to case).
    /// Anything else gets 403.
    SameHost {
        /// Origins allowed besides the server's own.
        allow: Vec<String>,
    },
    /// Any page: for a server that authenticates every handshake with something a
    /// browser does not attach by itself (a token in the URL, not a cookie).
    Any,
}

impl Default for OriginRule {
    /// `SameHost` with nothing else allowed. A browser sends cookies with a cross-site
    /// WebSocket handshake and no CORS check applies, so without this rule any site a
    /// logged-in user visits could talk to the server as that user (cross-site WebSocket
    /// hijacking); gorilla/websocket and Phoenix refuse such requests by default too.
    fn default() -> Self {
        OriginRule::SameHost { allow: Vec::new() }
    }
}

impl OriginRule {
    /// Whether a request with these `Origin` and `Host` header values is allowed.
    pub fn allows(&self, origin: Option<&[u8]>, host: Option<&[u8]>) -> bool {
        let OriginRule::SameHost { allow } = self else {
            return true;
        };
        let Some(origin) = origin else {
            return true;
        };
        let Ok(origin) = std::str::from_utf8(origin).map(str::trim) else {
            return false;
        };
        if allow
            .iter()
            .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin))
        {
            return true;
        }
        // `scheme://host[:port]`; `null` (a sandboxed or file page) has no host.
        let authority = origin.split_once("://").map(|(_, rest)| rest);
        let host = host
            .and_then(|h| std::str::from_utf8(h).ok())
            .map(str::trim);
        match (authority, host) {
            (Some(a), Some(h)) => !a.is_empty() && !a.contains('/') && a.eq_ignore_ascii_case(h),
            _ => false,
        }
    }
}

/// How an upgrade request is judged. `Default` suits seed 002's clients
/// (`ws://host/ws/?name=alice`).
///
/// Non-exhaustive, so that new settings are not breaking changes: start from
/// `UpgradeRules::default()` and set the fields you need.
#[derive(Clone)]
#[non_exhaustive]
pub struct UpgradeRules {
    /// Which paths are served; others get 404.
    ///
    /// Default `Exact("/ws/")`: seed 002's path. Seed 002 itself accepts any path that
    /// *contains* `/ws/`; an exact match is stricter on purpose, so a mistyped URL fails
    /// with 404 instead of landing on the WebSocket endpoint. Use
    /// [`PathRule::Prefix`] to serve a subtree.
    pub path: PathRule,
    /// Where the registry name comes from.
    ///
    /// Default `Query("name")`: seed 002's `?name=`.
    pub name: NameSource,
    /// Whether a request without a name is refused with 400.
    ///
    /// Default `true`: the registry is keyed by name and a nameless client cannot be
    /// addressed. With `false` such clients connect anonymously.
    pub name_required: bool,
    /// Longest accepted name in bytes (after decoding); longer ones get 400.
    ///
    /// Default 128: ample for user ids and device names, and keeps a client from
    /// parking kilobytes in the registry.
    pub max_name_len: usize,
    /// Which web pages may connect; others get 403.
    ///
    /// Default [`OriginRule::SameHost`] with no other origin (see its `Default` for why).
    pub origin: OriginRule,
    /// Authentication, run after the path, origin, query and name checks pass. Default
    /// `None`.
    pub authorize: Option<AuthorizeFn>,
}

impl Default for UpgradeRules {
    fn default() -> Self {
        UpgradeRules {
            path: PathRule::Exact("/ws/".to_owned()),
            name: NameSource::Query("name".to_owned()),
            name_required: true,
            max_name_len: 128,
            origin: OriginRule::default(),
            authorize: None,
        }
    }
}

impl fmt::Debug for UpgradeRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpgradeRules")
            .field("path", &self.path)
            .field("name", &self.name)
            .field("name_required", &self.name_required)
            .field("max_name_len", &self.max_name_len)
            .field("origin", &self.origin)
            .field("authorize", &self.authorize.as_ref().map(|_| ".."))
            .finish()
    }
}

/// A request that may be upgraded, with the name to register it under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The registry name, if the client has one.
    pub name: Option<String>,
}

/// A refused upgrade: answer with this HTTP status and body instead of 101.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The HTTP status (400-599).
    pub status: u16,
    /// A short plain-text body saying why.
    pub body: Cow<'static, str>,
}

impl Rejection {
    /// A rejection with `status` and `body`.
    pub fn new(status: u16, body: impl Into<Cow<'static, str>>) -> Self {
        Rejection {
            status,
            body: body.into(),
        }
    }

    /// 400: the request is malformed or misses something required.
    pub fn bad_request(body: impl Into<Cow<'static, str>>) -> Self {
        Rejection::new(400, body)
    }

    /// 401: no or bad credentials.
    pub fn unauthorized() -> Self {
        Rejection::new(401, "unauthorized")
    }

    /// 403: credentials fine, access refused.
    pub fn forbidden() -> Self {
        Rejection::new(403, "forbidden")
    }

    /// 404: nothing is served at this path.
    pub fn not_found() -> Self {
        Rejection::new(404, "not found")
    }

    /// 503: the server is shutting down or full.
    pub fn unavailable(body: impl Into<Cow<'static, str>>) -> Self {
        Rejection::new(503, body)
    }

    /// The standard reason phrase for the status line (`Not Found`).
    pub fn reason_phrase(&self) -> &'static str {
        match self.status {
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            409 => "Conflict",
            410 => "Gone",
            426 => "Upgrade Required",
            429 => "Too Many Requests",
            500 => "Internal Server Error",
            503 => "Service Unavailable",
            s if s < 500 => "Client Error",
            _ => "Server Error",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {} {}", self.status, self.body)
    }
}

impl std::error::Error for Rejection {}

impl UpgradeRules {
    /// Judges `req`: path (404), origin (403), query (400), name (400), then the
    /// `authorize` callback (its own status; one outside 400-599 is answered as 403).
    pub fn check(&self, req: &UpgradeRequest<'_>) -> Result<Accepted, Rejection> {
        let path = req.path();
        if !self.path.matches(path) {
            return Err(Rejection::not_found());
        }
        if !self.origin.allows(req.header("origin"), req.header("host")) {
            return Err(Rejection::new(403, "cross-origin request refused"));
        }
        if let Some(Err(e)) = req.params().find(|p| p.is_err()) {
            return Err(Rejection::bad_request(match e {
                QueryError::BadEscape => "bad query: malformed percent-escape",
                QueryError::NotUtf8 => "bad query: not UTF-8",
            }));
        }
        let name = match &self.name {
            NameSource::None => None,
            NameSource::Query(key) => req.param(key).ok().flatten().map(Cow::into_owned),
            NameSource::LastSegment => {
                let last = path.rsplit('/').next().unwrap_or("");
                match percent_decode(last) {
                    Ok(s) => Some(s.into_owned()),
                    Err(_) => return Err(Rejection::bad_request("bad path: malformed name")),
                }
            }
            NameSource::Custom(f) => f(req),
        }
        .filter(|n| !n.is_empty());
        match &name {
            None if self.name_required => {
                return Err(Rejection::bad_request("missing name"));
            }
            Some(n) if n.len() > self.max_name_len => {
                return Err(Rejection::bad_request("name too long"));
            }
            Some(n) if n.chars().any(char::is_control) => {
                return Err(Rejection::bad_request("invalid name"));
            }
            _ => {}
        }
        if let Some(authorize) = &self.authorize {
            if let Err(mut rejection) = authorize(req) {
                if !(400..=599).contains(&rejection.status) {
                    rejection.status = 403;
                }
                return Err(rejection);
            }
        }
        Ok(Accepted { name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_target() {
        let r = UpgradeRequest::new("/ws/?name=a%20b&x", &[]);
        assert_eq!(r.path(), "/ws/");
        assert_eq!(r.query(), Some("name=a%20b&x"));
        assert_eq!(r.param("name").unwrap().as_deref(), Some("a b"));
        assert_eq!(r.param("x").unwrap().as_deref(), Some(""));
        assert_eq!(r.param("y").unwrap(), None);
        let abs = UpgradeRequest::new("http://h:1/ws/?name=z", &[]);
        assert_eq!(abs.path(), "/ws/");
        assert_eq!(abs.param("name").unwrap().as_deref(), Some("z"));
    }

    #[test]
    fn decodes_percent_and_plus() {
        assert_eq!(percent_decode("a+b%2Bc%e4%b8%ad").unwrap(), "a b+c中");
        assert_eq!(percent_decode("%4"), Err(QueryError::BadEscape));
        assert_eq!(percent_decode("%zz"), Err(QueryError::BadEscape));
        assert_eq!(percent_decode("%ff"), Err(QueryError::NotUtf8));
        assert!(matches!(
            percent_decode("plain"),
            Ok(Cow::Borrowed("plain"))
        ));
    }

    fn with(origin: &str, host: &str) -> bool {
        let headers: [(&str, &[u8]); 2] =
            [("Origin", origin.as_bytes()), ("Host", host.as_bytes())];
        UpgradeRules::default()
            .check(&UpgradeRequest::new("/ws/?name=a", &headers))
            .is_ok()
    }

    #[test]
    fn a_page_of_this_server_may_connect_and_one_of_another_site_may_not() {
        assert!(with("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(with("https://Chat.Example", "chat.example"));
        assert!(!with("https://evil.example", "127.0.0.1:8080"));
        // Another port is another origin.
        assert!(!with("http://127.0.0.1:9090", "127.0.0.1:8080"));
        assert!(!with("null", "127.0.0.1:8080"));
        assert!(!with("http://127.0.0.1:8080/x", "127.0.0.1:8080"));
        let refused = UpgradeRules::default()
            .check(&UpgradeRequest::new(
                "/ws/?name=a",
                &[("Origin", b"https://evil.example"), ("Host", b"h")],
            ))
            .unwrap_err();
        assert_eq!(refused.status, 403);
    }

    #[test]
    fn a_client_without_origin_is_not_a_browser_and_may_connect() {
        let req = UpgradeRequest::new("/ws/?name=a", &[("Host", b"127.0.0.1:1")]);
        assert!(UpgradeRules::default().check(&req).is_ok());
    }

    #[test]
    fn listed_origins_and_any_origin_are_let_in() {
        let listed = OriginRule::SameHost {
            allow: vec!["https://app.example/".to_owned()],
        };
        assert!(listed.allows(Some(b"https://APP.example"), Some(b"api.example")));
        assert!(!listed.allows(Some(b"https://other.example"), Some(b"api.example")));
        assert!(OriginRule::Any.allows(Some(b"https://evil.example"), Some(b"api.example")));
        assert!(!OriginRule::default().allows(Some(b"https://a.example"), None));
    }

    proptest::proptest! {
        #[test]
        fn decoding_never_panics(text in ".*") {
            let _ = percent_decode(&text);
            let req = UpgradeRequest::new(&text, &[]);
            let _ = UpgradeRules::default().check(&req);
        }

        #[test]
        fn decoding_undoes_encoding(value in ".*", key in "[a-z]{1,5}") {
            let mut encoded = String::new();
            for b in value.bytes() {
                match b {
                    b' ' => encoded.push('+'),
                    b if b.is_ascii_alphanumeric() => encoded.push(b as char),
                    b => encoded.push_str(&format!("%{b:02X}")),
                }
            }
            let target = format!("/ws/?{key}={encoded}&z=1");
            let req = UpgradeRequest::new(&target, &[]);
            let decoded = req.param(&key).unwrap();
            proptest::prop_assert_eq!(decoded.as_deref(), Some(value.as_str()));
        }
    }
}
