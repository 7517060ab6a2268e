//! Listening sockets for heartline's servers, on every runtime.

use std::io;
use std::net::{SocketAddr, TcpListener};

/// The listen backlog: connections the kernel completes and holds until the server
/// accepts them.
///
/// 1024 instead of std's 128: when a server restarts, thousands of clients come back
/// within a second or two. With 128, the queue overflows between two accept loops,
/// the kernel drops the SYNs, and those clients only retry after TCP's 1 s (then
/// 3 s) retransmission timeout: stragglers seconds behind the rest, for no reason but
/// the queue. Measured with the storm bench (10,000 clients): a few hundred
/// `ListenOverflows` and a tail of late returns with 128; none with 1024. The kernel
/// caps it at `net.core.somaxconn` (4096 on current Linux).
pub const LISTEN_BACKLOG: i32 = 1024;

/// Binds the first of `addrs` that binds, listening with [`LISTEN_BACKLOG`].
pub fn listener(addrs: impl IntoIterator<Item = SocketAddr>) -> io::Result<TcpListener> {
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to bind");
    for addr in addrs {
        match TcpListener::bind(addr) {
            Ok(listener) => {
                // Listening again on a listening socket sets its backlog anew.
                rustix::net::listen(&listener, LISTEN_BACKLOG)?;
                return Ok(listener);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_the_first_address_that_binds() {
        let taken = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let busy = taken.local_addr().expect("its address");
        let free: SocketAddr = "127.0.0.1:0".parse().expect("an address");
        let bound = listener([busy, free]).expect("the second binds");
        assert_ne!(bound.local_addr().expect("bound").port(), busy.port());
        assert!(listener([busy]).is_err());
        assert!(listener([]).is_err());
    }
}
