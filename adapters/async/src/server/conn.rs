//! One connection of the async server, as a task: its handshake, then a reading loop
//! and a writing loop side by side. The task decides nothing: what ends it, when, is
//! the core's (through the hub), and arrives in its mailbox.

use std::future::Future;
use std::sync::Arc;

use async_tungstenite::tungstenite::{self, protocol::Role};
use async_tungstenite::WebSocketStream;
use futures_lite::future;
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use futures_lite::StreamExt;
use heartline_core::ConnId;
use heartline_tungstenite::hub::{Answer, Input, Mailbox, MailboxOutbox, Out, Then};
use heartline_tungstenite::wire::{self, Head, Request};

use super::{ServerConfig, Shared};

/// Runs one connection: the handshake, then the read/execute loop, until it ends or
/// the core drops it.
pub(super) async fn serve<S>(mut stream: S, shared: &Shared, config: &ServerConfig)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mailbox = Arc::new(Mailbox::default());
    let outbox = MailboxOutbox(mailbox.clone());
    let Ok(conn) = shared.with(|hub, now, _| hub.incoming(now, outbox)) else {
        // Shutting down or full: the socket closes without more ado.
        return;
    };
    let life = async {
        // Boxed: its buffers are freed when it ends instead of staying part of the
        // task's size for the life of the connection.
        let tail = match Box::pin(handshake(&mut stream, conn, shared)).await {
            Ok(tail) => tail,
            Err(error) => return error,
        };
        let ws_config = config.buffers.websocket_config(&config.core);
        let ws = Box::pin(WebSocketStream::from_partially_read(
            stream,
            tail,
            Role::Server,
            Some(ws_config),
        ))
        .await;
        run_open(ws, conn, shared, &mailbox).await
    };
    let error = future::or(life, async {
        // An eviction or abort (a handshake that took too long, a write waiting on a
        // peer that does not read): drop the socket now. The loops handle them
        // themselves when they are not stuck.
        mailbox.killed().await;
        // Let the writing loop take the Evict itself if it can (best-effort Close).
        future::yield_now().await;
        None
    })
    .await;
    // Ignored by the core if it has already forgotten the connection.
    shared.feed(conn, Input::Ended(error));
}

/// Reads the request head and writes the hub's answer: plain HTTP, a rejection, or
/// 101. `Ok` with the bytes read past the head once the connection is open; `Err` when
/// it is done (with the IO error, if any).
async fn handshake<S>(
    stream: &mut S,
    conn: ConnId,
    shared: &Shared,
) -> Result<Vec<u8>, Option<String>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (answer, tail) = match read_head(stream).await {
        Ok((request, tail)) => (shared.with(|hub, now, _| hub.answer(now, &request)), tail),
        Err(Some(status)) => (Answer::bad_head(status), Vec::new()),
        Err(None) => return Err(None),
    };
    let io = |e: std::io::Error| Some(e.to_string());
    stream.write_all(&answer.bytes).await.map_err(io)?;
    stream.flush().await.map_err(io)?;
    match answer.then {
        Then::Close => {
            let _ = stream.close().await;
            Err(None)
        }
        Then::Open(name) => match shared.with(|hub, now, _| hub.open(now, conn, name)) {
            Ok(()) => Ok(tail),
            // The core has forgotten it (shutting down): drop the socket.
            Err(_) => Err(None),
        },
    }
}

/// Reads the request head. `Err(Some(status))` is a head to refuse with that status,
/// `Err(None)` means drop the connection silently (IO error, end of stream).
async fn read_head<S>(stream: &mut S) -> Result<(Request, Vec<u8>), Option<u16>>
where
    S: AsyncRead + Unpin,
{
    let mut buf = Vec::with_capacity(1024);
    loop {
        let len = buf.len();
        if len == buf.capacity() {
            buf.reserve(1024);
        }
        buf.resize(buf.capacity(), 0);
        let read = stream.read(&mut buf[len..]).await;
        buf.truncate(len + *read.as_ref().unwrap_or(&0));
        match read {
            Ok(0) | Err(_) => return Err(None),
            Ok(_) => {}
        }
        match wire::parse_head(&buf) {
            Head::Partial => {}
            Head::Complete(request, len) => return Ok((*request, buf.split_off(len))),
            Head::Invalid(status) => return Err(Some(status)),
        }
    }
}

/// The open connection: a reading loop and a writing loop, side by side in one task,
/// until either ends; returns the IO error that ended it, if any.
///
/// Neither loop is ever cancelled half-way, so the socket's readiness registration
/// survives every write: a ping costs its write and the reads of its pong, no more.
async fn run_open<S>(
    ws: WebSocketStream<S>,
    conn: ConnId,
    shared: &Shared,
    mailbox: &Mailbox,
) -> Option<String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = *ws.get_config();
    let (mut tx, mut rx) = ws.split();
    let reading = async {
        loop {
            match rx.next().await {
                None => return None,
                Some(Err(e)) => return wire::end_reason(e),
                // A Ping makes tungstenite queue a Pong, which it writes on the next
                // poll of the stream: at once, as the loop comes round.
                Some(Ok(message)) => {
                    let message = wire::unshare(message, &config);
                    shared.feed(conn, Input::Frame(message));
                }
            }
        }
    };
    let writing = async {
        // `None` from the mailbox: the hub forgot the connection or stopped, and
        // nothing will ever be decided for this socket.
        while let Some(out) = mailbox.next().await {
            let sent = match out {
                Out::Ping(payload) => reporting(tx.send(wire::ping(&payload)), conn, shared).await,
                Out::Send(message) => {
                    let len = message.len();
                    let sent = reporting(tx.send(message), conn, shared).await;
                    if sent.is_ok() {
                        shared.feed(conn, Input::Written(len));
                    }
                    sent
                }
                Out::Close(code, reason) => {
                    let close = tx.close(Some(wire::close_frame(code, reason)));
                    reporting(close, conn, shared).await
                }
                Out::Evict(reason) => {
                    // Only what the socket takes at once: the peer may not be reading.
                    if let Some(frame) = Out::eviction_frame(reason) {
                        let _ = future::poll_once(tx.close(Some(frame))).await;
                    }
                    return None;
                }
                Out::Abort => return None,
            };
            if let Err(e) = sent {
                return wire::end_reason(e);
            }
        }
        None
    };
    future::or(writing, reading).await
}

/// Runs one write; one that cannot finish at once is reported to the core, whose write
/// timeout then runs (and ends in an eviction, which stops this task), and its end is
/// reported once it finishes.
async fn reporting<F>(write: F, conn: ConnId, shared: &Shared) -> tungstenite::Result<()>
where
    F: Future<Output = tungstenite::Result<()>>,
{
    futures_lite::pin!(write);
    if let Some(done) = future::poll_once(write.as_mut()).await {
        return done;
    }
    shared.feed(conn, Input::Blocked);
    let done = write.await;
    shared.feed(conn, Input::Flushed);
    done
}
