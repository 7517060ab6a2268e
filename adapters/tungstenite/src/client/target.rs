//! Where a connection attempt goes (URL, headers, endpoint) and how it failed.

use std::time::Duration;

use heartline_core::ConnectError;
use tungstenite::client::IntoClientRequest;
use tungstenite::http::{HeaderName, HeaderValue, Request, Response};

/// An error a connect callback may return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where one connection attempt goes: the URL and extra request headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectTarget {
    /// A `ws://` or `wss://` URL.
    pub url: String,
    /// Extra request headers (`Authorization`, `Cookie`, ...), in order.
    pub headers: Vec<(String, String)>,
}

impl ConnectTarget {
    /// A target with no extra headers.
    pub fn new(url: impl Into<String>) -> Self {
        ConnectTarget {
            url: url.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a request header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The handshake request and where to connect, or why they cannot be formed.
    pub fn resolve(&self) -> Result<(Request<()>, Endpoint), String> {
        let mut request = self
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| format!("bad URL {:?}: {e}", self.url))?;
        for (name, value) in &self.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("bad header name {name:?}"))?;
            let value =
                HeaderValue::from_str(value).map_err(|_| format!("bad value for header {name}"))?;
            request.headers_mut().append(name, value);
        }
        let uri = request.uri();
        let tls = match uri.scheme_str() {
            Some("wss") => true,
            Some("ws") => false,
            _ => return Err(format!("not a ws:// or wss:// URL: {uri}")),
        };
        let host = uri
            .host()
            .ok_or_else(|| format!("no host in {uri}"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok((request, Endpoint { host, port, tls }))
    }
}

/// Where a connection attempt connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Whether the URL is `wss://`.
    pub tls: bool,
}

/// A per-attempt callback: attempt number in, target out.
pub type TargetFn = dyn Fn(u32) -> Result<ConnectTarget, BoxError> + Send + Sync;

/// Why an attempt failed, owned (the core takes a borrowed [`ConnectError`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptError {
    /// The server answered the upgrade with this status.
    Http {
        /// The status.
        status: u16,
        /// The `Retry-After` delay, if sent in seconds.
        retry_after: Option<Duration>,
    },
    /// Anything else, described.
    Io(String),
}

impl AttemptError {
    /// As the core's event takes it.
    pub fn as_error(&self) -> ConnectError<'_> {
        match self {
            AttemptError::Http {
                status,
                retry_after,
            } => ConnectError::Http {
                status: *status,
                retry_after: *retry_after,
            },
            AttemptError::Io(e) => ConnectError::Io(e),
        }
    }
}

impl From<tungstenite::Error> for AttemptError {
    fn from(e: tungstenite::Error) -> Self {
        match e {
            tungstenite::Error::Http(response) => AttemptError::Http {
                status: response.status().as_u16(),
                retry_after: retry_after(&response),
            },
            other => AttemptError::Io(other.to_string()),
        }
    }
}

/// The `Retry-After` header as a delay: seconds, or an HTTP date (the time left until
/// it, nothing if it has passed). Nonsense is ignored: the core's own backoff applies.
fn retry_after<T>(response: &Response<T>) -> Option<Duration> {
    let value = response.headers().get("retry-after")?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(
        date.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http_error(status: u16, retry_after: Option<&str>) -> AttemptError {
        let mut response = Response::builder().status(status);
        if let Some(value) = retry_after {
            response = response.header("Retry-After", value);
        }
        let response = response.body(None).unwrap();
        AttemptError::from(tungstenite::Error::Http(Box::new(response)))
    }

    #[test]
    fn a_non_101_answer_keeps_its_status_and_retry_after_seconds() {
        assert_eq!(
            http_error(503, Some(" 7 ")),
            AttemptError::Http {
                status: 503,
                retry_after: Some(Duration::from_secs(7))
            }
        );
        // An HTTP date: the time left until it; one in the past asks for no wait.
        let in_a_minute = std::time::SystemTime::now() + Duration::from_secs(60);
        match http_error(503, Some(&httpdate::fmt_http_date(in_a_minute))) {
            AttemptError::Http {
                status: 503,
                retry_after: Some(left),
            } => assert!(
                left > Duration::from_secs(50) && left <= Duration::from_secs(60),
                "{left:?}"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            http_error(503, Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            AttemptError::Http {
                status: 503,
                retry_after: Some(Duration::ZERO)
            }
        );
        // Nonsense is ignored: the core's backoff applies.
        for value in ["-1", "soon", "Wed, 32 Oct 2015 07:28:00 GMT"] {
            assert_eq!(
                http_error(429, Some(value)),
                AttemptError::Http {
                    status: 429,
                    retry_after: None
                }
            );
        }
        assert_eq!(
            http_error(401, None),
            AttemptError::Http {
                status: 401,
                retry_after: None
            }
        );
    }

    #[test]
    fn other_failures_are_io_errors_with_a_description() {
        let e = AttemptError::from(tungstenite::Error::ConnectionClosed);
        assert!(
            matches!(e, AttemptError::Io(ref s) if !s.is_empty()),
            "{e:?}"
        );
    }

    #[test]
    fn a_target_names_host_port_and_scheme() {
        let (request, endpoint) = ConnectTarget::new("wss://[::1]/chat")
            .header("Authorization", "Bearer x")
            .resolve()
            .unwrap();
        assert_eq!(
            endpoint,
            Endpoint {
                host: "::1".into(),
                port: 443,
                tls: true
            }
        );
        assert_eq!(request.headers()["authorization"], "Bearer x");
        let (_, endpoint) = ConnectTarget::new("ws://example.com:8080/")
            .resolve()
            .unwrap();
        assert_eq!((endpoint.port, endpoint.tls), (8080, false));
    }

    #[test]
    fn a_bad_target_is_an_error_not_a_panic() {
        for url in ["http://example.com/", "not a url", "ws://"] {
            assert!(ConnectTarget::new(url).resolve().is_err(), "{url}");
        }
        let bad_header = ConnectTarget::new("ws://example.com/").header("Bad Name", "v");
        assert!(bad_header.resolve().is_err());
        let bad_value = ConnectTarget::new("ws://example.com/").header("X", "a\nb");
        assert!(bad_value.resolve().is_err());
    }
}
