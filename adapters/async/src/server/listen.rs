//! Accept loops: one generic over any listener, and the smol and async-std helpers
//! that bind, spawn the driver and serve every connection.

use std::io;

use async_io::Timer;
use futures_lite::future;

use super::ServerHandle;

/// Accepts connections with `accept` and hands each to `spawn` (which should spawn
/// [`ServerHandle::serve`]), until the server has stopped. For runtimes without a
/// feature here: pass your listener's accept and your spawn function.
pub async fn accept_loop<S, A, F>(
    handle: ServerHandle,
    mut accept: A,
    spawn: impl Fn(ServerHandle, S),
) where
    A: FnMut() -> F,
    F: std::future::Future<Output = io::Result<S>>,
{
    loop {
        let accepted = future::or(async { Some(accept().await) }, async {
            handle.stopped().await;
            None
        })
        .await;
        match accepted {
            Some(Ok(stream)) => spawn(handle.clone(), stream),
            // Out of descriptors or a reset before accept: the core says when to try
            // again, instead of spinning.
            Some(Err(_)) => {
                let resume = handle.shared.with(|hub, now, _| hub.accept_failed(now));
                Timer::at(resume).await;
            }
            None => break,
        }
    }
}

/// The next connection on `listener`, as heartline's [`TcpStream`](crate::TcpStream)
/// (which spares a read of an empty socket after each burst of messages).
#[cfg(any(feature = "smol", feature = "async-std"))]
async fn accept_tcp(
    listener: std::sync::Arc<async_io::Async<std::net::TcpListener>>,
) -> io::Result<crate::TcpStream> {
    listener.accept().await.map(|(s, _)| s.into())
}

/// Listening and spawning on smol.
#[cfg(feature = "smol")]
pub mod smol {
    use std::future::Future;
    use std::sync::Arc;

    use super::{accept_loop, io};
    use crate::server::{Server, ServerConfig};

    /// Binds `addr`, spawns the driver and an accept loop on smol's global executor,
    /// and returns the server with the address it listens on. The listener closes
    /// once a shutdown has finished.
    pub async fn listen(
        addr: impl ::smol::net::AsyncToSocketAddrs,
        config: ServerConfig,
    ) -> io::Result<(Server, std::net::SocketAddr)> {
        listen_with(addr, config, |task| ::smol::spawn(task).detach()).await
    }

    /// Like [`listen`], on `executor`, which the caller runs (for example with
    /// `smol::block_on(executor.run(...))`). An executor run by the thread that also
    /// drives smol's reactor handles every socket event without waking another thread:
    /// the cheapest way to run a busy server on one core.
    pub async fn listen_on(
        executor: Arc<::smol::Executor<'static>>,
        addr: impl ::smol::net::AsyncToSocketAddrs,
        config: ServerConfig,
    ) -> io::Result<(Server, std::net::SocketAddr)> {
        listen_with(addr, config, move |task| executor.spawn(task).detach()).await
    }

    async fn listen_with<F>(
        addr: impl ::smol::net::AsyncToSocketAddrs,
        config: ServerConfig,
        spawn: F,
    ) -> io::Result<(Server, std::net::SocketAddr)>
    where
        F: Fn(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) + Clone + Send + 'static,
    {
        let listener = ::smol::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let (server, driver) = Server::new(config)?;
        spawn(Box::pin(driver));
        let spawn_conn = spawn.clone();
        let listener: Arc<async_io::Async<std::net::TcpListener>> = listener.into();
        let accept = accept_loop(
            server.handle(),
            move || super::accept_tcp(Arc::clone(&listener)),
            move |handle, stream| spawn_conn(Box::pin(handle.serve(stream))),
        );
        spawn(Box::pin(accept));
        Ok((server, local))
    }
}

/// Listening and spawning on async-std.
///
/// async-std is discontinued upstream; this support stays for existing users, new code
/// should prefer smol.
#[cfg(feature = "async-std")]
pub mod async_std {
    use super::{accept_loop, io};
    use crate::server::{Server, ServerConfig};

    /// Binds `addr`, spawns the driver and an accept loop on async-std's executor, and
    /// returns the server with the address it listens on. The listener closes once a
    /// shutdown has finished.
    ///
    /// Deprecated in spirit: async-std is discontinued upstream. It keeps working here
    /// for existing users; new code should use [`smol::listen`](super::smol::listen).
    pub async fn listen(
        addr: impl ::async_std::net::ToSocketAddrs,
        config: ServerConfig,
    ) -> io::Result<(Server, std::net::SocketAddr)> {
        // Resolved by async-std; the socket itself goes to async-io, the reactor
        // async-std runs on, for heartline's stream.
        let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to bind");
        let mut bound = None;
        for addr in ::async_std::net::ToSocketAddrs::to_socket_addrs(&addr).await? {
            match async_io::Async::<std::net::TcpListener>::bind(addr) {
                Ok(listener) => {
                    bound = Some(listener);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let listener = std::sync::Arc::new(bound.ok_or(last)?);
        let local = listener.get_ref().local_addr()?;
        let (server, driver) = Server::new(config)?;
        ::async_std::task::spawn(driver);
        let accept = accept_loop(
            server.handle(),
            move || super::accept_tcp(std::sync::Arc::clone(&listener)),
            |handle, stream| {
                ::async_std::task::spawn(handle.serve(stream));
            },
        );
        ::async_std::task::spawn(accept);
        Ok((server, local))
    }
}
