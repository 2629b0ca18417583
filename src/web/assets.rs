//! `GET /assets/{name}`: the embedded static files (`crate::assets`), named by their path under
//! `assets/` (`natter.css`, `js/live.js`). A URL carrying the file's content hash (`?v=…`, as
//! pages link them) is cached for a year (`immutable`); any other request gets an ETag to
//! revalidate with. Only the table's names are served, so no path can reach outside it.

use poem::{
    Request, Response, handler,
    http::{StatusCode, header},
    web::Path,
};

/// Serves one embedded file.
#[handler]
pub fn serve(Path(name): Path<String>, req: &Request) -> Response {
    let Some((file, hash)) = crate::assets::find(&name) else {
        return StatusCode::NOT_FOUND.into();
    };
    let etag = format!("\"{hash}\"");
    let versioned = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv.strip_prefix("v=") == Some(hash)));
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
