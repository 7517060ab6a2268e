//! The TCP stream the default connector and the listen helpers use: an async-io
//! socket that takes a short read to mean the socket is drained.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use async_io::{Async, ReadableOwned, WritableOwned};
use futures_lite::{AsyncRead, AsyncWrite, Future};

/// A TCP stream on the async-io reactor (the one smol and async-std share).
///
/// A read that fills less than the buffer it was given has most likely emptied the
/// socket. The next read then waits for the reactor to report the socket readable
/// instead of trying the socket first, which would cost a system call that finds it
/// empty: WebSocket messages are read until the stream has no more, so without this
/// every burst of messages would end with such a call. Nothing is missed when the
/// guess is wrong: waiting re-arms the socket's readiness, and the reactor reports
/// at once data that is already there.
///
/// After a wake-up it reads again at once, like async-net's stream (the one
/// `smol::net` re-exports); a bare `Async<TcpStream>` would read a second time.
#[derive(Debug)]
pub struct TcpStream {
    inner: Arc<Async<std::net::TcpStream>>,
    readable: Option<ReadableOwned<std::net::TcpStream>>,
    writable: Option<WritableOwned<std::net::TcpStream>>,
    /// The last read was short: wait for readiness before reading again.
    drained: bool,
}

impl TcpStream {
    /// Wraps a socket already registered with the reactor.
    pub fn new(inner: Async<std::net::TcpStream>) -> Self {
        TcpStream {
            inner: Arc::new(inner),
            readable: None,
            writable: None,
            drained: false,
        }
    }

    /// The socket.
    pub fn get_ref(&self) -> &std::net::TcpStream {
        self.inner.get_ref()
    }
}

impl From<Async<std::net::TcpStream>> for TcpStream {
    fn from(inner: Async<std::net::TcpStream>) -> Self {
        TcpStream::new(inner)
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        loop {
            if !this.drained {
                match this.inner.get_ref().read(buf) {
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                    res => {
                        this.readable = None;
                        this.drained = matches!(res, Ok(n) if n > 0 && n < buf.len());
                        return Poll::Ready(res);
                    }
                }
            }
            // A fresh wait for each time the socket ran dry: it registers anew, so a
            // readiness that was already reported does not count twice.
            let inner = &this.inner;
            let readable = this
                .readable
                .get_or_insert_with(|| Arc::clone(inner).readable_owned());
            let res = ready!(Pin::new(readable).poll(cx));
            this.readable = None;
            this.drained = false;
            res?;
        }
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        loop {
            match this.inner.get_ref().write(buf) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                res => {
                    this.writable = None;
                    return Poll::Ready(res);
                }
            }
            let inner = &this.inner;
            let writable = this
                .writable
                .get_or_insert_with(|| Arc::clone(inner).writable_owned());
            let res = ready!(Pin::new(writable).poll(cx));
            this.writable = None;
            res?;
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Writes go straight to the socket.
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.inner.get_ref().shutdown(Shutdown::Write))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::{future, AsyncReadExt};
    use std::time::Duration;

    /// A connected pair on 127.0.0.1: a plain socket and a [`TcpStream`].
    fn pair() -> (std::net::TcpStream, TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let peer =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (ours, _) = listener.accept().expect("accept");
        let ours = TcpStream::new(Async::new(ours).expect("register"));
        (peer, ours)
    }

    /// Runs `f` with a generous deadline: a lost wake-up fails instead of hanging.
    fn within_patience<T>(f: impl Future<Output = T>) -> T {
        async_io::block_on(future::or(async { Some(f.await) }, async {
            async_io::Timer::after(Duration::from_secs(10)).await;
            None
        }))
        .expect("the read finished before the deadline")
    }

    #[test]
    fn data_that_arrived_after_a_short_read_is_still_read() {
        let (mut peer, mut ours) = pair();
        peer.write_all(b"abc").expect("write");
        let mut buf = [0u8; 64];
        let n = within_patience(ours.read(&mut buf));
        assert_eq!(&buf[..n.expect("read")], b"abc");
        assert!(ours.drained, "a short read counts as drained");
        // More arrives before the next read begins (on loopback the bytes are in our
        // socket's buffer once the write returns): waiting must not miss it.
        peer.write_all(b"def").expect("write");
        let n = within_patience(ours.read(&mut buf));
        assert_eq!(&buf[..n.expect("read")], b"def");
    }

    #[test]
    fn bytes_written_in_uneven_pieces_all_arrive_in_order() {
        let (mut peer, mut ours) = pair();
        // 200 KB in pieces of 1 to 700 bytes from another thread that often yields:
        // many reads come up short (60 to 120 in trial runs), and data arrives while
        // our side waits or is about to.
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let writer = std::thread::spawn(move || {
            let mut seed = 7u32;
            let mut at = 0;
            while at < sent.len() {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let len = (1 + (seed >> 16) as usize % 700).min(sent.len() - at);
                peer.write_all(&sent[at..at + len]).expect("write");
                at += len;
                if seed.is_multiple_of(4) {
                    std::thread::yield_now();
                }
            }
        });
        let mut got = Vec::with_capacity(data.len());
        let mut buf = vec![0u8; 16 * 1024];
        while got.len() < data.len() {
            let n = within_patience(ours.read(&mut buf)).expect("read");
            assert!(n > 0, "the stream ended after {} bytes", got.len());
            got.extend_from_slice(&buf[..n]);
        }
        writer.join().expect("writer");
        assert!(got == data, "the bytes arrived whole and in order");
    }

    #[test]
    fn a_full_read_reads_on_and_the_end_is_reported() {
        let (mut peer, mut ours) = pair();
        peer.write_all(b"abcdef").expect("write");
        drop(peer);
        let mut buf = [0u8; 3];
        let n = within_patience(ours.read(&mut buf)).expect("read");
        assert_eq!(n, 3);
        assert!(
            !ours.drained,
            "a read that filled its buffer may have left more"
        );
        let mut got = buf.to_vec();
        loop {
            let n = within_patience(ours.read(&mut buf)).expect("read");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"abcdef");
    }
}
