//! Debian's Chromium driven through chromedriver (WebDriver, with fantoccini): one chromedriver
//! and one fresh profile per browser, at most two browsers at once (DESIGN.md §9).

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use base64::Engine;
use fantoccini::{
    Client, ClientBuilder, Locator,
    actions::{InputSource, KeyAction, KeyActions},
    elements::Element,
    wd::WebDriverCompatibleCommand,
};
use serde_json::{Value, json};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::common::skip_or_fail;

/// How long a page may take to show what a test waits for. Generous: the suite shares two
/// cores with Chromium, PostgreSQL and the compiler.
pub const WAIT: Duration = Duration::from_secs(30);

static BROWSERS: Semaphore = Semaphore::const_new(2);

/// Desktop and phone viewports for screenshots.
pub const DESKTOP: (u32, u32) = (1280, 860);
pub const PHONE: (u32, u32) = (390, 844);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Js {
    On,
    /// Off by Chrome's content setting, as a person who disabled JavaScript has it.
    Off,
}

/// A running Chromium.
pub struct Chrome {
    pub client: Client,
    /// The URL pages are relative to.
    pub base: String,
    pub js: Js,
    driver: Child,
    _profile: tempfile::TempDir,
    _permit: Option<SemaphorePermit<'static>>,
}

fn binaries() -> Option<(String, String)> {
    let chromium =
        std::env::var("NATTER_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let driver =
        std::env::var("NATTER_TEST_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let driver_found = std::process::Command::new(&driver)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !driver_found || !std::path::Path::new(&chromium).exists() {
        skip_or_fail(
            "chromium",
            "chromium or chromedriver is not installed (apt-get install chromium chromium-driver)",
        );
        return None;
    }
    Some((chromium, driver))
}

/// `target/screenshots/` in the source tree (where people look), created if missing.
pub fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/screenshots"));
    std::fs::create_dir_all(&dir).expect("create target/screenshots");
    dir
}

impl Chrome {
    /// One browser, or `None` (skipped) when Chromium is not installed.
    pub async fn start(base: &str, js: Js) -> Option<Chrome> {
        let permit = BROWSERS.acquire().await.expect("semaphore");
        Self::launch(base, js, Some(permit)).await
    }

    /// Two browsers at once (two people), taken together so tests cannot deadlock.
    pub async fn pair(base: &str, js: Js) -> Option<(Chrome, Chrome)> {
        let permit = BROWSERS.acquire_many(2).await.expect("semaphore");
        let one = Self::launch(base, js, Some(permit)).await?;
        let two = Self::launch(base, js, None).await?;
        Some((one, two))
    }

