//! The signal that stops `serve`: SIGTERM or Ctrl-C (SIGINT).

use std::future::Future;

/// Resolves when the process is asked to stop. The handlers are installed here, when it is
/// created, not when it is first polled: `serve` creates it before it binds its listener,
/// so a SIGTERM that arrives as soon as `/health` answers (before the accept loop first
/// polls it) is caught rather than killing the process uncleanly.
///
/// # Errors
/// The operating system refused to install a handler.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
            tracing::info!("Shutdown signal received.");
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
            tracing::info!("Shutdown signal received.");
        })
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::time::Duration;

    use super::*;

    /// `serve` answers `/health` before its accept loop first polls the shutdown future, so
    /// a SIGTERM right after start-up must already be caught, not kill the process.
    #[tokio::test]
    async fn a_sigterm_before_the_first_poll_is_caught() {
        let shutdown = shutdown_signal().unwrap();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        tokio::time::timeout(Duration::from_secs(10), shutdown)
            .await
            .expect("the SIGTERM was caught and ended the wait");
    }
}
