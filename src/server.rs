//! The HTTP server: accepts connections and serves the application on each with hyper, with
//! the deadlines poem's `Server` lacks. Without them a client that sent half a request head, or
//! nothing, held its connection (and a file descriptor) forever, and a thousand of them made
//! the process refuse everyone (issue 13).
//!
//! - A connection must send a whole request head within `head` of opening, and within `head` of
//!   the first byte of each later request.
//! - A keep-alive connection that sends nothing for `idle` after its last answer is closed.
//! - While a request is being answered (its response body included) no deadline runs here; the
//!   readers of request bodies give the body its own (`Timeouts::body`, answered with 408).
//! - A connection that became a WebSocket leaves hyper, and these deadlines, at the upgrade.
//!
//! On shutdown it stops accepting, lets each connection finish the request it is on, and drops
//! whatever is left after the grace period.

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use poem::{
    Endpoint, Request,
    http::uri::Scheme,
    web::{LocalAddr, RemoteAddr},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::Notify,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::config::Timeouts;

/// Serves `ep` on `listener` until `stop` completes, then gives connections `grace` to finish
/// the requests they are on.
pub async fn serve<E: Endpoint + 'static>(
    listener: TcpListener,
    ep: E,
    timeouts: Timeouts,
    stop: impl Future<Output = ()>,
    grace: Duration,
) {
    let ep = Arc::new(ep);
    let local = listener.local_addr().ok();
    if let Some(addr) = local {
        tracing::info!(%addr, "listening");
    }
    let connections = TaskTracker::new();
    // On shutdown each connection finishes its request, then closes; after the grace period
    // those still open are dropped.
    let closing = CancellationToken::new();
    let abandon = CancellationToken::new();
    let mut failures = AcceptFailures::default();
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true); // a live frame must leave at once
                let served = connection(stream, peer, local, ep.clone(), timeouts, closing.clone());
                connections.spawn(abandon.clone().run_until_cancelled_owned(served));
            }
            Err(e) => {
                // Out of file descriptors, typically: ride it out rather than stop serving.
                failures.log(&e);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    drop(listener);
    closing.cancel();
    connections.close();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::info!(
            open = connections.len(),
            "closing the connections still busy after the grace period"
        );
        abandon.cancel();
        connections.wait().await;
    }
}

/// One connection, from accept to close.
async fn connection<E: Endpoint + 'static>(
    stream: TcpStream,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    ep: Arc<E>,
    timeouts: Timeouts,
    closing: CancellationToken,
) {
    let watch = Arc::new(Watch::new());
    let stream = Arc::new(stream);
    let io = TokioIo::new(Watched::new(stream.clone(), watch.clone(), WRITE_STALL));
    let remote = RemoteAddr(peer.into());
    let local = LocalAddr(local.unwrap_or(peer).into());
    let service = hyper::service::service_fn({
        let watch = watch.clone();
        move |req: hyper::Request<Incoming>| {
            let busy = Busy::start(watch.clone());
            let (ep, local, remote) = (ep.clone(), local.clone(), remote.clone());
            let raw = RawStream(stream.clone());
            async move {
                let mut req = Request::from((req, local, remote, Scheme::HTTP));
                req.extensions_mut().insert(raw);
                // Boxed: hyper keeps the allocation of a connection's request future for the
                // connection's whole life, and natter's is several KiB (every open stream and
                // keep-alive connection held one). Boxed, that slot holds a pointer, and the
                // request's own future is freed as soon as it has answered.
                let answer = Box::pin(ep.get_response(req)).await;
                let response: hyper::Response<BoxBody<Bytes, std::io::Error>> = answer.into();
                // The request stays busy until hyper has sent its body (and drops it).
                Ok::<_, Infallible>(response.map(|body| Tracked { body, _busy: busy }))
            }
        }
    });
    // HTTP/1.1 only (browsers speak HTTP/2 only over TLS, which Caddy ends): hyper-util's
    // protocol sniffing read the first bytes before hyper's own buffer, which then doubled to
    // 16 KiB on every connection, and its future sized every connection's task for HTTP/2.
    let served = http1::Builder::new()
        .serve_connection(io, service)
        .with_upgrades();
    let deadline = watch.deadline_passed(timeouts);
    tokio::pin!(served, deadline);
    tokio::select! {
        biased;
        _ = served.as_mut() => return,
        () = deadline.as_mut() => {
            tracing::debug!(%peer, "closed a connection that sent nothing in time");
            return;
        }
        () = closing.cancelled() => {}
    }
    served.as_mut().graceful_shutdown();
    tokio::select! {
        _ = served => {}
        () = deadline => {}
    }
}

/// What a connection is doing, for its deadline: one word, so the watchdog never sees half a
/// change. Bits 0–15: requests being answered; bit 16: a request head has begun arriving;
/// bits 17–63: when the connection last went idle or began a head, in ms since it opened.
struct Watch {
    opened: Instant,
    state: AtomicU64,
    /// Told when the deadline may have come closer (a request ended, or a head began).
    changed: Notify,
}

const BUSY_MASK: u64 = 0xffff;
const HEAD: u64 = 1 << 16;
const SINCE_SHIFT: u32 = 17;

impl Watch {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            // A new connection owes a request head at once.
            state: AtomicU64::new(HEAD),
            changed: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    /// Bytes arrived: on an idle connection, a request head has begun.
    fn on_read(&self) {
        let state = self.state.load(Ordering::Acquire);
        if state & (BUSY_MASK | HEAD) == 0 {
            let head = HEAD | (self.now_ms() << SINCE_SHIFT);
            if self
                .state
                .compare_exchange(state, head, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                self.changed.notify_one();
            }
        }
    }