    async fn launch(
        base: &str,
        js: Js,
        permit: Option<SemaphorePermit<'static>>,
    ) -> Option<Chrome> {
        let (chromium, driver_bin) = binaries()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Its own process group, so dropping the browser can end Chromium too, even when a
        // test panics before `quit`.
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().unwrap();
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--lang=en-GB".into(),
            format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut prefs = json!({});
        if js == Js::Off {
            prefs["profile.managed_default_content_settings.javascript"] = json!(2);
        }
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args, "prefs": prefs },
            "goog:loggingPrefs": { "browser": "ALL" },
            // An alert a script opened stays open, so a test can see it.
            "unhandledPromptBehavior": "ignore",
        });
        let mut caps = caps;
        if js == Js::Off {
            // A room page without JavaScript streams its conversation in a frame whose document
            // never finishes loading (nor, then, does the page): navigation waits for the
            // parsed page, not for its load event.
            caps["pageLoadStrategy"] = json!("eager");
        }
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + WAIT;
        let client = loop {
            let mut builder =
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
            match builder.capabilities(caps.clone()).connect(&url).await {
                Ok(client) => break client,
                Err(e) if Instant::now() > deadline => panic!("chromedriver on {port}: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        Some(Chrome {
            client,
            base: base.trim_end_matches('/').to_string(),
            js,
            driver,
            _profile: profile,
            _permit: permit,
        })
    }

    /// Closes the browser and its driver.
    pub async fn quit(self) {
        let _ = self.client.clone().close().await;
    }

    pub async fn goto(&self, path: &str) {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        self.client
            .goto(&url)
            .await
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// The path (and query) of the current page.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("current url");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// Waits for an element. Retries every failure, not only "no such element": a lookup
    /// made while a form post navigates answers "aborted by navigation".
    pub async fn find(&self, css: &str) -> Element {
        let start = Instant::now();
        loop {
            match self.client.find(Locator::Css(css)).await {
                Ok(element) => return element,
                Err(_) if start.elapsed() < WAIT => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => {
                    let shot = self.failure_shot().await;
                    panic!(
                        "no {css} on {}: {e} (screenshot {shot})",
                        self.path_or_unknown().await,
                    )
                }
            }
        }
    }

    async fn path_or_unknown(&self) -> String {
        match self.client.current_url().await {
            Ok(u) => u.to_string(),
            Err(_) => "?".into(),
        }
    }

    pub async fn exists(&self, css: &str) -> bool {
        self.client.find(Locator::Css(css)).await.is_ok()
    }

    pub async fn click(&self, css: &str) {
        if let Err(e) = self.find(css).await.click().await {
            let shot = self.failure_shot().await;
            panic!("click {css}: {e} (screenshot {shot})");
        }
    }

    /// Types into a field (real key events; characters in the Basic Multilingual Plane only).
    pub async fn type_into(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("clear");
        field
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Replaces a field's text as a person would: select all, then type. (WebDriver's clear()
    /// bypasses the events that script-driven fields, such as Swagger UI's, listen to.)
    pub async fn replace_text(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.click().await.expect("focus the field");
        let (ctrl, a) = (CONTROL.chars().next().unwrap(), 'a');
        let select_all = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: ctrl })
            .then(KeyAction::Down { value: a })
            .then(KeyAction::Up { value: a })
            .then(KeyAction::Up { value: ctrl });
        self.client.perform_actions(select_all).await.expect("keys");
        field
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("text")
    }

    /// Runs `return (expr)` in the page.
    pub async fn js(&self, expr: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(&format!("return ({expr});"), args)
            .await
            .unwrap_or_else(|e| panic!("script {expr}: {e}"))
    }

    /// Polls the page until `expr` is true; panics with `what` after `WAIT`.
    pub async fn wait_until(&self, what: &str, expr: &str, args: Vec<Value>) -> Duration {
        let start = Instant::now();
        loop {
            if let Ok(Value::Bool(true)) = self
                .client
                .execute(&format!("return !!({expr});"), args.clone())
                .await
            {
                return start.elapsed();
            }
            if start.elapsed() > WAIT {
                let shot = self.failure_shot().await;
                panic!(
                    "waited {WAIT:?} for {what} on {} (screenshot {shot})",
                    self.path_or_unknown().await,
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the browser is on `path` (after a redirect or form post).
    pub async fn wait_for_path(&self, prefix: &str) {
        let start = Instant::now();
        loop {
            let path = self.path().await;
            if path.starts_with(prefix) {
                return;
            }
            if start.elapsed() > WAIT {
                panic!("waited for {prefix}, still on {path}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the browser is on exactly `path`.
    pub async fn wait_until_path_is(&self, want: &str) {
        let start = Instant::now();
        loop {
            let path = self.path().await;
            if path == want {
                return;
            }
            if start.elapsed() > WAIT {
                panic!("waited for {want}, still on {path}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Moves WebDriver into the frame `css` of the page (a room without JavaScript has its
    /// conversation and composer in frames); `leave_frame` comes back.
    pub async fn enter_frame(&self, css: &str) {
        let frame = self.find(css).await;
        frame
            .enter_frame()
            .await
            .unwrap_or_else(|e| panic!("enter {css}: {e}"));
    }

    /// Back to the page itself (also after a link in a frame replaced the page).
    pub async fn leave_frame(&self) {
        // Switching to the window is switching to its top-level page, wherever WebDriver was
        // (even in a frame the page has since replaced).
        let window = self.client.window().await.expect("the window");
        self.client
            .switch_to_window(window)
            .await
            .expect("back to the page");
    }

    /// The texts of the message bodies on the page, oldest first: in the live frame when the
    /// page streams its conversation, otherwise in the page itself.
    pub async fn message_texts(&self) -> Vec<String> {
        if self.js == Js::Off && self.exists("iframe.live-frame").await {
            self.wait_until(
                "the streamed conversation",
                "document.querySelector('iframe.live-frame').contentDocument?.querySelector('#log, .stream-notice')",
                vec![],
            )
            .await;
            let texts = self
                .js(
                    "[...document.querySelector('iframe.live-frame').contentDocument
                        .querySelectorAll('article.message .message-body')].map((b) => b.textContent)",
                    vec![],
                )
                .await;
            return serde_json::from_value(texts).expect("texts");
        }
        let all = self
            .client
            .find_all(Locator::Css("article.message .message-body"))
            .await
            .expect("messages");
        let mut out = Vec::new();
        for m in all {
            out.push(
                m.prop("textContent")
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or_default(),
            );
        }
        out
    }

    pub async fn set_size(&self, (w, h): (u32, u32)) {
        self.client
            .set_window_size(w, h)
            .await
            .expect("window size");
    }

    /// Saves a PNG of the whole page (not only the part in the viewport) under
    /// `target/screenshots/`; returns its path. A capture that fails fails the test.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        self.capture(name)
            .await
            .unwrap_or_else(|e| panic!("screenshot {name}: {e}"))
    }

    /// A screenshot for a failure message: never panics (the test is failing already).
    pub async fn failure_shot(&self) -> String {
        match self.capture("failure").await {
            Ok(path) => path.display().to_string(),
            Err(e) => format!("no screenshot: {e}"),
        }
    }

    async fn capture(&self, name: &str) -> Result<PathBuf, String> {
        let path = screenshot_dir().join(format!("{name}.png"));
        let png = self.capture_all().await?;
        std::fs::write(&path, png).map_err(|e| e.to_string())?;
        Ok(path)
    }

    /// One capture of the document's full size (what DevTools' "full size screenshot" does).
    /// Chromium lays the page out without a scrollbar for it, so the width is at least the
    /// window's, scrollbar included, or the right edge would be cut off (and wider when the
    /// page overflows, so that shows).
    async fn capture_all(&self) -> Result<Vec<u8>, String> {
        let metrics = self.cdp("Page.getLayoutMetrics", json!({})).await?;
        let window = self
            .client
            .execute("return window.innerWidth;", vec![])
            .await
            .map_err(|e| e.to_string())?;
        let width = metrics["cssContentSize"]["width"]
            .as_f64()
            .zip(window.as_f64())
            .map(|(content, window)| content.max(window));
        let height = metrics["cssContentSize"]["height"].as_f64();
        let (Some(width), Some(height)) = (width, height) else {
            return Err(format!("no page size in {metrics}"));
        };
        let shot = self
            .cdp(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": { "x": 0, "y": 0, "width": width, "height": height, "scale": 1 },
                }),
            )
            .await?;
        let data = shot["data"].as_str().ok_or("no image data")?;
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| e.to_string())
    }

    /// Resizes the window and lets the page lay itself out again.
    pub async fn resize(&self, size: (u32, u32)) {
        self.set_size(size).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    /// Screenshots at desktop and phone widths (`{name}-desktop.png`, `{name}-phone.png`).
    pub async fn screenshots(&self, name: &str) {
        for (size, label) in [(DESKTOP, "desktop"), (PHONE, "phone")] {
            self.resize(size).await;
            self.screenshot(&format!("{name}-{label}")).await;
        }
        self.set_size(DESKTOP).await;
    }

    /// A DevTools-protocol command; its result.
    pub async fn cdp(&self, cmd: &'static str, params: Value) -> Result<Value, String> {
        self.client
            .issue_cmd(Cdp { cmd, params })
            .await
            .map_err(|e| format!("{cmd}: {e}"))
    }

    /// Browser-console entries since the last call: errors, warnings and every
    /// Content-Security-Policy report (Chromium logs violations to the console).
    pub async fn console_problems(&self) -> Vec<String> {
        let log = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("browser log");
        log.as_array()
            .into_iter()
            .flatten()
            .filter(|e| {
                let level = e["level"].as_str().unwrap_or("");
                let message = e["message"].as_str().unwrap_or("");
                level == "SEVERE"
                    || level == "WARNING"
                    || message.contains("Content Security Policy")
            })
            .map(|e| format!("{} {}", e["level"], e["message"]))
            .collect()
    }

    /// Asserts the console is clean (no errors, no CSP violations) since the last check.
    pub async fn assert_console_clean(&self, page: &str) {
        self.assert_console_clean_but_statuses(page, &[]).await;
    }

    /// As `assert_console_clean`, except that pages answered with one of `statuses` (a refused
    /// form's 422, an error page's 403) are expected: Chromium reports each as a failed load.
    pub async fn assert_console_clean_but_statuses(&self, page: &str, statuses: &[u16]) {
        let problems: Vec<String> = self
            .console_problems()
            .await
            .into_iter()
            .filter(|p| {
                !statuses
                    .iter()
                    .any(|s| p.contains(&format!("the server responded with a status of {s} ")))
            })
            .collect();
        assert!(
            problems.is_empty(),
            "console problems on {page}: {problems:#?}"
        );
    }

    /// As `assert_console_clean`, except for the browser's own reports of failed socket
    /// connections while the server was away (and failed resource loads during it).
    pub async fn assert_console_problems_only_from_the_outage(&self) {
        let problems: Vec<String> = self
            .console_problems()
            .await
            .into_iter()
            .filter(|p| {
                !p.contains("WebSocket connection to") && !p.contains("net::ERR_CONNECTION_REFUSED")
            })
            // htmx's ws extension logs each failed attempt as an error event.
            .filter(|p| !(p.contains("htmx.min.js") && p.contains("[object Event]")))
            .collect();
        assert!(
            problems.is_empty(),
            "console problems besides the outage: {problems:#?}"
        );
    }

    /// Whether a script opened a dialog (alert, confirm, prompt).
    pub async fn dialog_open(&self) -> Option<String> {
        self.client.get_alert_text().await.ok()
    }

    /// Runs axe-core (vendored for tests) on the current page; returns serious and critical
    /// violations as readable lines.
    pub async fn axe(&self) -> Vec<String> {
        const AXE: &str = include_str!("../vendor/axe.min.js");
        self.client.execute(AXE, vec![]).await.expect("axe loads");
        let result = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { resultTypes: ['violations'] })
                    .then((r) => done(r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
                        .map((v) => v.id + ': ' + v.help + ' @ ' + v.nodes.map((n) => n.target.join(' ') + ' ' + n.failureSummary).join(', '))))
                    .catch((e) => done(['axe failed: ' + e]));",
                vec![],
            )
            .await
            .expect("axe runs");
        result
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    }

    /// The id (or tag) of the focused element.
    pub async fn focused(&self) -> String {
        self.js(
            "document.activeElement ? (document.activeElement.id || document.activeElement.tagName.toLowerCase() + ':' + document.activeElement.textContent.trim()) : ''",
            vec![],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Presses keys wherever the focus is, as a keyboard would (WebDriver key codes, e.g.
    /// `TAB`, `ENTER`).
    pub async fn press(&self, keys: &str) {
        let mut actions = KeyActions::new("keyboard".into());
        for value in keys.chars() {
            actions = actions
                .then(KeyAction::Down { value })
                .then(KeyAction::Up { value });
        }
        self.client.perform_actions(actions).await.expect("keys");
    }

    /// Makes the page report `prefers-color-scheme: dark` (through the DevTools protocol).
    pub async fn dark(&self, on: bool) {
        let params = json!({ "features": [{ "name": "prefers-color-scheme", "value": if on { "dark" } else { "light" } }] });
        self.cdp("Emulation.setEmulatedMedia", params)
            .await
            .expect("emulate dark mode");
        // Let colour transitions finish before anyone measures contrast.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }

    /// Lets pages on natter read and write the clipboard without asking, as a person who
    /// allowed it would (writing needs no leave after a click; reading back does).
    pub async fn allow_clipboard(&self) {
        let params = json!({
            "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"],
            "origin": self.base,
        });
        self.cdp("Browser.grantPermissions", params)
            .await
            .expect("grant clipboard permissions");
    }

    /// Presses Tab until `target` has focus (at most 40 times); panics otherwise. `target` is
    /// what `focused` says: an id, or `tag:text` for an element without one.
    pub async fn tab_to(&self, target: &str) {
        for _ in 0..40 {
            if self.focused().await == target {
                return;
            }
            self.press(TAB).await;
        }
        panic!("Tab never reached {target} on {}", self.path().await);
    }

    /// Shift+Enter, as a keyboard would.
    pub async fn press_shift_enter(&self) {
        let (shift, enter) = (SHIFT.chars().next().unwrap(), ENTER.chars().next().unwrap());
        let actions = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: shift })
            .then(KeyAction::Down { value: enter })
            .then(KeyAction::Up { value: enter })
            .then(KeyAction::Up { value: shift });
        self.client.perform_actions(actions).await.expect("keys");
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

pub const TAB: &str = "\u{E004}";
pub const ENTER: &str = "\u{E007}";
pub const SHIFT: &str = "\u{E008}";
pub const CONTROL: &str = "\u{E009}";

/// chromedriver's log endpoint (not in W3C WebDriver, but what Selenium's `get_log` uses).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

/// A DevTools-protocol command through chromedriver.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "cmd": self.cmd, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}
