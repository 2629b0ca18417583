//! Static files, compiled into the binary so natter is one file to run. Pages link them as
//! `/assets/{name}?v={content hash}`; such a URL never changes content, so it is cached for a
//! year (`immutable`). Other requests get an ETag.

use std::sync::LazyLock;

use poem::{
    Request, Response, handler,
    http::{StatusCode, header},
    web::Path,
};
use sha2::{Digest, Sha256};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const FILES: &[Asset] = &[
    Asset {
        name: "natter.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../assets/natter.css"),
    },
    Asset {
        name: "natter.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/natter.js"),
    },
    Asset {
        name: "htmx.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/htmx.min.js"),
    },
    Asset {
        name: "ws.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/ws.min.js"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../../assets/icon.svg"),
    },
];

/// Each file's short content hash, computed once.
static HASHES: LazyLock<Vec<String>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|f| {
            let digest = Sha256::digest(f.bytes);
            digest[..6].iter().map(|b| format!("{b:02x}")).collect()
        })
        .collect()
});

/// The cache-busting URL of an asset, e.g. `/assets/natter.css?v=3f2a…`.
pub fn url(name: &str) -> String {
    match FILES.iter().position(|f| f.name == name) {
        Some(i) => format!("/assets/{name}?v={}", HASHES[i]),
        None => format!("/assets/{name}"),
    }
}

#[handler]
pub fn serve(Path(name): Path<String>, req: &Request) -> Response {
    let Some(i) = FILES.iter().position(|f| f.name == name) else {
        return StatusCode::NOT_FOUND.into();
    };
    let file = &FILES[i];
    let etag = format!("\"{}\"", HASHES[i]);
    let versioned = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == format!("v={}", HASHES[i])));
    let cache = if versioned {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=0, must-revalidate"
    };
    let builder = Response::builder()
        .header(header::CACHE_CONTROL, cache)
        .header(header::ETAG, etag.as_str());
    if req
        .headers()
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return builder.status(StatusCode::NOT_MODIFIED).finish();
    }
    builder
        .header(header::CONTENT_TYPE, file.content_type)
        .body(file.bytes)
}
