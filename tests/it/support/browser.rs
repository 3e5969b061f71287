//! A real browser for the console's tests: Debian's Chromium, headless, driven through its
//! chromedriver (WebDriver) with `fantoccini`. Each [`Browser`] starts its own chromedriver
//! on a free loopback port, in its own process group with its own profile directory, so
//! nothing outlives the test; at most [`MAX_BROWSERS`] run at once in the test binary.
//!
//! Run a scenario with [`with_browser`]: the session is closed whether the scenario
//! returns or panics, and a failing scenario leaves a screenshot and the page's URL in the
//! test's output.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::binary::free_port;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Browsers at once in this test binary: each is a handful of processes and the CI machine
/// has two cores.
pub const MAX_BROWSERS: usize = 2;
static BROWSER_SLOTS: Semaphore = Semaphore::const_new(MAX_BROWSERS);

/// How long [`Browser::wait_for`] waits for a selector.
pub const WAIT: Duration = Duration::from_secs(10);

/// The first bytes of every PNG file.
pub const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Viewport {
    /// A laptop screen, 1280×900.
    Desktop,
    /// A phone held upright, 390×844 CSS pixels, emulated as a touch device.
    Phone,
}

/// A headless Chromium session with its chromedriver.
pub struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    _slot: SemaphorePermit<'static>,
}

/// Starts a browser, runs `scenario` with it, and closes the session whatever happened; a
/// panic in the scenario is re-raised after a screenshot of the page it was on is saved.
pub async fn with_browser<R>(viewport: Viewport, scenario: impl AsyncFnOnce(&Browser) -> R) -> R {
    let browser = Browser::start(viewport).await;
    let outcome = AssertUnwindSafe(scenario(&browser)).catch_unwind().await;
    if outcome.is_err() {
        browser.report_failure().await;
    }
    browser.close().await;
    match outcome {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Panics unless Debian's Chromium and its driver are installed: these tests are never
/// skipped.
fn require_installed() {
    if let Some(message) = missing_programs(&[CHROMIUM, CHROMEDRIVER]) {
        panic!("{message}");
    }
}

/// What to say when any of `programs` is missing: which, and the packages to install.
pub fn missing_programs(programs: &[&str]) -> Option<String> {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| !Path::new(p).exists())
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "{} missing: the console's browser tests need Debian's Chromium and its WebDriver; \
             install them with `apt-get install chromium chromium-driver`",
            missing.join(" and ")
        )
    })
}

