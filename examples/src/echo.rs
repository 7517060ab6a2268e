//! A small WebSocket echo server on raw async-tungstenite, for the demo, the tests and
//! the benchmarks: one place, so all of them talk to the same peer.
//!
//! It runs on its own thread with its own executor, and can be treated the way real
//! servers misbehave: [`EchoServer::kill`] drops the listener and every connection at
//! once (a crash: no Close frame), [`EchoServer::freeze`] keeps every connection open but
//! stops reading and answering (a half-open connection: no Pong, no echo). A new server
//! can then be started on the same address.

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;

use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use async_tungstenite::tungstenite::Message;
use futures_lite::io::{AsyncRead, AsyncWrite};
use futures_lite::{future, StreamExt};
use futures_util::SinkExt;
use smol::channel::{self, Sender};
use smol::net::{TcpListener, TcpStream};
use smol::LocalExecutor;

/// What the echo server saw, for a program that wants to show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// A WebSocket connection was accepted.
    Accepted(SocketAddr),
    /// A text message arrived and was echoed.
    Echoed(String),
    /// A binary message of this many bytes arrived and was echoed.
    EchoedBinary(usize),
    /// A connection ended.
    Disconnected(SocketAddr),
}

type Observer = Arc<dyn Fn(ServerEvent) + Send + Sync>;

/// A running echo server. Dropping it kills it, like [`EchoServer::kill`].
pub struct EchoServer {
    addr: SocketAddr,
    frozen: Arc<AtomicBool>,
    stop: Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for EchoServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoServer")
            .field("addr", &self.addr)
            .field("frozen", &self.frozen.load(Ordering::Relaxed))
            .finish()
    }
}

impl EchoServer {
    /// Starts an echo server on `addr` (`127.0.0.1:0` picks a free port; see
    /// [`EchoServer::addr`]). Binding happens before this returns, so a client may
    /// connect at once.
    pub fn start(addr: SocketAddr) -> io::Result<EchoServer> {
        Self::start_inner(addr, None)
    }

    /// Like [`EchoServer::start`], calling `observer` (on the server's thread) for what
    /// the server sees.
    pub fn start_observed(
        addr: SocketAddr,
        observer: impl Fn(ServerEvent) + Send + Sync + 'static,
    ) -> io::Result<EchoServer> {
        Self::start_inner(addr, Some(Arc::new(observer)))
    }

