//! A headless Chromium driven over WebDriver (chromedriver), for journeys that a person
//! makes with a browser: forms, redirects, cookies, keyboard navigation, screenshots. Also
//! the Node demo relying party of `examples/demo-rp`, for journeys that start at an
//! application.
//!
//! Every method fails the test with a message naming the selector and the page; nothing
//! outlives the test, even one that panics: the chromedriver and node processes are killed
//! on drop, and Chromium goes with its chromedriver.
#![expect(
    clippy::disallowed_methods,
    reason = "polls chromedriver and the page: processes outside the test, with no clock to move"
)]

use std::fmt::Display;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Environment variable naming the Chromium binary (default `/usr/bin/chromium`).
pub const CHROMIUM_ENV: &str = "GATEHOUSE_TEST_CHROMIUM";

/// Environment variable naming the chromedriver binary (default `/usr/bin/chromedriver`).
pub const CHROMEDRIVER_ENV: &str = "GATEHOUSE_TEST_CHROMEDRIVER";

/// How long chromedriver may take to answer that it is ready.
const DRIVER_TIMEOUT: Duration = Duration::from_secs(20);

/// How long Chromium may take to start and open its session.
const SESSION_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a test waits for an element to appear.
const ELEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a page may take to load, after `goto` or a click.
const NAVIGATION_TIMEOUT: Duration = Duration::from_secs(30);

/// How long after a click a page that has not begun to unload is taken to stay put.
const NO_NAVIGATION_GRACE: Duration = Duration::from_millis(250);

/// How long after a click returned a page that began to unload, yet is still there, is taken
/// to stay put (a response without content, a download).
const CANCELLED_NAVIGATION_GRACE: Duration = Duration::from_secs(2);

/// How long the demo relying party may take to say where it listens.
const DEMO_RP_TIMEOUT: Duration = Duration::from_secs(10);

/// How to install Chromium and chromedriver, for a failure message.
const INSTALL_CHROMIUM: &str =
    "run tests/run (or `apt-get install chromium chromium-driver` as root)";

/// How to install what the demo relying party needs, for a failure message.
const INSTALL_DEMO_RP: &str =
    "run tests/run (or `npm ci` in examples/demo-rp, with Node.js 20 or newer)";

/// Between two looks at something being waited for.
const POLL: Duration = Duration::from_millis(25);

/// The window of [`Browser::start`]: a laptop screen.
const DEFAULT_SIZE: (u32, u32) = (1280, 900);

/// Marks the current document, and notes when it begins to unload, so that [`Browser::click`]
/// can tell a navigation from a click that stays on the page.
const MARK_DOCUMENT: &str = "window.__gatehouseMark = true; \
     window.__gatehouseLeaving = false; \
     window.addEventListener('beforeunload', () => { window.__gatehouseLeaving = true; });";

/// The state [`Browser::click`] waits on: `[readyState, still the marked document, unloading]`.
const DOCUMENT_STATE: &str = "return [document.readyState, window.__gatehouseMark === true, \
     window.__gatehouseLeaving === true];";

/// The document as HTML, doctype included.
const SOURCE: &str = "const doctype = document.doctype; \
     return (doctype === null ? '' : new XMLSerializer().serializeToString(doctype) + '\\n') \
     + document.documentElement.outerHTML;";

/// Whether the focused element matches the selector given as the first argument.
const FOCUS_MATCHES: &str = "const active = document.activeElement; \
     return active !== null && active.matches(arguments[0]);";

/// A headless Chromium driven over WebDriver; the chromedriver process is killed on drop.
///
/// Screenshots go to `<target>/screenshots/<test name>/`, a folder emptied when the browser
/// starts: give each browser of a test a name of its own.
pub struct Browser {
    client: Client,
    driver: Child,
    test_name: String,
    screenshots: AtomicUsize,
    /// The user-data dir of Chromium and the log of chromedriver.
    _scratch: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A session that was not closed (the test panicked): killing chromedriver closes the
        // pipe Chromium is driven through, and Chromium exits with it.
        drop(self.driver.start_kill());
    }
}

impl Browser {
    /// A browser with a laptop-sized window (1280×900).
    pub async fn start(test_name: &str) -> Browser {
        Self::start_with_size(test_name, DEFAULT_SIZE.0, DEFAULT_SIZE.1).await
    }