impl Browser {
    /// Waits for a free slot, starts chromedriver and opens a headless session.
    pub async fn start(viewport: Viewport) -> Self {
        require_installed();
        let slot = BROWSER_SLOTS
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let profile = tempfile::tempdir().expect("a profile directory");
        // A port found free can be taken before chromedriver binds it: try a few.
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = free_port();
            let mut driver = spawn_driver(port);
            match wait_for_driver(&mut driver, port).await {
                Ok(()) => {
                    let client = match new_session(port, viewport, profile.path()).await {
                        Ok(client) => client,
                        Err(e) => {
                            kill_group(&driver);
                            panic!("chromedriver could not start {CHROMIUM}: {e}");
                        }
                    };
                    return Self {
                        client,
                        driver,
                        _profile: profile,
                        _slot: slot,
                    };
                }
                Err(e) => {
                    kill_group(&driver);
                    last_error = e;
                }
            }
        }
        panic!("chromedriver did not start: {last_error}");
    }

    /// The WebDriver client, for what the helpers here do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Ends the session (Chromium quits and removes nothing of ours), then chromedriver.
    pub async fn close(self) {
        if let Err(e) = self.client.clone().close().await {
            eprintln!("closing the browser session failed: {e}");
        }
        // Dropping `self` stops chromedriver and anything left in its process group.
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    pub async fn current_url(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_else(|e| format!("(no URL: {e})"))
    }

    /// The first element matching `css`, waiting up to [`WAIT`] for it.
    pub async fn wait_for(&self, css: &str) -> Element {
        self.wait_for_within(css, WAIT).await
    }

    /// The first element matching `css`, waiting up to `timeout`; panics with the selector,
    /// the page's URL and the start of its HTML when it does not appear.
    pub async fn wait_for_within(&self, css: &str, timeout: Duration) -> Element {
        match self.try_wait_for(css, timeout).await {
            Ok(element) => element,
            Err(message) => panic!("{message}"),
        }
    }

    /// [`Self::wait_for_within`], the timeout as an error whose text says what was awaited
    /// and where the page was.
    pub async fn try_wait_for(&self, css: &str, timeout: Duration) -> Result<Element, String> {
        match self
            .client
            .wait()
            .at_most(timeout)
            .every(Duration::from_millis(50))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => Ok(element),
            Err(e) => Err(format!(
                "`{css}` did not appear within {timeout:?} ({e}) on {}\n{}",
                self.current_url().await,
                self.html_snippet().await
            )),
        }
    }

    /// Waits until the JavaScript expression `condition` is truthy; `what` names it in the
    /// panic when it is not within [`WAIT`].
    pub async fn wait_until(&self, what: &str, condition: &str) {
        let deadline = Instant::now() + WAIT;
        let script = format!("return !!({condition});");
        loop {
            if self.js(&script).await == Value::Bool(true) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {WAIT:?} waiting for {what} (`{condition}`) on {}\n{}",
                    self.current_url().await,
                    self.html_snippet().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether an element matches `css` now (no waiting).
    pub async fn exists(&self, css: &str) -> bool {
        self.count(css).await > 0
    }

    /// How many elements match `css` now.
    pub async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("finding `{css}`: {e}"))
            .len()
    }

    /// Runs `action` on the first element matching `css` (waited for), finding it again
    /// when the page replaced it in between: live updates re-render parts of the page at
    /// any moment. `what` names the action in the panic when it fails otherwise.
    async fn on_element<T>(
        &self,
        css: &str,
        what: &str,
        action: impl AsyncFn(&Element) -> Result<T, CmdError>,
    ) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            let element = self.wait_for(css).await;
            match action(&element).await {
                Ok(value) => return value,
                Err(e) if e.is_stale_element_reference() && Instant::now() < deadline => {}
                Err(e) => panic!("{what} `{css}`: {e}"),
            }
        }
    }

    /// The rendered text of the first element matching `css` (waited for).
    pub async fn text_of(&self, css: &str) -> String {
        self.on_element(css, "text of", async |e| e.text().await)
            .await
    }

    /// Attribute `name` of the first element matching `css` (waited for).
    pub async fn attr_of(&self, css: &str, name: &str) -> Option<String> {
        self.on_element(css, &format!("attribute {name} of"), async |e| {
            e.attr(name).await
        })
        .await
    }

    /// Clicks the first element matching `css` (waited for).
    pub async fn click(&self, css: &str) {
        self.on_element(css, "clicking", async |e| e.click().await)
            .await;
    }

    /// Replaces the value of the field matching `css` (waited for) by typing `value`.
    pub async fn fill(&self, css: &str, value: &str) {
        self.on_element(css, "typing into", async |e| {
            e.clear().await?;
            e.send_keys(value).await
        })
        .await;
    }

    /// Runs `script` (a function body: `return …` gives the value) in the page.
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("running {script:?}: {e}"))
    }

    /// Runs Chrome DevTools Protocol command `cmd` with `params` (chromedriver's
    /// `goog/cdp/execute`): for what WebDriver has no command for.
    pub async fn devtools(&self, cmd: &str, params: Value) -> Value {
        self.client
            .issue_cmd(DevToolsCommand {
                cmd: cmd.to_owned(),
                params,
            })
            .await
            .unwrap_or_else(|e| panic!("DevTools {cmd}: {e}"))
    }

    /// Runs `script` in every page this session opens from now on, before the page's own
    /// scripts and before its HTML is parsed.
    pub async fn on_every_new_page(&self, script: &str) {
        self.devtools(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({"source": script}),
        )
        .await;
    }

    /// Empties the HTTP cache (cookies stay): the next load is a first load.
    pub async fn clear_cache(&self) {
        self.devtools("Network.clearBrowserCache", json!({})).await;
    }

    /// The HTTP status of the page's navigation (Chromium's `responseStatus`).
    pub async fn status(&self) -> u64 {
        let status = self
            .js("return performance.getEntriesByType('navigation')[0]?.responseStatus ?? null;")
            .await;
        match status.as_u64() {
            Some(status) => status,
            None => panic!("no navigation status on {}", self.current_url().await),
        }
    }

    /// A PNG of the viewport, written to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("taking a screenshot: {e}"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("the screenshot's directory");
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// The page's HTML, its first 2,000 characters, for failure messages.
    pub async fn html_snippet(&self) -> String {
        match self.client.source().await {
            Ok(html) => {
                let cut: String = html.chars().take(2000).collect();
                if cut.len() < html.len() {
                    format!("{cut}…")
                } else {
                    cut
                }
            }
            Err(e) => format!("(no HTML: {e})"),
        }
    }

    /// What a failing scenario leaves behind: the page's URL and a screenshot.
    async fn report_failure(&self) {
        let path = failure_screenshot_path();
        let saved = match self.client.screenshot().await {
            Ok(png) => std::fs::write(&path, png).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match saved {
            Ok(()) => eprintln!(
                "browser was on {}; screenshot: {}",
                self.current_url().await,
                path.display()
            ),
            Err(e) => eprintln!(
                "browser was on {}; no screenshot: {e}",
                self.current_url().await
            ),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&self.driver);
    }
}

