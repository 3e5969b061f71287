//! The real `switchboard` binary, started as a child process.

use std::net::TcpListener;
use std::path::Path;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// The path of the `switchboard` binary of this build, built if missing (when only this test
/// crate was asked for, cargo has not built the router's binary); `SWITCHBOARD_TEST_BIN`
/// names another one (to run the black-box tests against an older build).
pub fn path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(bin) = std::env::var_os("SWITCHBOARD_TEST_BIN") {
            return PathBuf::from(bin);
        }
        let exe = std::env::current_exe().expect("current exe");
        // target/<profile>/deps/it-<hash> → target/<profile>/switchboard
        let dir = exe
            .parent()
            .and_then(|d| d.parent())
            .expect("target dir")
            .to_path_buf();
        let bin = dir.join(format!("switchboard{}", std::env::consts::EXE_SUFFIX));
        let status = std::process::Command::new(env!("CARGO"))
            .args([
                "build",
                "-q",
                "-p",
                "switchboard-server",
                "--bin",
                "switchboard",
            ])
            .args(if dir.ends_with("release") {
                &["--release"][..]
            } else {
                &[][..]
            })
            .env("CARGO_TARGET_DIR", dir.parent().expect("target root"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the switchboard binary failed");
        bin
    })
    .clone()
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `switchboard` command with a clean environment: only what the test sets.
pub fn command(db_url: &str, dir: &std::path::Path) -> Command {
    command_for(&path(), db_url, dir)
}

/// [`command`] for another program (a shell that sets limits, then runs the binary).
pub fn command_for(program: &std::path::Path, db_url: &str, dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SWITCHBOARD_DATABASE_URL", db_url)
        .env("SWITCHBOARD_LOG", "info")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Runs `switchboard ARGS` with `envs` to completion.
pub async fn cli(db_url: &str, dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = command(db_url, dir);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the command finished within 60 s")
        .expect("run switchboard")
}

/// `switchboard tenant create NAME`: the admin key it prints.
pub async fn create_tenant(db_url: &str, dir: &Path, name: &str) -> String {
    create_tenant_with(db_url, dir, name, &[]).await
}

/// [`create_tenant`] with `envs` set (such as the encryption key).
pub async fn create_tenant_with(
    db_url: &str,
    dir: &Path,
    name: &str,
    envs: &[(&str, &str)],
) -> String {
    let out = cli(db_url, dir, &["tenant", "create", name], envs).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `GET url` as `key`: the answer's JSON body.
pub async fn get_json(http: &reqwest::Client, url: String, key: &str) -> serde_json::Value {
    http.get(url)
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A SQLite database file `sb.db` in `dir`, as a URL that creates it.
pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("sb.db").display())
}

/// A running `switchboard serve`.
pub struct Server {
    pub child: Child,
    pub base_url: String,
    pub port: u16,
}

impl Server {
    /// Starts `serve` with `envs` on a free port and waits until `/health` answers 200.
    pub async fn start(db_url: &str, dir: &std::path::Path, envs: &[(&str, &str)]) -> Self {
        Self::start_with_stderr(db_url, dir, envs, Stdio::inherit()).await
    }

    /// [`Self::start`] with the server's log (stderr) written to `log`.
    pub async fn start_logging_to(
        db_url: &str,
        dir: &std::path::Path,
        envs: &[(&str, &str)],
        log: &std::path::Path,
    ) -> Self {
        let file = std::fs::File::create(log).expect("create the log file");
        Self::start_with_stderr(db_url, dir, envs, Stdio::from(file)).await
    }

    async fn start_with_stderr(
        db_url: &str,
        dir: &std::path::Path,
        envs: &[(&str, &str)],
        stderr: Stdio,
    ) -> Self {
        let port = free_port();
        let mut cmd = command(db_url, dir);
        cmd.arg("serve")
            .env("SWITCHBOARD_LISTEN", format!("127.0.0.1:{port}"));
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::null()).stderr(stderr);
        let child = cmd.spawn().expect("spawn switchboard serve");
        let base_url = format!("http://127.0.0.1:{port}");
        let server = Self {
            child,
            base_url,
            port,
        };
        server.wait_healthy(Duration::from_secs(30)).await;
        server
    }

    pub async fn wait_healthy(&self, within: Duration) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + within;
        loop {
            if let Ok(r) = client.get(format!("{}/health", self.base_url)).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "switchboard did not become healthy within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub async fn stop(mut self) -> std::process::ExitStatus {
        if let Some(pid) = self.child.id() {
            std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .expect("run kill");
        }
        tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("switchboard did not stop within 20 s of SIGTERM")
            .expect("wait")
    }

    /// SIGKILL: a crash.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("SIGKILL the server");
    }
}