    /// A browser with a window of the given size in CSS pixels (e.g. 390×844 for a phone).
    ///
    /// Starts chromedriver on a free port of 127.0.0.1, then a headless Chromium with a
    /// fresh profile.
    pub async fn start_with_size(test_name: &str, width: u32, height: u32) -> Browser {
        let scratch = tempfile::tempdir().expect("temporary dir for the browser");
        let driver_binary = env_or(CHROMEDRIVER_ENV, "/usr/bin/chromedriver");
        let chromium = env_or(CHROMIUM_ENV, "/usr/bin/chromium");
        let log = scratch.path().join("chromedriver.log");
        let port = free_port();
        let mut driver = Command::new(&driver_binary)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("could not run chromedriver {driver_binary}: {e}; {INSTALL_CHROMIUM}")
            });
        let driver_url = format!("http://127.0.0.1:{port}");
        wait_until_ready(&mut driver, &driver_url, &log).await;

        let profile = scratch.path().join("profile");
        let capabilities = json!({
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "timeouts": {
                "implicit": 0,
                "pageLoad": NAVIGATION_TIMEOUT.as_millis(),
                "script": ELEMENT_TIMEOUT.as_millis(),
            },
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.display()),
                    // Chromium exits as soon as chromedriver does, even when killed.
                    "--remote-debugging-pipe",
                    // No calls home from a machine whose network is closed.
                    "--disable-component-update",
                    "--lang=en-US",
                    "--hide-scrollbars",
                ],
                // The viewport itself is width×height: a headless window of that size keeps
                // room for browser controls it does not draw, and is never under 500 wide.
                "mobileEmulation": {
                    "deviceMetrics": {
                        "width": width,
                        "height": height,
                        "pixelRatio": 1,
                        "mobile": false,
                        "touch": false,
                    },
                },
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("capabilities are a JSON object")
        };
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities);
        let connecting = builder.connect(&driver_url);
        let client = match tokio::time::timeout(SESSION_TIMEOUT, connecting).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => panic!(
                "chromedriver could not start {chromium}: {e} ({INSTALL_CHROMIUM})\n{}",
                log_tail(&log)
            ),
            Err(_) => panic!(
                "{chromium} did not start within {SESSION_TIMEOUT:?}\n{}",
                log_tail(&log)
            ),
        };

        let test_name = file_name(test_name);
        let folder = screenshot_dir(&test_name);
        if folder.exists() {
            std::fs::remove_dir_all(&folder).unwrap_or_else(|e| {
                panic!(
                    "could not empty the screenshot folder {}: {e}",
                    folder.display()
                )
            });
        }
        Browser {
            client,
            driver,
            test_name,
            screenshots: AtomicUsize::new(0),
            _scratch: scratch,
        }
    }

    /// Opens a URL and waits for it to load.
    pub async fn goto(&self, url: &str) {
        if let Err(e) = self.client.goto(url).await {
            self.fail(format_args!("could not open {url}"), e).await
        }
    }

    /// The URL of the current page.
    pub async fn current_url(&self) -> url::Url {
        match self.client.current_url().await {
            Ok(url) => url,
            Err(e) => self.fail("could not read the current URL", e).await,
        }
    }

    /// Replaces the value of the field `css` with `value`, typed as keys.
    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        if let Err(e) = field.clear().await {
            self.fail(format_args!("could not clear {css:?}"), e).await
        }
        if let Err(e) = field.send_keys(value).await {
            self.fail(format_args!("could not type into {css:?}"), e)
                .await
        }
    }

    /// Clicks the element `css` and waits until the page it leads to has loaded. A click that
    /// leaves the page in place returns after a moment: 250 ms if the page did not begin to
    /// unload, 2 s if it did (a form answered with 204 No Content).
    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        if let Err(e) = self.client.execute(MARK_DOCUMENT, vec![]).await {
            self.fail(
                format_args!("could not mark the page before clicking {css:?}"),
                e,
            )
            .await
        }
        let clicking = Instant::now();
        if let Err(e) = element.click().await {
            self.fail(format_args!("could not click {css:?}"), e).await
        }
        // chromedriver's click itself waits for the navigation it starts; this makes sure.
        let clicked = Instant::now();
        let mut last = String::from("nothing yet");
        while clicking.elapsed() < NAVIGATION_TIMEOUT {
            match self.client.execute(DOCUMENT_STATE, vec![]).await {
                Ok(Value::Array(state)) => {
                    let complete = state.first().and_then(Value::as_str) == Some("complete");
                    let same_page = state.get(1).and_then(Value::as_bool) == Some(true);
                    let leaving = state.get(2).and_then(Value::as_bool) == Some(true);
                    let settled = match (same_page, leaving) {
                        // A new document.
                        (false, _) => true,
                        // No navigation began.
                        (true, false) => clicking.elapsed() >= NO_NAVIGATION_GRACE,
                        // One began but left the page in place (a 204, a download).
                        (true, true) => clicked.elapsed() >= CANCELLED_NAVIGATION_GRACE,
                    };
                    if complete && settled {
                        return;
                    }
                    last = format!("{state:?}");
                }
                Ok(other) => last = format!("{other:?}"),
                // The old document is gone and the new one is not there yet.
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(POLL).await;
        }
        self.fail(
            format_args!(
                "the page did not settle within {NAVIGATION_TIMEOUT:?} after clicking {css:?}"
            ),
            last,
        )
        .await
    }

    /// The rendered text of the element `css`.
    pub async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        match element.text().await {
            Ok(text) => text,
            Err(e) => {
                self.fail(format_args!("could not read the text of {css:?}"), e)
                    .await
            }
        }
    }

    /// The value of a script run in the page (`return ...;`).
    pub async fn script(&self, js: &str) -> Value {
        match self.client.execute(js, vec![]).await {
            Ok(value) => value,
            Err(e) => self.fail(format_args!("could not run {js:?}"), e).await,
        }
    }

    /// Waits up to 10 s for an element matching `css`.
    pub async fn wait_for(&self, css: &str) {
        self.find(css).await;
    }

    /// The current page's DOM serialized as HTML, with its doctype (which WebDriver's own
    /// page source leaves out).
    pub async fn source(&self) -> String {
        match self.try_source().await {
            Ok(source) => source,
            Err(e) => self.fail("could not read the page source", e).await,
        }
    }

    /// Presses Tab, at most `max_tabs` times, until the focused element matches `css`;
    /// whether it got there. For keyboard-navigation checks.
    pub async fn press_tab_until_focused(&self, css: &str, max_tabs: usize) -> bool {
        for pressed in 0..=max_tabs {
            match self.client.execute(FOCUS_MATCHES, vec![json!(css)]).await {
                Ok(Value::Bool(true)) => return true,
                Ok(Value::Bool(false)) => {}
                Ok(other) => {
                    self.fail(
                        format_args!("could not match focus against {css:?}"),
                        format!("{other:?}"),
                    )
                    .await
                }
                Err(e) => {
                    self.fail(format_args!("could not match focus against {css:?}"), e)
                        .await
                }
            }
            if pressed < max_tabs {
                let tab = KeyActions::new("keyboard".to_owned())
                    .then(KeyAction::Down {
                        value: Key::Tab.into(),
                    })
                    .then(KeyAction::Up {
                        value: Key::Tab.into(),
                    });
                if let Err(e) = self.client.perform_actions(tab).await {
                    self.fail(format_args!("could not press Tab looking for {css:?}"), e)
                        .await
                }
            }
        }
        false
    }

    /// Saves a PNG of the viewport as `<target>/screenshots/<test>/<NN>-<name>.png`, and the
    /// page's HTML beside it as `<NN>-<name>.html`; returns the PNG's path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        match self.try_screenshot(name).await {
            Ok(path) => path,
            Err(e) => {
                self.fail(format_args!("could not save screenshot {name:?}"), e)
                    .await
            }
        }
    }

    /// The name and value of each cookie of the current page.
    pub async fn cookies(&self) -> Vec<(String, String)> {
        match self.client.get_all_cookies().await {
            Ok(cookies) => cookies
                .iter()
                .map(|cookie| (cookie.name().to_owned(), cookie.value().to_owned()))
                .collect(),
            Err(e) => self.fail("could not read the cookies", e).await,
        }
    }

    /// Ends the session, which closes Chromium, then stops chromedriver.
    pub async fn close(mut self) {
        if let Err(e) = self.client.clone().close().await {
            panic!("could not end the browser session: {e}");
        }
        drop(self.driver.kill().await);
    }

    /// Waits up to 10 s for an element matching `css`.
    async fn find(&self, css: &str) -> Element {
        let found = self
            .client
            .wait()
            .at_most(ELEMENT_TIMEOUT)
            .every(POLL)
            .for_element(Locator::Css(css))
            .await;
        match found {
            Ok(element) => element,
            Err(e) => {
                self.fail(
                    format_args!("no element matches {css:?} within {ELEMENT_TIMEOUT:?}"),
                    e,
                )
                .await
            }
        }
    }

    /// [`Browser::source`], or why not.
    async fn try_source(&self) -> Result<String, String> {
        match self.client.execute(SOURCE, vec![]).await {
            Ok(Value::String(source)) => Ok(source),
            Ok(other) => Err(format!("not a string: {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// [`Browser::screenshot`], or why not.
    async fn try_screenshot(&self, name: &str) -> Result<PathBuf, String> {
        let number = self.screenshots.fetch_add(1, Ordering::Relaxed) + 1;
        let folder = screenshot_dir(&self.test_name);
        std::fs::create_dir_all(&folder)
            .map_err(|e| format!("creating {}: {e}", folder.display()))?;
        let stem = format!("{number:02}-{}", file_name(name));
        let png = self.client.screenshot().await.map_err(|e| e.to_string())?;
        let html = self.try_source().await?;
        let png_path = folder.join(format!("{stem}.png"));
        let html_path = folder.join(format!("{stem}.html"));
        std::fs::write(&png_path, png)
            .map_err(|e| format!("writing {}: {e}", png_path.display()))?;
        std::fs::write(&html_path, html)
            .map_err(|e| format!("writing {}: {e}", html_path.display()))?;
        Ok(png_path)
    }

    /// Fails the test: what was being done, on which page, why, and a screenshot of it.
    async fn fail<T>(&self, doing: impl Display, error: impl Display) -> T {
        let page = match self.client.current_url().await {
            Ok(url) => url.to_string(),
            Err(e) => format!("an unknown page ({e})"),
        };
        let screenshot = match self.try_screenshot("failure").await {
            Ok(path) => format!("screenshot: {}", path.display()),
            Err(e) => format!("no screenshot: {e}"),
        };
        panic!("{doing} on {page}: {error}\n{screenshot}")
    }
}

/// Polls chromedriver's `/status` until it says it is ready.
async fn wait_until_ready(driver: &mut Child, driver_url: &str, log: &Path) {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("HTTP client");
    let status_url = format!("{driver_url}/status");
    let started = Instant::now();
    let mut last = String::from("no answer yet");
    while started.elapsed() < DRIVER_TIMEOUT {
        if let Ok(Some(exit)) = driver.try_wait() {
            panic!(
                "chromedriver exited before it was ready ({exit})\n{}",
                log_tail(log)
            );
        }
        match http.get(&status_url).send().await {
            Ok(response) => match response.json::<Value>().await {
                Ok(status) if status["value"]["ready"] == Value::Bool(true) => return,
                Ok(status) => last = status.to_string(),
                Err(e) => last = e.to_string(),
            },
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(POLL).await;
    }
    panic!(
        "chromedriver was not ready at {status_url} within {DRIVER_TIMEOUT:?}: {last}\n{}",
        log_tail(log)
    );
}

/// The end of chromedriver's log, for a failure message.
fn log_tail(log: &Path) -> String {
    match std::fs::read_to_string(log) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(30)..].join("\n");
            format!("chromedriver log ({}):\n{tail}", log.display())
        }
        Err(e) => format!("no chromedriver log at {}: {e}", log.display()),
    }
}

/// A port of 127.0.0.1 free at the time of asking (nothing holds it afterwards: use it at
/// once).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// The value of an environment variable, or `default` when it is unset or empty.
fn env_or(variable: &str, default: &str) -> String {
    match std::env::var(variable) {
        Ok(value) if !value.is_empty() => value,
        _ => default.to_owned(),
    }
}

/// The workspace's root folder.
fn workspace_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The workspace's target folder: `CARGO_TARGET_DIR` if set (a relative one taken from the
/// workspace root), else `target/` at its root.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace_root().join(dir),
        _ => workspace_root().join("target"),
    }
}

