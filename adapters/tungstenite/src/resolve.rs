//! Name resolution that a connect timeout can bound.
//!
//! The standard library resolves names with the OS resolver, which blocks for as long
//! as it takes and cannot be cancelled. Resolving on a thread of its own lets a client
//! stop waiting when its connect timeout passes; the thread ends whenever the resolver
//! answers, and its answer is then dropped.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// What a resolution gave: the addresses, or why there are none.
pub type Resolved = io::Result<Vec<SocketAddr>>;

/// Resolves `host:port` and hands the answer to `deliver`: at once for an IP address,
/// otherwise from a new thread. An error means that thread could not be started.
pub fn resolve(
    host: &str,
    port: u16,
    deliver: impl FnOnce(Resolved) + Send + 'static,
) -> io::Result<()> {
    // IPv6 literals come without brackets from the URL parser.
    if let Ok(ip) = host.parse::<IpAddr>() {
        deliver(Ok(vec![SocketAddr::new(ip, port)]));
        return Ok(());
    }
    let host = host.to_owned();
    std::thread::Builder::new()
        .name("heartline-resolve".into())
        .spawn(move || {
            let result = (host.as_str(), port)
                .to_socket_addrs()
                .map(|addrs| addrs.collect());
            deliver(result);
        })
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    fn resolved(host: &str) -> Resolved {
        let (tx, rx) = mpsc::channel();
        resolve(host, 9001, move |r| drop(tx.send(r))).expect("resolver thread");
        rx.recv_timeout(Duration::from_secs(10)).expect("an answer")
    }

    #[test]
    fn ip_literals_need_no_resolver() {
        let v4 = resolved("127.0.0.1").expect("v4");
        assert_eq!(v4, vec!["127.0.0.1:9001".parse().unwrap()]);
        let v6 = resolved("::1").expect("v6");
        assert_eq!(v6, vec!["[::1]:9001".parse().unwrap()]);
    }

    #[test]
    fn names_are_resolved_on_a_thread() {
        let addrs = resolved("localhost").expect("localhost resolves");
        assert!(!addrs.is_empty());
        assert!(addrs
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 9001));
    }
}