    fn start_inner(addr: SocketAddr, observer: Option<Observer>) -> io::Result<EchoServer> {
        // std sets SO_REUSEADDR on Unix, so a killed server's port can be bound again at
        // once even with connections of the old one in TIME_WAIT.
        let std_listener = StdListener::bind(addr)?;
        let addr = std_listener.local_addr()?;
        let listener = TcpListener::try_from(std_listener)?;
        let frozen = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = channel::bounded::<()>(1);
        let thread_frozen = Arc::clone(&frozen);
        let thread = std::thread::Builder::new()
            .name(format!("echo-server-{}", addr.port()))
            .spawn(move || {
                let ex = Rc::new(LocalExecutor::new());
                // The accept loop is a task of its own: the future given to `run` is
                // polled whenever any task wakes, and an accept there would cost a
                // syscall per echo. It holds the executor weakly, so dropping `ex`
                // below still drops every task.
                ex.spawn(accept_loop(
                    Rc::downgrade(&ex),
                    listener,
                    thread_frozen,
                    observer,
                ))
                .detach();
                // Ends on `stop` or when every sender is gone.
                smol::block_on(ex.run(async {
                    let _ = stopped.recv().await;
                }));
                // Dropping the executor here cancels every connection task, which
                // drops (closes) their sockets without a Close frame.
                drop(ex);
            })?;
        Ok(EchoServer {
            addr,
            frozen,
            stop,
            thread: Some(thread),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops reading and answering on every connection, current and future, while
    /// keeping them open: pings go unanswered, messages are not echoed, handshakes do
    /// not complete. This is what a hung server or a silently dead path looks like.
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    /// Stops the server at once: the listener and every connection are closed without a
    /// Close frame, as when the process crashes. Returns when they are closed.
    pub fn kill(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.stop.try_send(());
        if let Some(thread) = self.thread.take() {
            // A panic on the server thread has already been printed; nothing to add.
            let _ = thread.join();
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The echo server's WebSocket configuration: a small read buffer, as heartline's
/// adapters use, so the server is not the bottleneck of a throughput benchmark
/// (tungstenite zero-fills its whole read buffer on every read; its 128 KiB default
/// costs more than the echo itself), and a write buffer that gathers a burst of echoes
/// into one write.
pub fn server_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(8 * 1024)
}

async fn accept_loop(
    ex: Weak<LocalExecutor<'static>>,
    listener: TcpListener,
    frozen: Arc<AtomicBool>,
    observer: Option<Observer>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of file descriptors or a connection reset before accept: keep serving.
            Err(_) => {
                async_io::Timer::after(std::time::Duration::from_millis(5)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let stream = Freezable {
            inner: stream,
            frozen: Arc::clone(&frozen),
        };
        let Some(executor) = ex.upgrade() else { return };
        executor
            .spawn(serve(stream, peer, observer.clone()))
            .detach();
    }
}

async fn serve(stream: Freezable, peer: SocketAddr, observer: Option<Observer>) {
    let notify = |e: ServerEvent| {
        if let Some(o) = &observer {
            o(e);
        }
    };
    let Ok(mut ws) =
        async_tungstenite::accept_async_with_config(stream, Some(server_config())).await
    else {
        return;
    };
    notify(ServerEvent::Accepted(peer));
    // Echo every message already received, then flush once: one write for a burst,
    // as a server built for throughput does.
    'connection: while let Some(Ok(first)) = ws.next().await {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            let event = observer.as_ref().and_then(|_| match &message {
                Message::Text(t) => Some(ServerEvent::Echoed(t.as_str().to_owned())),
                Message::Binary(b) => Some(ServerEvent::EchoedBinary(b.len())),
                _ => None,
            });
            // Pings are answered by tungstenite on the next read or flush; Close is
            // answered by tungstenite and the stream then ends.
            if matches!(message, Message::Text(_) | Message::Binary(_))
                && ws.feed(message).await.is_err()
            {
                break 'connection;
            }
            if let Some(event) = event {
                notify(event);
            }
            match future::poll_once(ws.next()).await {
                Some(Some(Ok(more))) => next = Some(more),
                Some(Some(Err(_)) | None) => {
                    let _ = ws.flush().await;
                    break 'connection;
                }
                None => {}
            }
        }
        if ws.flush().await.is_err() {
            break;
        }
    }
    notify(ServerEvent::Disconnected(peer));
}

/// A TCP stream that stops moving bytes once the server is frozen.
struct Freezable {
    inner: TcpStream,
    frozen: Arc<AtomicBool>,
}

impl AsyncRead for Freezable {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if self.frozen.load(Ordering::SeqCst) {
            // Never woken: a frozen server stays frozen until it is killed.
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Freezable {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.frozen.load(Ordering::SeqCst) {
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.frozen.load(Ordering::SeqCst) {
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn connect(addr: SocketAddr) -> async_tungstenite::WebSocketStream<TcpStream> {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let (ws, _) = async_tungstenite::client_async(format!("ws://{addr}/"), tcp)
            .await
            .expect("handshake");
        ws
    }

    #[test]
    fn echoes_dies_and_comes_back_on_the_same_port() {
        smol::block_on(async {
            let (tx, rx) = std::sync::mpsc::channel();
            let server = EchoServer::start_observed(([127, 0, 0, 1], 0).into(), move |e| {
                let _ = tx.send(e);
            })
            .expect("start");
            let addr = server.addr();
            let mut ws = connect(addr).await;
            ws.send(Message::text("héllo")).await.expect("send");
            let echoed = ws.next().await.expect("echo").expect("echo");
            assert_eq!(echoed, Message::text("héllo"));
            assert!(matches!(rx.recv(), Ok(ServerEvent::Accepted(_))));
            assert_eq!(rx.recv().ok(), Some(ServerEvent::Echoed("héllo".into())));

            server.kill();
            // Killed: the connection ends without a Close frame.
            match ws.next().await {
                None | Some(Err(_)) => {}
                Some(Ok(m)) => panic!("got {m:?} from a killed server"),
            }

            let server = EchoServer::start(addr).expect("restart on the same port");
            let mut ws = connect(addr).await;
            ws.send(Message::binary(vec![1, 2, 3])).await.expect("send");
            let echoed = ws.next().await.expect("echo").expect("echo");
            assert_eq!(echoed, Message::binary(vec![1, 2, 3]));
            server.kill();
        });
    }
}
