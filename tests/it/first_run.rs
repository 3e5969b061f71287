//! The first five minutes with the real `switchboard` binary: the README's commands, the
//! CLI (help, tenants, keys), a wrong encryption key, what an operator reads when a provider
//! is unreachable, and `/metrics` as Prometheus tooling expects it.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_router::Router;
use switchboard_router::store::crypto::CredentialCipher;

use crate::support::binary::{self, cli, create_tenant};
use crate::support::on_each_backend;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// The README's first command names no binary: `cargo run` must pick the server, not the
/// load tool beside it.
#[tokio::test]
async fn cargo_run_without_a_bin_runs_the_server() {
    // The target directory this test binary was built in: target/<profile>/deps/it-….
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let target_root = profile_dir.parent().unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO"));
    cmd.current_dir(workspace_root())
        .args(["run", "-q"])
        .args(if profile_dir.ends_with("release") {
            &["--release"][..]
        } else {
            &[][..]
        })
        .args(["--", "--version"])
        .env("CARGO_TARGET_DIR", target_root)
        .stdin(Stdio::null());
    let out = tokio::time::timeout(Duration::from_secs(600), cmd.output())
        .await
        .expect("cargo run finished")
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("switchboard "), "{}", stdout(&out));
}

#[tokio::test]
async fn a_sqlite_url_without_mode_creates_the_database() {
    let dir = tempfile::tempdir().unwrap();
    // Relative to the working directory, no `?mode=rwc`: the file does not exist yet.
    let key = create_tenant("sqlite://fresh.db", dir.path(), "acme").await;
    assert!(key.starts_with("sbk_"), "{key}");
    assert!(dir.path().join("fresh.db").exists());
    let out = cli("sqlite:other.db", dir.path(), &["migrate"], &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path().join("other.db").exists());
}

#[tokio::test]
async fn serve_on_an_empty_directory_is_healthy_within_a_second_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let port = binary::free_port();
    let mut cmd = binary::command("sqlite://switchboard.db?mode=rwc", dir.path());
    // Nothing but the listen port (8080 may be taken on a shared machine).
    cmd.env_remove("SWITCHBOARD_DATABASE_URL")
        .arg("serve")
        .env("SWITCHBOARD_LISTEN", format!("127.0.0.1:{port}"));
    let started = Instant::now();
    let child = cmd.spawn().unwrap();
    let server = binary::Server {
        child,
        base_url: format!("http://127.0.0.1:{port}"),
        port,
    };
    server.wait_healthy(Duration::from_secs(10)).await;
    let took = started.elapsed();
    eprintln!("switchboard serve answered /health 200 after {took:?} on an empty directory");
    // The promise (within a second) is measured on a release build in BENCHMARKS.md: this
    // debug build shares the machine with the rest of the suite, so only a gross
    // regression fails here.
    assert!(took < Duration::from_secs(5), "took {took:?} (debug build)");
    assert!(
        dir.path().join("switchboard.db").exists(),
        "SQLite file in the current directory"
    );
    assert!(
        dir.path().join("switchboard.db.key").exists(),
        "generated key file beside it"
    );
    let body: serde_json::Value = reqwest::get(format!("{}/health", server.base_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body, serde_json::json!({"status": "ok"}));
    let status = server.stop().await;
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
}

