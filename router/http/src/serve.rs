//! The listener: an accept loop over hyper's HTTP/1 server, so that slow and half-open
//! clients cannot hold the process.
//!
//! - A client has [`ServeLimits::header_read_timeout`] to send a request's headers, counted
//!   from when the server starts waiting for them: a client dribbling header lines and a
//!   keep-alive connection idle between requests are both closed when it runs out.
//! - At most [`ServeLimits::max_connections`] connections are served at once. One over the
//!   bound is accepted, answered `503` at once (without waiting for the client) and closed,
//!   so the kernel's backlog never fills with connections nobody will serve.
//! - The accept loop never ends on an accept error: out of file descriptors it waits a
//!   little and goes on.
//! - On shutdown it stops accepting, lets requests in flight finish, and closes idle
//!   connections.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router as AxumRouter;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::errors::{count_refusal, error_body};

/// Default for [`ServeLimits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default for [`ServeLimits::header_read_timeout`].
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// File descriptors kept free of connections for the database pool, media files and logs.
const RESERVED_FDS: u64 = 256;
/// How long the accept loop pauses after an accept error that is not the client's (such as
/// running out of file descriptors), so it does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Bounds on clients of the listener.
#[derive(Clone, Copy, Debug)]
pub struct ServeLimits {
    /// Connections served at once; one more is answered `503` and closed.
    pub max_connections: usize,
    /// Time a client has to send a request's headers, also the idle time allowed between
    /// two requests of a keep-alive connection.
    pub header_read_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
        }
    }
}

impl ServeLimits {
    /// These limits with `max_connections` lowered to what `open_files` (the process's
    /// open-files limit) can hold beside the database pool and media files.
    #[must_use]
    pub fn within_open_files(mut self, open_files: u64) -> Self {
        let fits =
            usize::try_from(open_files.saturating_sub(RESERVED_FDS).max(1)).unwrap_or(usize::MAX);
        if fits < self.max_connections {
            tracing::warn!(
                configured = self.max_connections,
                open_files,
                max_connections = fits,
                "The open-files limit cannot hold SWITCHBOARD_MAX_CONNECTIONS connections; serving fewer."
            );
            self.max_connections = fits;
        }
        self
    }
}

/// Raises the process's soft open-files limit to its hard limit (each connection is a file
/// descriptor); returns the limit now in force.
///
/// # Errors
/// The `getrlimit`/`setrlimit` error.
pub fn raise_open_files_limit() -> io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes, then finishes the
/// requests in flight.
///
/// # Errors
/// None today: accept errors are logged and the loop goes on. The `Result` leaves room for
/// a listener that can fail for good.
pub async fn serve(
    listener: TcpListener,
    app: AxumRouter,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let service = TowerToHyperService::new(app);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    if !is_connection_error(&e) {
                        tracing::warn!(error = %e, "Accepting a connection failed; retrying.");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refuse(&stream);
            continue;
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "Could not set TCP_NODELAY.");
        }
        let connection =
            http.serve_connection(TokioIo::new(JsonParseErrors::new(stream)), service.clone());
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "HTTP connection ended with an error.");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Errors of one connection that the client caused; anything else (out of file descriptors,
/// out of buffers) is the server's and worth a pause.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Answers a connection over the bound `503` without waiting for it (a write that does not
/// fit the socket buffer is dropped) and closes it.
fn refuse(stream: &TcpStream) {
    count_refusal(503);
    let response = automatic_response(
        503,
        "Service Unavailable",
        "too_many_connections",
        "the server is at its connection limit; retry shortly",
        &[("retry-after", "1")],
    );
    if let Err(e) = stream.try_write(&response) {
        tracing::debug!(error = %e, "Could not answer a refused connection.");
    }
}

/// A whole `Connection: close` response with a JSON error body.
fn automatic_response(
    status: u16,
    reason: &str,
    code: &str,
    message: &str,
    extra: &[(&str, &str)],
) -> Vec<u8> {
    let body = error_body(code, message);
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(&body);
    out
}

/// The answers hyper writes by itself, before any service sees a request, to a request it
/// cannot parse: bodiless, so they are replaced by the same status with the JSON error
/// body api.md ("Errors") requires.
fn json_for_automatic(written: &[u8]) -> Option<Vec<u8>> {
    let head = std::str::from_utf8(written).ok()?;
    // Only a complete, bodiless head: hyper writes these in one piece.
    if !head.ends_with("\r\n\r\n") || head.matches("\r\n\r\n").count() != 1 {
        return None;
    }
    let lower = head.to_ascii_lowercase();
    if !lower.contains("\r\ncontent-length: 0\r\n") {
        return None;
    }
    let (status, reason, code, message) = match head.get(..13)? {
        "HTTP/1.1 400 " => (
            400,
            "Bad Request",
            "bad_request",
            "the request could not be parsed as HTTP/1.1",
        ),
        "HTTP/1.1 414 " => (
            414,
            "URI Too Long",
            "uri_too_long",
            "the request's URI is too long",
        ),
        "HTTP/1.1 431 " => (
            431,
            "Request Header Fields Too Large",
            "headers_too_large",
            "the request's headers are too large",
        ),
        _ => return None,
    };
    Some(automatic_response(status, reason, code, message, &[]))
}

/// A connection's socket that gives hyper's automatic parse-error answers the JSON error
/// shape (see [`json_for_automatic`]); everything else passes through untouched.
struct JsonParseErrors<S> {
    inner: S,
    /// A replacement being written: its bytes, how many went out, and how many bytes of
    /// hyper's original to report written once it is all out.
    replacing: Option<(Vec<u8>, usize, usize)>,
}

impl<S> JsonParseErrors<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            replacing: None,
        }
    }
}

impl<S: AsyncWrite + Unpin> JsonParseErrors<S> {
    /// Writes `buf`, or its replacement when it is one of hyper's automatic answers.
    fn write_or_replace(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.replacing.is_none()
            && let Some(json) = json_for_automatic(buf)
        {
            self.replacing = Some((json, 0, buf.len()));
        }
        let Some((bytes, sent, claimed)) = &mut self.replacing else {
            return Pin::new(&mut self.inner).poll_write(cx, buf);
        };
        while *sent < bytes.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *sent += n;
        }
        let claimed = *claimed;
        self.replacing = None;
        Poll::Ready(Ok(claimed))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonParseErrors<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonParseErrors<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().write_or_replace(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // hyper puts a response's head in a slice of its own.
        match bufs.iter().find(|b| !b.is_empty()) {
            Some(first) if this.replacing.is_some() || json_for_automatic(first).is_some() => {
                this.write_or_replace(cx, first)
            }
            _ => Pin::new(&mut this.inner).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_bodiless_parse_error_answers_are_replaced() {
        let automatic = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: Sun, 06 Dec 2026 21:00:00 GMT\r\n\r\n";
        let json = String::from_utf8(json_for_automatic(automatic).unwrap()).unwrap();
        assert!(json.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{json}");
        assert!(
            json.ends_with(
                r#"{"error":{"code":"uri_too_long","message":"the request's URI is too long"}}"#
            ),
            "{json}"
        );
        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}";
        assert!(json_for_automatic(with_body).is_none());
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(json_for_automatic(ok).is_none());
    }

    #[test]
    fn the_connection_bound_fits_the_open_files_limit() {
        let limits = ServeLimits::default().within_open_files(1024);
        assert_eq!(limits.max_connections, 1024 - 256);
        let limits = ServeLimits::default().within_open_files(1_000_000);
        assert_eq!(limits.max_connections, DEFAULT_MAX_CONNECTIONS);
    }
}
