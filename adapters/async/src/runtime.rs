//! What the drivers need from a runtime, and the runtimes heartline runs on.
//!
//! A driver (the client's [`Driver`](crate::Driver), the server's task) asks its
//! runtime for two things only: a timer it re-arms to the core's next deadline, and,
//! for the server, a wait until the poller's descriptor is readable. Everything else
//! (the loop, the core, the sockets' bytes) is the same code on every runtime, so a
//! runtime is these two, not a copy of the drivers.
//!
//! - [`AsyncIo`] (features `smol` or `async-std`): the async-io reactor that smol and
//!   async-std share.
//! - [`Tokio`] (feature `tokio`): tokio's timer wheel and reactor, on a runtime with
//!   `enable_time` and `enable_io` (what `#[tokio::main]` starts).

use std::future::Future;
use std::io;
use std::time::Instant;

/// A runtime the drivers can run on. Sealed: the runtimes are [`AsyncIo`] and
/// [`Tokio`].
pub trait Runtime: sealed::Sealed + Send + Sync + 'static {
    /// The timer a driver sleeps on.
    type Timer: Timer;
    /// The server loop's poller, watched by the runtime's reactor.
    #[doc(hidden)]
    #[cfg(unix)]
    type Poller: Send + Sync + 'static;
    /// Hands the server loop's poller to the runtime's reactor.
    #[doc(hidden)]
    #[cfg(unix)]
    fn watch(registry: mio::Registry) -> io::Result<Self::Poller>;
    /// Waits until the poller has something for the loop.
    #[doc(hidden)]
    #[cfg(unix)]
    fn readable(poller: &Self::Poller) -> impl Future<Output = io::Result<()>> + Send + '_;
}

/// A timer that fires at the instant it was last set to, re-armed without being
/// rebuilt (the drivers set it at every new deadline).
pub trait Timer: Future<Output = ()> + Unpin + Send + 'static {
    /// A timer that never fires until set.
    fn never() -> Self;
    /// Fires at `at` (at once if it has passed).
    fn set_at(&mut self, at: Instant);
}

mod sealed {
    pub trait Sealed {}
}

/// The async-io reactor, shared by smol and async-std.
#[cfg(feature = "async-io")]
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncIo;

#[cfg(feature = "async-io")]
mod async_io_runtime {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Instant;

    /// An async-io timer.
    #[derive(Debug)]
    pub struct AsyncIoTimer(async_io::Timer);

    impl super::sealed::Sealed for super::AsyncIo {}

    impl super::Runtime for super::AsyncIo {
        type Timer = AsyncIoTimer;
        #[cfg(unix)]
        type Poller = async_io::Async<mio::Registry>;

        #[cfg(unix)]
        fn watch(registry: mio::Registry) -> std::io::Result<Self::Poller> {
            async_io::Async::new(registry)
        }

        #[cfg(unix)]
        fn readable(
            poller: &Self::Poller,
        ) -> impl Future<Output = std::io::Result<()>> + Send + '_ {
            poller.readable()
        }
    }

    impl super::Timer for AsyncIoTimer {
        fn never() -> Self {
            AsyncIoTimer(async_io::Timer::never())
        }

        fn set_at(&mut self, at: Instant) {
            self.0.set_at(at);
        }
    }

    impl Future for AsyncIoTimer {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            Pin::new(&mut self.0).poll(cx).map(drop)
        }
    }
}

#[cfg(feature = "async-io")]
pub use async_io_runtime::AsyncIoTimer;

/// tokio's timer wheel and reactor.
#[cfg(feature = "tokio")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokio;

#[cfg(feature = "tokio")]
mod tokio_runtime {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Instant;

    /// A tokio timer: one `tokio::time::Sleep`, reset in place when set again, and
    /// never again ready once it fired until it is set anew (as an async-io timer).
    #[derive(Debug)]
    pub struct TokioTimer {
        sleep: Option<Pin<Box<tokio::time::Sleep>>>,
        armed: bool,
    }

    impl super::sealed::Sealed for super::Tokio {}

    impl super::Runtime for super::Tokio {
        type Timer = TokioTimer;
        #[cfg(unix)]
        type Poller = tokio::io::unix::AsyncFd<mio::Registry>;

        #[cfg(unix)]
        fn watch(registry: mio::Registry) -> std::io::Result<Self::Poller> {
            // Deprecated in tokio 1.54 for descriptors that may change under the
            // `AsyncFd` (its safe replacement is `unsafe`). A `mio::Registry` owns its
            // poller's descriptor for its whole life and always reports the same one,
            // and the `AsyncFd` owns the registry: the condition holds.
            // Outside a tokio runtime the registration would panic: an error instead,
            // and the server's task ends.
            tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
            #[allow(deprecated)]
            tokio::io::unix::AsyncFd::with_interest(registry, tokio::io::Interest::READABLE)
        }

        #[cfg(unix)]
        async fn readable(poller: &Self::Poller) -> std::io::Result<()> {
            // The loop drains the poller next: whatever arrives after this is a new
            // readiness for the next wait.
            poller.readable().await?.clear_ready();
            Ok(())
        }
    }

    impl super::Timer for TokioTimer {
        fn never() -> Self {
            TokioTimer {
                sleep: None,
                armed: false,
            }
        }

        fn set_at(&mut self, at: Instant) {
            let at = tokio::time::Instant::from_std(at);
            match &mut self.sleep {
                Some(sleep) => sleep.as_mut().reset(at),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(at))),
            }
            self.armed = true;
        }
    }

    impl Future for TokioTimer {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let this = &mut *self;
            match (&mut this.sleep, this.armed) {
                (Some(sleep), true) => {
                    std::task::ready!(sleep.as_mut().poll(cx));
                    this.armed = false;
                    Poll::Ready(())
                }
                // Set again before it can fire.
                _ => Poll::Pending,
            }
        }
    }
}

#[cfg(feature = "tokio")]
pub use tokio_runtime::TokioTimer;

/// Waits until `at` on runtime `R`.
pub(crate) async fn sleep_until<R: Runtime>(at: Instant) {
    let mut timer = R::Timer::never();
    timer.set_at(at);
    timer.await;
}