#[tokio::test]
async fn tenant_create_prints_one_api_key_line() {
    let dir = tempfile::tempdir().unwrap();
    let url = binary::sqlite_url(dir.path());
    let out = binary::command(&url, dir.path())
        .args(["tenant", "create", "acme"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line: {stdout:?}");
    let key = lines[0];
    assert!(key.starts_with("sbk_") && key.len() == 47, "{key}");
    // The key authenticates as the tenant's admin, and is stored only as a hash.
    let store =
        switchboard_router::Store::connect(&url, switchboard_router::store::SqliteSync::Normal)
            .await
            .unwrap();
    let router = Router::builder(
        store,
        CredentialCipher::from_base64(&CredentialCipher::generate_key()).unwrap(),
    )
    .build();
    let principal = router
        .tenants()
        .authenticate(key)
        .await
        .unwrap()
        .expect("the printed key is live");
    assert_eq!(principal.role, switchboard_router::Role::Admin);
    let db_bytes = std::fs::read(dir.path().join("sb.db")).unwrap();
    let wal = std::fs::read(dir.path().join("sb.db-wal")).unwrap_or_default();
    for bytes in [db_bytes, wal] {
        assert!(
            !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
            "the key itself is never stored"
        );
    }
}

#[tokio::test]
async fn each_command_help_lists_only_its_own_flags() {
    let dir = tempfile::tempdir().unwrap();
    let help = |args: &'static [&'static str]| {
        let dir = dir.path().to_path_buf();
        async move {
            let out = cli("sqlite://h.db", &dir, args, &[]).await;
            assert!(out.status.success(), "{args:?}: {}", stderr(&out));
            stdout(&out)
        }
    };
    let create = help(&["tenant", "create", "--help"]).await;
    assert!(create.contains("--database-url"), "{create}");
    assert!(create.contains("SWITCHBOARD_DATABASE_URL"), "{create}");
    for server_only in [
        "--listen",
        "--public-url",
        "--twilio-api-base",
        "--meta-graph-base",
        "--encryption-key",
        "--media-dir",
        "--delivery-lease-ms",
    ] {
        assert!(
            !create.contains(server_only),
            "`tenant create --help` lists {server_only}:\n{create}"
        );
    }
    let migrate = help(&["migrate", "--help"]).await;
    assert!(!migrate.contains("--listen"), "{migrate}");
    let serve = help(&["serve", "--help"]).await;
    for flag in [
        "--listen",
        "--public-url",
        "--encryption-key",
        "--database-url",
        "--twilio-api-base",
        "SWITCHBOARD_LISTEN",
    ] {
        assert!(
            serve.contains(flag),
            "`serve --help` lacks {flag}:\n{serve}"
        );
    }
    // api.md: `switchboard --help` names every command and every variable.
    let top = help(&["--help"]).await;
    for word in [
        "serve",
        "migrate",
        "tenant",
        "key",
        "SWITCHBOARD_DATABASE_URL",
        "SWITCHBOARD_LISTEN",
        "SWITCHBOARD_PUBLIC_URL",
        "SWITCHBOARD_ENCRYPTION_KEY",
        "SWITCHBOARD_TWILIO_API_BASE",
        "SWITCHBOARD_META_GRAPH_BASE",
        "SWITCHBOARD_META_API_VERSION",
        "SWITCHBOARD_DEFAULT_REGION",
        "SWITCHBOARD_LOG",
        "SWITCHBOARD_LOG_FORMAT",
    ] {
        assert!(top.contains(word), "`--help` lacks {word}:\n{top}");
    }
    // A flag after its command still overrides the environment.
    let out = cli(
        "sqlite://ignored.db",
        dir.path(),
        &[
            "tenant",
            "create",
            "acme",
            "--database-url",
            "sqlite://flag.db",
        ],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path().join("flag.db").exists());
    assert!(!dir.path().join("ignored.db").exists());
}

#[tokio::test]
async fn tenant_list_prints_each_tenant() {
    on_each_backend(|db| async move {
        let dir = tempfile::tempdir().unwrap();
        create_tenant(&db.url, dir.path(), "acme").await;
        create_tenant(&db.url, dir.path(), "Globex Corp").await;
        let out = cli(&db.url, dir.path(), &["tenant", "list"], &[]).await;
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0][0].starts_with("ten_") && lines[0][1] == "acme",
            "{text}"
        );
        assert!(
            lines[1][0].starts_with("ten_") && lines[1][1] == "Globex Corp",
            "{text}"
        );
    })
    .await;
}

