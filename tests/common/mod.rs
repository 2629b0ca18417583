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
mod hostile;
pub mod oidc;
mod socket;

use std::time::Duration;

// Flat paths (`common::TestApp`), as every test imports them; each binary uses only some.
#[allow(unused_imports)]
pub use {
    app::TestApp,
    browser::{Answer, Browser, extract_attr},
    db::{Backend, TestDb},
    hostile::hostile_inputs,
    oidc::{FakeProvider, FakeUser, Mode},
    socket::{Closed, Next, Socket, SocketRefused, assert_exactly, seqs_in},
};

/// Runs each listed test body once per backend: `mod name { fn sqlite(); fn postgres(); }`.
#[macro_export]
macro_rules! both {
    ($(async fn $name:ident($app:ident : TestApp) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn run($app: $crate::common::TestApp) $body
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(app) = $crate::common::TestApp::spawn($crate::common::Backend::Sqlite).await {
                    run(app).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = $crate::common::TestApp::spawn($crate::common::Backend::Postgres).await {
                    run(app).await;
                }
            }
        }
    )*};
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
