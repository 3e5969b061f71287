//! Scaffolding shared by the adapters' fake provider servers (feature `testing`): state the
//! handler and the test both reach, and a loopback listener whose serving task stops when
//! the fake is dropped. The provider's routes and wire format stay in each adapter crate.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// State shared between a fake server's handler and the test driving it.
///
/// A panicking test thread must not poison the fake for the assertions that follow, so a
/// poisoned lock is taken over as is.
#[derive(Debug, Default)]
pub struct Shared<S>(Arc<Mutex<S>>);

impl<S> Clone for Shared<S> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<S> Shared<S> {
    pub fn new(state: S) -> Self {
        Self(Arc::new(Mutex::new(state)))
    }

    /// The state, locked (poisoning ignored).
    pub fn lock(&self) -> MutexGuard<'_, S> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A server on an ephemeral port of 127.0.0.1, served by a task that is aborted on drop.
#[derive(Debug)]
pub struct LoopbackServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl LoopbackServer {
    /// Binds 127.0.0.1:0 and spawns `serve` on the listener; `name` labels panics and the
    /// log line written if serving stops with an error.
    ///
    /// # Panics
    /// If no loopback port can be bound (a broken test environment).
    pub async fn start<F, Fut>(name: &'static str, serve: F) -> Self
    where
        F: FnOnce(tokio::net::TcpListener) -> Fut,
        Fut: Future<Output = io::Result<()>> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind 127.0.0.1:0 for {name}: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("{name} local address: {e}"));
        let serving = serve(listener);
        let task = tokio::spawn(async move {
            if let Err(e) = serving.await {
                eprintln!("{name} stopped: {e}");
            }
        });
        Self { addr, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:{port}`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn shared_state_survives_a_panic_while_locked() {
        let shared = Shared::new(1_u32);
        let inside = shared.clone();
        let outcome = std::thread::spawn(move || {
            let _guard = inside.lock();
            panic!("a test failed while holding the fake's state");
        })
        .join();
        assert!(outcome.is_err());
        *shared.lock() += 1;
        assert_eq!(*shared.lock(), 2);
    }

    #[tokio::test]
    async fn the_server_answers_on_loopback_and_stops_when_dropped() {
        let server = LoopbackServer::start("echo", |listener| async move {
            loop {
                let (mut socket, _) = listener.accept().await?;
                socket.write_all(b"hi").await?;
            }
        })
        .await;
        let addr = server.addr();
        assert!(addr.ip().is_loopback());
        assert_eq!(server.base_url(), format!("http://{addr}"));
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut got = [0_u8; 2];
        socket.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hi");

        drop(server);
        tokio::task::yield_now().await;
        let mut refused = false;
        for _ in 0..50 {
            if tokio::net::TcpStream::connect(addr).await.is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(refused, "the listener still accepts after the drop");
    }
}
