//! Binding and spawning on smol, tokio and async-std.

/// A listener on the first of `addrs` that binds, with heartline's listen backlog.
#[cfg(any(feature = "smol", feature = "async-std", feature = "tokio"))]
fn bind_first(
    addrs: impl IntoIterator<Item = std::net::SocketAddr>,
) -> std::io::Result<std::net::TcpListener> {
    heartline_tungstenite::net::listener(addrs)
}

/// Listening and spawning on smol.
#[cfg(feature = "smol")]
pub mod smol {
    use std::io;
    use std::net::SocketAddr;
    use std::sync::Arc;

    use crate::server::{Responder, Server, ServerConfig, ServerEvent};

    /// Binds `addr`, spawns the server's driver on smol's global executor, and returns
    /// the server with the address it listens on. The listener closes once a shutdown
    /// has finished.
    pub async fn listen(
        addr: impl ::smol::net::AsyncToSocketAddrs,
        config: ServerConfig,
    ) -> io::Result<(Server, SocketAddr)> {
        let (server, driver) = Server::start(bind(addr).await?, config)?;
        ::smol::spawn(driver).detach();
        Ok(with_addr(server))
    }

    /// Like [`listen`], on `executor`, which the caller runs (for example with
    /// `smol::block_on(executor.run(...))`). An executor run by the thread that also
    /// drives smol's reactor handles every socket event without waking another thread:
    /// the cheapest way to run a busy server on one core.
    pub async fn listen_on(
        executor: Arc<::smol::Executor<'static>>,
        addr: impl ::smol::net::AsyncToSocketAddrs,
        config: ServerConfig,
    ) -> io::Result<(Server, SocketAddr)> {
        let (server, driver) = Server::start(bind(addr).await?, config)?;
        executor.spawn(driver).detach();
        Ok(with_addr(server))
    }

    /// Like [`listen`], with an event handler on the server's task (see
    /// [`Server::start_with_handler`]).
    pub async fn listen_with_handler<F>(
        addr: impl ::smol::net::AsyncToSocketAddrs,
        config: ServerConfig,
        handler: F,
    ) -> io::Result<(Server, SocketAddr)>
    where
        F: FnMut(ServerEvent, &mut Responder<'_>) + Send + 'static,
    {
        let (server, driver) = Server::start_with_handler(bind(addr).await?, config, handler)?;
        ::smol::spawn(driver).detach();
        Ok(with_addr(server))
    }

    /// A listener on the first of `addr`'s addresses that binds (resolved by smol).
    async fn bind(addr: impl ::smol::net::AsyncToSocketAddrs) -> io::Result<std::net::TcpListener> {
        super::bind_first(::smol::net::resolve(addr).await?)
    }

    fn with_addr(server: Server) -> (Server, SocketAddr) {
        let addr = server.local_addr();
        (server, addr)
    }
}

/// Listening and spawning on async-std.
///
/// async-std is discontinued upstream; this support stays for existing users, new code
/// should prefer smol.
#[cfg(feature = "async-std")]
pub mod async_std {
    use std::io;
    use std::net::SocketAddr;

    use crate::server::{Server, ServerConfig};

    /// Binds `addr`, spawns the server's driver on async-std's executor, and returns
    /// the server with the address it listens on. The listener closes once a shutdown
    /// has finished.
    ///
    /// Deprecated in spirit: async-std is discontinued upstream. It keeps working here
    /// for existing users; new code should use [`smol::listen`](super::smol::listen).
    pub async fn listen(
        addr: impl ::async_std::net::ToSocketAddrs,
        config: ServerConfig,
    ) -> io::Result<(Server, SocketAddr)> {
        let addrs = ::async_std::net::ToSocketAddrs::to_socket_addrs(&addr).await?;
        let (server, driver) = Server::start(super::bind_first(addrs)?, config)?;
        ::async_std::task::spawn(driver);
        let addr = server.local_addr();
        Ok((server, addr))
    }
}

/// Listening and spawning on tokio: the server's one task on tokio's reactor and timer
/// wheel, spawned with `tokio::spawn` (call these within a tokio runtime with IO and
/// time enabled, as `#[tokio::main]` starts).
#[cfg(feature = "tokio")]
pub mod tokio {
    use std::io;
    use std::net::SocketAddr;

    use crate::runtime::Tokio;
    use crate::server::{Responder, Server, ServerConfig, ServerEvent};

    /// Binds `addr`, spawns the server's driver with `tokio::spawn`, and returns the
    /// server with the address it listens on. The listener closes once a shutdown has
    /// finished.
    pub async fn listen(
        addr: impl ::tokio::net::ToSocketAddrs,
        config: ServerConfig,
    ) -> io::Result<(Server, SocketAddr)> {
        let runtime = current()?;
        let (server, driver) = Server::start_on::<Tokio>(bind(addr).await?, config)?;
        drop(runtime.spawn(driver));
        let addr = server.local_addr();
        Ok((server, addr))
    }

    /// Like [`listen`], with an event handler on the server's task (see
    /// [`Server::start_with_handler`]).
    pub async fn listen_with_handler<F>(
        addr: impl ::tokio::net::ToSocketAddrs,
        config: ServerConfig,
        handler: F,
    ) -> io::Result<(Server, SocketAddr)>
    where
        F: FnMut(ServerEvent, &mut Responder<'_>) + Send + 'static,
    {
        let runtime = current()?;
        let listener = bind(addr).await?;
        let (server, driver) =
            Server::start_on_with_handler::<Tokio, F>(listener, config, handler)?;
        drop(runtime.spawn(driver));
        let addr = server.local_addr();
        Ok((server, addr))
    }

    /// The tokio runtime this is polled within: an error outside one, rather than
    /// `tokio::spawn`'s panic.
    fn current() -> io::Result<::tokio::runtime::Handle> {
        ::tokio::runtime::Handle::try_current().map_err(io::Error::other)
    }

    /// A listener on the first of `addr`'s addresses that binds (resolved by tokio).
    async fn bind(addr: impl ::tokio::net::ToSocketAddrs) -> io::Result<std::net::TcpListener> {
        super::bind_first(::tokio::net::lookup_host(addr).await?)
    }
}