/// Chromedriver's extension command that forwards a DevTools Protocol command.
#[derive(Debug)]
struct DevToolsCommand {
    cmd: String,
    params: Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for DevToolsCommand {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({"cmd": self.cmd, "params": self.params});
        (http::Method::POST, Some(body.to_string()))
    }
}

fn failure_screenshot_path() -> PathBuf {
    std::env::temp_dir().join(format!(
        "switchboard-browser-failure-{}.png",
        uuid::Uuid::new_v4().simple()
    ))
}

/// chromedriver on `port`, leading a process group of its own so that Chromium and its
/// helpers can be stopped with it.
fn spawn_driver(port: u16) -> Child {
    Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .arg("--log-level=WARNING")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {CHROMEDRIVER}: {e}"))
}

/// Waits until chromedriver on `port` says it is ready, or has exited.
async fn wait_for_driver(driver: &mut Child, port: u16) -> Result<(), String> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(status)) = driver.try_wait() {
            return Err(format!("chromedriver exited with {status} (port {port})"));
        }
        if let Ok(reply) = http
            .get(format!("http://127.0.0.1:{port}/status"))
            .send()
            .await
            && let Ok(body) = reply.json::<Value>().await
            && body["value"]["ready"] == true
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "chromedriver on port {port} was not ready within 20 s"
            ));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn new_session(port: u16, viewport: Viewport, profile: &Path) -> Result<Client, String> {
    let (width, height) = match viewport {
        Viewport::Desktop => (1280, 900),
        Viewport::Phone => (390, 844),
    };
    let mut chrome_options = json!({
        "binary": CHROMIUM,
        "args": [
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.display()),
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-crash-reporter",
            "--lang=en-US",
        ],
    });
    if viewport == Viewport::Phone {
        chrome_options["mobileEmulation"] = json!({
            "deviceMetrics": {"width": width, "height": height, "pixelRatio": 2, "touch": true},
        });
    }
    // A page or script that hangs fails the test in half a minute, not WebDriver's five.
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": chrome_options,
        "timeouts": {"pageLoad": 30_000, "script": 30_000, "implicit": 0},
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!("a JSON object")
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .map_err(|e| e.to_string())
}

/// SIGKILL to chromedriver's process group (chromedriver, Chromium and its helpers); the
/// group is gone already when the session was closed and the driver reaped.
fn kill_group(driver: &Child) {
    if let Some(pid) = driver.id() {
        // Best effort: the group may be gone.
        std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status()
            .ok();
    }
}
