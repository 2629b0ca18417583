//! The static files compiled into the binary (so natter is one file to run), and the
//! cache-busting URLs pages link them by: `/assets/{name}?v={content hash}`. Such a URL never
//! changes content, so `web::assets` serves it with a year-long cache; other requests get an ETag.

use std::sync::LazyLock;

use sha2::{Digest, Sha256};

/// One embedded file.
pub struct Asset {
    /// Its path under `assets/` in the source tree, and under `/assets/` in URLs.
    pub name: &'static str,
    /// The `Content-Type` it is served with.
    pub content_type: &'static str,
    /// Its bytes, as they were in `assets/` when natter was built.
    pub bytes: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";

/// The table entry for `assets/{name}`.
macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            bytes: include_bytes!(concat!("../assets/", $name)),
        }
    };
}

const FILES: &[Asset] = &[
    asset!("natter.css", "text/css; charset=utf-8"),
    // Pages without JavaScript: the room's frames (`views::stream`).
    asset!("no-js.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    // Vendored (assets/VERSIONS); every page loads them first.
    asset!("htmx.min.js", JS),
    asset!("ws.min.js", JS),
    // Server-Sent Events, for pages whose sockets never open (`js/live.js` switches).
    asset!("sse.min.js", JS),
    // natter's own script: one ES module per behaviour, each loaded by every page (in this
    // order) and talking to the others only through the DOM and htmx events.
    asset!("js/live.js", JS),
    asset!("js/composer.js", JS),
    asset!("js/attach.js", JS),
    asset!("js/scroll.js", JS),
    asset!("js/members.js", JS),
    asset!("js/times.js", JS),
    asset!("js/copy.js", JS),
    asset!("js/edit.js", JS),
    asset!("js/mentions.js", JS),
    asset!("js/unread.js", JS),
    asset!("js/typing.js", JS),
    asset!("js/notify.js", JS),
    // The service worker (Web Push), served as `/sw.js` for its scope (`web::push`).
    asset!("sw.js", JS),
];

/// Each file's short content hash and versioned URL, computed once: every page links a
/// dozen of them.
static VERSIONS: LazyLock<Vec<(String, String)>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|f| {
            let digest = Sha256::digest(f.bytes);
            let hash: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
            let url = format!("/assets/{}?v={hash}", f.name);
            (hash, url)
        })
        .collect()
});

/// The file called `name`, with its content hash.
pub fn find(name: &str) -> Option<(&'static Asset, &'static str)> {
    let i = FILES.iter().position(|f| f.name == name)?;
    Some((&FILES[i], VERSIONS[i].0.as_str()))
}

/// natter's own scripts, in the order pages load them (as modules, after htmx and its ws
/// extension), by their versioned URLs. They import nothing: an imported URL would carry no
/// content hash, so it would be revalidated on every page load instead of cached for a year.
pub fn modules() -> impl Iterator<Item = &'static str> {
    FILES
        .iter()
        .zip(VERSIONS.iter())
        .filter(|(f, _)| f.name.starts_with("js/"))
        .map(|(_, (_, url))| url.as_str())
}

/// The cache-busting URL of an embedded asset, e.g. `/assets/natter.css?v=3f2a…`. A name that
/// is not in the table gets a plain URL (which then answers 404).
pub fn url(name: &str) -> std::borrow::Cow<'static, str> {
    match FILES.iter().position(|f| f.name == name) {
        Some(i) => VERSIONS[i].1.as_str().into(),
        None => format!("/assets/{name}").into(),
    }
}