/// Where the screenshots of a test go.
fn screenshot_dir(test_name: &str) -> PathBuf {
    target_dir().join("screenshots").join(test_name)
}

/// `name` with anything but letters, digits, `-`, `_` and `.` replaced by `-`.
fn file_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    match cleaned.trim_matches('.') {
        "" => "unnamed".to_owned(),
        trimmed => trimmed.to_owned(),
    }
}

/// The Node demo relying party in examples/demo-rp, started on a free port; killed on drop.
pub struct DemoRp {
    /// Where it listens, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub url: String,
    process: Child,
}

impl Drop for DemoRp {
    fn drop(&mut self) {
        drop(self.process.start_kill());
    }
}

impl DemoRp {
    /// Runs `node server.mjs` in `examples/demo-rp` as a client of `issuer`, and waits for
    /// it to say where it listens.
    pub async fn start(issuer: &str, client_id: &str, client_secret: Option<&str>) -> DemoRp {
        Self::start_on(0, issuer, client_id, client_secret).await
    }

    /// [`DemoRp::start`] on a given port of 127.0.0.1 (`0`: any free one). A test that must
    /// register the demo's URIs before the demo knows its client id takes a port from
    /// [`free_port`], registers `http://127.0.0.1:<port>/...`, then starts the demo there.
    pub async fn start_on(
        port: u16,
        issuer: &str,
        client_id: &str,
        client_secret: Option<&str>,
    ) -> DemoRp {
        let folder = workspace_root().join("examples").join("demo-rp");
        let package = folder.join("node_modules/openid-client/package.json");
        assert!(
            package.exists(),
            "{} is missing: {INSTALL_DEMO_RP}",
            package.display()
        );
        let mut command = Command::new("node");
        command
            .arg("server.mjs")
            .current_dir(&folder)
            .env("GATEHOUSE_ISSUER", issuer)
            .env("DEMO_CLIENT_ID", client_id)
            .env("DEMO_PORT", port.to_string())
            .env("DEMO_HOST", "127.0.0.1");
        match client_secret {
            Some(secret) => command.env("DEMO_CLIENT_SECRET", secret),
            None => command.env_remove("DEMO_CLIENT_SECRET"),
        };
        let (process, url) = spawn_listening(
            command,
            &format!("demo-rp in {}", folder.display()),
            INSTALL_DEMO_RP,
        )
        .await;
        if port != 0 {
            assert_eq!(
                url,
                format!("http://127.0.0.1:{port}"),
                "the demo relying party listens elsewhere than asked"
            );
        }
        DemoRp { url, process }
    }