    /// Resolves when the connection has missed its deadline: a head not complete within
    /// `head`, or nothing sent within `idle` of the last answer.
    async fn deadline_passed(&self, timeouts: Timeouts) {
        loop {
            let state = self.state.load(Ordering::Acquire);
            if state & BUSY_MASK != 0 {
                self.changed.notified().await;
                continue;
            }
            let allowed = if state & HEAD != 0 {
                timeouts.head
            } else {
                timeouts.idle
            };
            let since = Duration::from_millis(state >> SINCE_SHIFT);
            let deadline = tokio::time::Instant::from_std(self.opened + since + allowed);
            if tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::select! {
                () = self.changed.notified() => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}

/// One request being answered; when the last one ends, the connection is idle.
struct Busy(Arc<Watch>);

impl Busy {
    fn start(watch: Arc<Watch>) -> Self {
        // A whole head has arrived: its deadline is over.
        let _ = watch
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                Some(((s & BUSY_MASK) + 1).min(BUSY_MASK) | (s & !(BUSY_MASK | HEAD)))
            });
        Busy(watch)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let now = self.0.now_ms();
        let _ = self
            .0
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                Some(match s & BUSY_MASK {
                    0 | 1 => now << SINCE_SHIFT,
                    n => (n - 1) | (s & !BUSY_MASK),
                })
            });
        self.0.changed.notify_one();
    }
}

/// The connection's TCP stream, shared: a request's extension (a WebSocket's fast path,
/// `chat::fanout`) may write to it without an `.await`, through `&TcpStream`.
#[derive(Clone)]
pub struct RawStream(pub Arc<TcpStream>);

/// The TCP stream, telling its watch when bytes arrive. Read and written through `&TcpStream`
/// (readiness, then `try_read`/`try_write`), so that a clone can be written to elsewhere.
struct Watched {
    io: Arc<TcpStream>,
    watch: Arc<Watch>,
    /// How long a write may wait for the client to take bytes before it fails.
    stall: Duration,
    /// Running while a write waits: a response streamed to a client that stopped reading
    /// (a streamed room, an event stream, a big page) would otherwise hold its connection
    /// forever, since hyper only polls a write again when the socket becomes writable.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// A client that takes no byte of a write for this long is gone (natter's own streams write
/// a heartbeat every 25 s, so a live reader always has something to take).
const WRITE_STALL: Duration = Duration::from_secs(30);

impl Watched {
    fn new(io: Arc<TcpStream>, watch: Arc<Watch>, stall: Duration) -> Self {
        Self {
            io,
            watch,
            stall,
            stalled: None,
        }
    }

    /// A write's outcome, failed once it has waited `stall` for the client.
    fn unless_stalled<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let stall = self.stall;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client took nothing of a write in time",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            std::task::ready!(self.io.poll_read_ready(cx))?;
            match self.io.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    if n > 0 {
                        self.watch.on_read();
                    }
                    return Poll::Ready(Ok(()));
                }
                // Readiness was stale (and is cleared): wait again.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = poll_write_with(&self.io, cx, |io| io.try_write(buf));
        self.unless_stalled(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = poll_write_with(&self.io, cx, |io| io.try_write_vectored(bufs));
        self.unless_stalled(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// A TCP stream buffers nothing of its own.
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Nothing to do: the connection closes (with a FIN) when its last handle drops, which
    /// hyper's is right after shutting down, unless an upgraded WebSocket still holds it.
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A write through `&TcpStream`: waits for writability, and again whenever it was stale.
fn poll_write_with(
    io: &TcpStream,
    cx: &mut Context<'_>,
    mut write: impl FnMut(&TcpStream) -> std::io::Result<usize>,
) -> Poll<std::io::Result<usize>> {
    loop {
        std::task::ready!(io.poll_write_ready(cx))?;
        match write(io) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => return Poll::Ready(other),
        }
    }
}

/// A response body that keeps its request busy until hyper has sent it and dropped it.
struct Tracked {
    body: BoxBody<Bytes, std::io::Error>,
    _busy: Busy,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Logs failed accepts at most every 10 s, with how many were not logged.
#[derive(Default)]
struct AcceptFailures {
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl AcceptFailures {
    fn log(&mut self, e: &std::io::Error) {
        if self
            .last_logged
            .is_some_and(|at| at.elapsed() < Duration::from_secs(10))
        {
            self.unlogged += 1;
            return;
        }
        tracing::warn!(
            error = %e,
            more_since_last_logged = self.unlogged,
            "cannot accept connections (out of file descriptors?); retrying"
        );
        self.last_logged = Some(Instant::now());
        self.unlogged = 0;
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn a_write_the_client_takes_nothing_of_fails_after_the_stall_limit() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut watched = Watched::new(
            Arc::new(server),
            Arc::new(Watch::new()),
            Duration::from_millis(200),
        );
        // The client never reads: the socket buffers fill, then the write waits, then fails.
        let piece = vec![b'x'; 64 * 1024];
        let started = Instant::now();
        let failed = loop {
            if let Err(e) = watched.write_all(&piece).await {
                break e;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "writes never stalled"
            );
        };
        assert_eq!(failed.kind(), std::io::ErrorKind::TimedOut);
        drop(client);
    }
}
