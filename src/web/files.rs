//! `GET /files/{token}/{name}`: an attachment, to members of its room only (anyone else gets
//! 404, as for no such file, and it costs them a wrong guess like any room route). `?v=thumb`
//! is an image's thumbnail.
//!
//! Only images natter decoded and re-encoded a thumbnail of are shown inline; everything else
//! (SVG and HTML above all: they are "Text") is a download, `nosniff`, and sandboxed by its own
//! CSP should a browser render it anyway. Downloads answer `Range` requests.

use futures_util::StreamExt;
use poem::{
    Body, Request, Response, handler,
    http::{HeaderValue, StatusCode, header},
    web::{Path, Query},
};
use serde::Deserialize;

use crate::{
    State, actions,
    auth::{AppData, CurrentUser},
    error::AppError,
    files::{
        StorageError,
        name::{Disposition, content_disposition},
    },
    refusal::Refusal,
};

/// The route's token (its `{name}` is for people and for "save as": the token finds the file).
#[derive(Deserialize)]
pub struct FileParams {
    token: String,
}

/// `?v=thumb`.
#[derive(Deserialize)]
pub struct Variant {
    v: Option<String>,
}

/// What every file answer carries: nothing in it may run, and nothing outside may frame it.
const FILE_CSP: &str = "default-src 'none'; sandbox; frame-ancestors 'none'";

/// `GET /files/{token}/{name}`.
#[handler]
pub async fn serve(
    state: AppData<'_>,
    req: &Request,
    user: CurrentUser,
    Path(FileParams { token }): Path<FileParams>,
    Query(variant): Query<Variant>,
) -> poem::Result<Response> {
    let thumb = variant.v.as_deref() == Some("thumb");
    respond(&state, req, user.id, &token, thumb)
        .await
        .map_err(|refusal| AppError::from(refusal).into())
}

/// The answer to `user_id` asking for the file (or, with `thumb`, the thumbnail) with this
/// token: the one way a file is served, by the pages (session) and the API (token) alike.
/// `200` or `206` (a `Range`), `304` (its `ETag`), `416` (a range past the end), each with
/// the headers every file answer carries; a refusal (not found, which costs a wrong guess
/// where the token is not one of the person's rooms' files; too many guesses; storage
/// unavailable) for the caller to render its own way.
pub async fn respond(
    state: &State,
    req: &Request,
    user_id: i64,
    token: &str,
    thumb: bool,
) -> Result<Response, Refusal> {
    let valid = token.len() == 26 && token.bytes().all(|b| b.is_ascii_alphanumeric());
    let found = match valid {
        true => state.store.file_for_member(token, user_id).await?,
        false => None,
    };
    let Some(file) = found else {
        return Err(actions::not_found(state, user_id));
    };
    let (key, mime, disposition, etag) = match (thumb, &file.thumb_key) {
        (true, Some(key)) => (
            key,
            thumb_type(key),
            Disposition::Inline,
            format!("\"{token}-t\""),
        ),
        (true, None) => return Err(Refusal::NotFound),
        // Inline only what natter could decode as an image (it has a thumbnail).
        (false, Some(_)) => (
            &file.storage_key,
            file.mime.as_str(),
            Disposition::Inline,
            format!("\"{token}\""),
        ),
        (false, None) => (
            &file.storage_key,
            file.mime.as_str(),
            Disposition::Attachment,
            format!("\"{token}\""),
        ),
    };
    if req
        .headers()
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return Ok(headers(Response::builder().status(StatusCode::NOT_MODIFIED), &etag).finish());
    }
    let size = if thumb {
        None
    } else {
        Some(file.size.max(0) as u64)
    };
    let range = match (size, req.headers().get(header::RANGE)) {
        (Some(size), Some(range)) => match parse_range(range.to_str().unwrap_or_default(), size) {
            Ranged::Whole => None,
            Ranged::Part(range) => Some(range),
            Ranged::Unsatisfiable => {
                let response = Response::builder()
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, format!("bytes */{size}"));
                return Ok(headers(response, &etag).finish());
            }
        },
        _ => None,
    };
    let stored = match state.files.storage().get(key, range.clone()).await {
        Ok(stored) => stored,
        Err(StorageError::NotFound) => {
            tracing::warn!(%token, "a file's bytes are missing from storage");
            return Err(Refusal::NotFound);
        }
        Err(e) => {
            tracing::error!(error = %e, %token, "could not read a file from storage");
            return Err(Refusal::Unavailable);
        }
    };
    let body = Body::from_bytes_stream(stored.chunks.map(|c| c.map_err(std::io::Error::other)));
    let mut response = Response::builder()
        .header(header::CONTENT_TYPE, mime)
        .header(
            header::CONTENT_DISPOSITION,
            content_disposition(disposition, &file.name),
        )
        .header(header::ACCEPT_RANGES, "bytes");
    response = match &range {
        Some(r) => response
            .status(StatusCode::PARTIAL_CONTENT)
            .header(
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{}", r.start, r.end - 1, stored.size),
            )
            .header(header::CONTENT_LENGTH, r.end - r.start),
        None => response.header(header::CONTENT_LENGTH, stored.size),
    };
    Ok(headers(response, &etag).body(body))
}