#[tokio::test]
async fn revoked_keys_are_refused_over_http_and_from_the_cli() {
    on_each_backend(|db| async move {
        let dir = tempfile::tempdir().unwrap();
        let admin = create_tenant(&db.url, dir.path(), "acme").await;
        let other_admin = create_tenant(&db.url, dir.path(), "other").await;
        // PostgreSQL needs a key; a SQLite file would make one beside itself.
        let key = CredentialCipher::generate_key();
        let server = binary::Server::start(
            &db.url,
            dir.path(),
            &[("SWITCHBOARD_ENCRYPTION_KEY", key.as_str())],
        )
        .await;
        let http = reqwest::Client::new();
        let base = server.base_url.clone();

        let created: Value = http
            .post(format!("{base}/v1/keys"))
            .bearer_auth(&admin)
            .json(&json!({"role": "agent", "name": "support desk"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let agent = created["key"].as_str().unwrap().to_owned();
        let agent_id = created["id"].as_str().unwrap().to_owned();
        let conversations = |key: String| {
            let http = http.clone();
            let base = base.clone();
            async move {
                http.get(format!("{base}/v1/conversations"))
                    .bearer_auth(key)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
        assert_eq!(conversations(agent.clone()).await, 200);

        // The list shows both keys, never a secret.
        let resp = http
            .get(format!("{base}/v1/keys"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        assert!(!text.contains(&agent) && !text.contains(&admin), "{text}");
        let list: Value = serde_json::from_str(&text).unwrap();
        let keys = list["data"].as_array().unwrap();
        assert_eq!(keys.len(), 2, "{list}");
        assert_eq!(keys[1]["id"], agent_id.as_str());
        assert_eq!(keys[1]["role"], "agent");
        assert_eq!(keys[1]["name"], "support desk");
        assert_eq!(keys[1]["revoked_at"], Value::Null);
        // An agent key manages no keys.
        let resp = http
            .get(format!("{base}/v1/keys"))
            .bearer_auth(&agent)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403);

        // Another tenant cannot see or revoke it.
        let resp = http
            .delete(format!("{base}/v1/keys/{agent_id}"))
            .bearer_auth(&other_admin)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found");
        assert_eq!(conversations(agent.clone()).await, 200);

        let resp = http
            .delete(format!("{base}/v1/keys/{agent_id}"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let revoked: Value = resp.json().await.unwrap();
        assert_eq!(revoked["id"], agent_id.as_str());
        assert!(revoked["revoked_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(conversations(agent.clone()).await, 401);
        // Revoking again is harmless.
        let resp = http
            .delete(format!("{base}/v1/keys/{agent_id}"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);

        // The CLI: list the tenant's keys, revoke the admin key itself.
        let tenants = stdout(&cli(&db.url, dir.path(), &["tenant", "list"], &[]).await);
        let tenant_id = tenants
            .lines()
            .find(|l| l.ends_with("\tacme"))
            .and_then(|l| l.split('\t').next())
            .unwrap()
            .to_owned();
        let out = cli(&db.url, dir.path(), &["key", "list", &tenant_id], &[]).await;
        assert!(out.status.success(), "{}", stderr(&out));
        let listed = stdout(&out);
        assert!(!listed.contains(&admin) && !listed.contains(&agent));
        let lines: Vec<&str> = listed.lines().collect();
        assert_eq!(lines.len(), 2, "{listed}");
        assert!(lines[0].contains("\tadmin\tactive\t"), "{listed}");
        assert!(
            lines[1].starts_with(&format!("{agent_id}\tagent\trevoked ")),
            "{listed}"
        );
        let admin_id = lines[0].split('\t').next().unwrap();
        assert_eq!(conversations(admin.clone()).await, 200);
        let out = cli(&db.url, dir.path(), &["key", "revoke", admin_id], &[]).await;
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(conversations(admin.clone()).await, 401);
        let out = cli(&db.url, dir.path(), &["key", "revoke", "key_nope"], &[]).await;
        assert!(!out.status.success());
        assert!(stderr(&out).contains("not found"), "{}", stderr(&out));

        assert!(server.stop().await.success());
    })
    .await;
}

/// Waits for `serve` to exit on its own (it is expected to refuse to start).
async fn serve_expecting_refusal(db_url: &str, dir: &Path, key: &str) -> Output {
    let mut cmd = binary::command(db_url, dir);
    cmd.arg("serve")
        .env(
            "SWITCHBOARD_LISTEN",
            format!("127.0.0.1:{}", binary::free_port()),
        )
        .env("SWITCHBOARD_ENCRYPTION_KEY", key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("serve exits by itself instead of serving")
        .unwrap()
}

#[tokio::test]
async fn a_wrong_encryption_key_stops_serve_at_start() {
    on_each_backend(|db| async move {
        let dir = tempfile::tempdir().unwrap();
        let admin = create_tenant(&db.url, dir.path(), "acme").await;
        let right = CredentialCipher::generate_key();
        let server = binary::Server::start(
            &db.url,
            dir.path(),
            &[("SWITCHBOARD_ENCRYPTION_KEY", right.as_str())],
        )
        .await;
        let resp = reqwest::Client::new()
            .post(format!("{}/v1/accounts", server.base_url))
            .bearer_auth(&admin)
            .json(&json!({"channel": "twilio-whatsapp", "address": "+14155238886",
                "credentials": {"account_sid": format!("AC{}", "a".repeat(32)), "auth_token": "t0ken"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
        assert!(server.stop().await.success());

        // Another valid key: the stored credentials do not open with it.
        let wrong = CredentialCipher::generate_key();
        let out = serve_expecting_refusal(&db.url, dir.path(), &wrong).await;
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.contains("error: the encryption key does not open the credentials already stored"),
            "{err}"
        );
        assert!(!err.contains(&wrong), "the key is never printed");

        // Not a key at all.
        for (bad, says) in [
            ("not base64!", "not valid base64"),
            ("c2hvcnQ=", "must be 32 bytes"),
        ] {
            let out = serve_expecting_refusal(&db.url, dir.path(), bad).await;
            assert!(!out.status.success());
            let err = stderr(&out);
            assert!(
                err.contains("SWITCHBOARD_ENCRYPTION_KEY is not usable") && err.contains(says),
                "{err}"
            );
        }

        // The right key still starts.
        let server = binary::Server::start(
            &db.url,
            dir.path(),
            &[("SWITCHBOARD_ENCRYPTION_KEY", right.as_str())],
        )
        .await;
        assert!(server.stop().await.success());
    })
    .await;
}

#[tokio::test]
async fn a_deleted_key_file_is_noticed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let url = "sqlite://switchboard.db";
    let admin = create_tenant(url, dir.path(), "acme").await;
    let server = binary::Server::start(url, dir.path(), &[]).await;
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/accounts", server.base_url))
        .bearer_auth(&admin)
        .json(&json!({"channel": "twilio-whatsapp", "address": "+14155238886",
            "credentials": {"account_sid": format!("AC{}", "b".repeat(32)), "auth_token": "t0ken"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert!(server.stop().await.success());
    std::fs::remove_file(dir.path().join("switchboard.db.key")).unwrap();
    let mut cmd = binary::command(url, dir.path());
    cmd.arg("serve")
        .env(
            "SWITCHBOARD_LISTEN",
            format!("127.0.0.1:{}", binary::free_port()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("serve exits by itself")
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("does not open the credentials already stored"),
        "{}",
        stderr(&out)
    );
}

/// Every `# TYPE` line of `/metrics` has its `# HELP` line (`promtool check metrics`).
fn metrics_without_help(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| {
            !text
                .lines()
                .any(|l| l.starts_with(&format!("# HELP {name} ")))
        })
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn unreachable_providers_read_the_same_and_are_logged_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = "sqlite://switchboard.db";
    let admin = create_tenant(url, dir.path(), "acme").await;
    // Both providers' API bases point at a port nobody listens on.
    let nowhere = format!("http://127.0.0.1:{}", binary::free_port());
    let log = dir.path().join("serve.log");
    let server = binary::Server::start_logging_to(
        url,
        dir.path(),
        &[
            ("SWITCHBOARD_TWILIO_API_BASE", nowhere.as_str()),
            ("SWITCHBOARD_META_GRAPH_BASE", nowhere.as_str()),
        ],
        &log,
    )
    .await;
    let http = reqwest::Client::new();
    let base = server.base_url.clone();
    for body in [
        json!({"channel": "twilio-whatsapp", "address": "+14155238886",
            "credentials": {"account_sid": format!("AC{}", "c".repeat(32)), "auth_token": "t0ken"}}),
        json!({"channel": "meta-whatsapp", "address": "+15550783881",
            "credentials": {"phone_number_id": "106540352242922", "access_token": "EAAG-x",
                "app_secret": "s3cret", "verify_token": "v3rify"}}),
    ] {
        let resp = http
            .post(format!("{base}/v1/accounts"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    }
    let created_at = {
        let list = binary::get_json(&http, format!("{base}/v1/accounts"), &admin).await;
        list["data"][0]["created_at"].as_str().unwrap().to_owned()
    };
    for _ in 0..5 {
        let resp = http
            .get(format!("{base}/health/channels"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 503);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["status"], "down", "{body}");
        let accounts = body["accounts"].as_array().unwrap();
        assert_eq!(accounts.len(), 2, "{body}");
        for account in accounts {
            assert_eq!(account["status"], "down", "{account}");
            let detail = account["detail"].as_str().unwrap();
            assert!(detail.starts_with("unreachable: "), "{account}");
            assert!(detail.contains("Connection refused"), "{account}");
            // The API's timestamp format: RFC 3339, milliseconds, `Z`.
            let checked_at = account["checked_at"].as_str().unwrap();
            assert_eq!(
                checked_at.len(),
                created_at.len(),
                "{checked_at} vs {created_at}"
            );
            assert!(checked_at.ends_with('Z') && checked_at.as_bytes()[19] == b'.');
        }
    }
    // A rejected webhook, so its counter is in the output too.
    let resp = http
        .post(format!("{base}/webhooks/twilio-whatsapp"))
        .form(&[("From", "whatsapp:+31612345678")])
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("# TYPE switchboard_webhooks_rejected_total counter"),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE switchboard_queue_depth gauge"),
        "{metrics}"
    );
    // Each account's reported quality and restrictions: nothing reported, unknown (0).
    for gauge in [
        "switchboard_account_quality",
        "switchboard_account_restrictions",
    ] {
        let lines: Vec<&str> = metrics
            .lines()
            .filter(|l| l.starts_with(&format!("{gauge}{{")))
            .collect();
        assert_eq!(lines.len(), 2, "{metrics}");
        assert!(
            lines
                .iter()
                .all(|l| l.contains("channel=\"") && l.ends_with(" 0")),
            "{metrics}"
        );
    }
    assert_eq!(
        metrics_without_help(&metrics),
        Vec::<String>::new(),
        "{metrics}"
    );
    if let Some(promtool) = promtool() {
        let path = dir.path().join("metrics.txt");
        std::fs::write(&path, &metrics).unwrap();
        let out = std::process::Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::fs::File::open(&path).unwrap())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    assert!(server.stop().await.success());
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        !log.contains("ERROR"),
        "a monitor's poll is no error:\n{log}"
    );
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Channel account is not up."))
        .collect();
    assert_eq!(
        warnings.len(),
        2,
        "one line per account, not per poll:\n{log}"
    );
    assert!(warnings.iter().all(|l| l.contains("WARN")), "{log}");
}

/// `promtool`, when installed (Debian's `prometheus` package has it).
fn promtool() -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join("promtool"))
        .find(|p| p.is_file())
}
