//! What every test starts from: the real natter on `127.0.0.1:0` with a fresh database (a temp
//! SQLite file, or a fresh PostgreSQL database cloned from a migrated template), the strict fake
//! OIDC provider, an HTTP client with a cookie jar and redirects off, and real WebSocket clients.
//!
//! One file per concern: `db` (the databases), `app` (natter itself), `browser` (HTTP),
//! `socket` (the live socket), `hostile` (the hostile-inputs fixture), `oidc` (the provider).
//! Here: `both!`, which runs a test on each database, and what tests share beyond those.
#![allow(dead_code)]

mod app;
mod browser;
mod db;
pub mod files;
pub mod garage;
mod hostile;
pub mod oidc;
mod socket;

use std::time::Duration;

// Flat paths (`common::TestApp`), as every test imports them; each binary uses only some.
#[allow(unused_imports)]
pub use {
    app::TestApp,
    browser::{Answer, Browser, extract_attr, multipart},
    db::{Backend, TestDb},
    hostile::hostile_inputs,
    oidc::{FakeProvider, FakeUser, Mode},
    socket::{Closed, Next, Socket, SocketRefused, assert_exactly, seqs_in},
};

/// Runs each listed test body once per backend: `mod name { fn sqlite(); fn postgres(); }`.
///
/// A test that needs other `NATTER_*` settings (tighter limits, a provider that is down) names
/// them above itself, and natter starts with them on both backends:
///
/// ```ignore
/// both! {
///     #[settings(NATTER_LIMIT_POSTS = "20/1h", NATTER_HUB_CAPACITY = "2")]
///     async fn posting_too_fast_is_refused(app: TestApp) { … }
/// }
/// ```
#[macro_export]
macro_rules! both {
    ($(
        $(#[settings($($key:ident = $value:expr),+ $(,)?)])?
        async fn $name:ident($app:ident : TestApp) $body:block
    )*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn run($app: $crate::common::TestApp) $body
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let settings: &[(&str, &str)] = &[$($((stringify!($key), $value)),+)?];
                $crate::common::run_on($crate::common::Backend::Sqlite, settings, run).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let settings: &[(&str, &str)] = &[$($((stringify!($key), $value)),+)?];
                $crate::common::run_on($crate::common::Backend::Postgres, settings, run).await;
            }
        }
    )*};
}

/// What `both!` does per backend: natter on a fresh database with `settings`, then `test` on it;
/// nothing (having said why) where the backend is unavailable.
pub async fn run_on<T, F>(backend: Backend, settings: &[(&str, &str)], test: T)
where
    T: FnOnce(TestApp) -> F,
    F: Future<Output = ()>,
{
    if let Some(app) = TestApp::spawn_with(backend, settings).await {
        test(app).await;
    }
}

/// Whether `NATTER_TEST_REQUIRE` makes a missing dependency a failure instead of a skip.
pub fn required(what: &str) -> bool {
    std::env::var("NATTER_TEST_REQUIRE")
        .unwrap_or_default()
        .split(',')
        .any(|s| s.trim() == what)
}

/// Skips (prints why) or, when required, fails.
pub fn skip_or_fail(what: &str, why: &str) {
    if required(what) {
        panic!("{what} is required by NATTER_TEST_REQUIRE but unavailable: {why}");
    }
    eprintln!("skipping: {what} unavailable ({why})");
}

/// Whether `binary` runs (`binary version_flag` succeeds); otherwise skips (saying to install
/// Debian's `package`) or, when `NATTER_TEST_REQUIRE` names `binary`, fails.
pub fn tool_installed(binary: &str, version_flag: &str, package: &str) -> bool {
    let found = std::process::Command::new(binary)
        .arg(version_flag)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        skip_or_fail(
            binary,
            &format!("the {binary} binary is not installed (apt-get install {package})"),
        );
    }
    found
}

/// Polls `check` until it is true or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The value of one `/metrics` series (name with labels, e.g.
/// `natter_http_responses_total{status="200"}`) at `base`, or `None` if it is absent.
pub async fn metric(base: &str, series: &str) -> Option<f64> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}