/// The headers every file answer carries.
fn headers(response: poem::ResponseBuilder, etag: &str) -> poem::ResponseBuilder {
    response
        .header(header::CONTENT_SECURITY_POLICY, FILE_CSP)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        // A file never changes under its token; only members get it, so only their browser
        // keeps it.
        .header(
            header::CACHE_CONTROL,
            "private, max-age=31536000, immutable",
        )
        .header(
            header::ETAG,
            HeaderValue::from_str(etag).unwrap_or(HeaderValue::from_static("\"\"")),
        )
}

/// A thumbnail's type, which its key ends with (`files::Files::store`): JPEG, or PNG where the
/// image has transparency.
fn thumb_type(key: &str) -> &'static str {
    match key.ends_with(".png") {
        true => "image/png",
        false => "image/jpeg",
    }
}

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Ranged {
    /// No usable range (absent, several, or malformed: the whole file, as RFC 9110 allows).
    Whole,
    /// One range, within the file.
    Part(std::ops::Range<u64>),
    /// A range that starts past the end (416).
    Unsatisfiable,
}

fn parse_range(header: &str, size: u64) -> Ranged {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ranged::Whole;
    };
    if spec.contains(',') {
        return Ranged::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ranged::Whole;
    };
    let number = |s: &str| s.trim().parse::<u64>().ok();
    let range = match (first.trim().is_empty(), number(first), number(last)) {
        // `-N`: the last N bytes.
        (true, _, Some(n)) if n > 0 => size.saturating_sub(n)..size,
        (true, _, _) => return Ranged::Unsatisfiable,
        (false, Some(start), None) if last.trim().is_empty() => start..size,
        (false, Some(start), Some(end)) if end >= start => start..(end + 1).min(size),
        _ => return Ranged::Whole,
    };
    match range.start < size {
        true => Ranged::Part(range),
        false => Ranged::Unsatisfiable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range("bytes=0-99", 1000), Ranged::Part(0..100));
        assert_eq!(parse_range("bytes=900-", 1000), Ranged::Part(900..1000));
        assert_eq!(parse_range("bytes=-100", 1000), Ranged::Part(900..1000));
        assert_eq!(parse_range("bytes=-5000", 1000), Ranged::Part(0..1000));
        assert_eq!(parse_range("bytes=990-2000", 1000), Ranged::Part(990..1000));
        assert_eq!(parse_range("bytes=1000-", 1000), Ranged::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 1000), Ranged::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Ranged::Whole);
        assert_eq!(parse_range("bytes=5-1", 1000), Ranged::Whole);
        assert_eq!(parse_range("items=0-1", 1000), Ranged::Whole);
        assert_eq!(parse_range("bytes=abc", 1000), Ranged::Whole);
    }
}