    /// `path` on the demo relying party.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

/// Spawns `command` and reads its standard output until it says where it listens; the
/// rest of that output goes on to the test's standard error, and so does its standard
/// error all along. `setup` says how to install what it needs, for the failure messages.
async fn spawn_listening(mut command: Command, what: &str, setup: &str) -> (Child, String) {
    let mut process = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {what}: {e}; {setup}"));
    let stdout = process.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let reading = async {
        while let Some(line) = lines.next_line().await? {
            if let Some(url) = listening_url(&line) {
                return Ok(Some(url));
            }
            eprintln!("{line}");
        }
        Ok::<_, std::io::Error>(None)
    };
    let url = match tokio::time::timeout(DEMO_RP_TIMEOUT, reading).await {
        Ok(Ok(Some(url))) => url,
        Ok(Ok(None)) => {
            let exit = process.wait().await;
            panic!(
                "{what} ended without saying where it listens ({exit:?}); its errors are above. \
                 Missing packages? {setup}"
            )
        }
        Ok(Err(e)) => panic!("could not read the output of {what}: {e}"),
        Err(_) => panic!("{what} did not say where it listens within {DEMO_RP_TIMEOUT:?}"),
    };
    // Keep reading, so that a full pipe never blocks it.
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("{line}");
        }
    });
    (process, url)
}

/// The URL in a `demo-rp listening on http://127.0.0.1:<port>` line.
fn listening_url(line: &str) -> Option<String> {
    let url = line.trim().strip_prefix("demo-rp listening on ")?;
    let parsed = url::Url::parse(url).ok()?;
    let port = parsed.port()?;
    (parsed.scheme() == "http" && port != 0).then(|| url.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_listening_line() {
        assert_eq!(
            listening_url("demo-rp listening on http://127.0.0.1:41234\n").as_deref(),
            Some("http://127.0.0.1:41234")
        );
        assert_eq!(listening_url("demo-rp starting"), None);
        assert_eq!(
            listening_url("demo-rp listening on http://127.0.0.1:0"),
            None
        );
        assert_eq!(listening_url("demo-rp listening on nowhere"), None);
    }

    #[test]
    fn file_names_stay_in_their_folder() {
        assert_eq!(file_name("login::sqlite"), "login--sqlite");
        assert_eq!(file_name("../etc/passwd"), "-etc-passwd");
        assert_eq!(file_name(".."), "unnamed");
        assert_eq!(file_name("01-sign in"), "01-sign-in");
    }
}
