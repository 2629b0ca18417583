//! The JSON API (`/api/v1`), built with poem-openapi: the spec at `/api/v1/openapi.json` is
//! generated from these very handlers, and `/api/docs` shows it.
//!
//! Every operation acts through `actions`, like the pages do, so a rule (validation, limits,
//! membership, live delivery) cannot differ between a form post and an API call. Callers are
//! identified by personal access tokens only (`auth`); every error is problem+json (`problem`).

mod auth;
mod direct;
mod docs;
mod files;
mod me;
mod messages;
mod notify;
mod problem;
mod rooms;
mod search;
mod settings;
mod text;
mod upload;

use poem::{EndpointExt, IntoEndpoint, Response, Route, endpoint::make_sync, http::header};
use poem_openapi::{OpenApiService, Tags};
use time::OffsetDateTime;

/// The groups operations are listed under in the docs.
#[derive(Tags)]
enum Tag {
    /// Who the token acts for.
    Account,
    /// Rooms you are a member of: list, create, join, look inside, leave.
    Rooms,
    /// Reading a room's history and posting into it.
    Messages,
    /// Direct conversations between two people: list, open. Inside, each is a room.
    Direct,
}

/// Introduction shown at the top of `/api/docs` (Markdown).
const DESCRIPTION: &str = r#"natter's JSON API: everything a person can do on the pages, for scripts.

## Tokens

Create a **personal access token** on your profile page (`/profile`, section *API tokens*). It is
shown once; natter keeps only its hash. Send it with every request:

    Authorization: Bearer ntr_…

A token acts as you. Revoke it on the profile page and it stops working at once (401).

The API accepts **only** bearer tokens, never the session cookie of the web pages. Browsers
attach cookies to cross-site requests on their own but never an `Authorization` header, so no
other site can make your browser act through the API: that is why the API needs no CSRF token
(and the pages, which use the cookie, do).

## Posting from curl

    export NATTER_TOKEN=ntr_…          # from your profile page
    curl -s -H "Authorization: Bearer $NATTER_TOKEN" https://natter.example/api/v1/rooms
    curl -s -X POST -H "Authorization: Bearer $NATTER_TOKEN" \
         -H 'Content-Type: application/json' -H "Idempotency-Key: $(uuidgen)" \
         -d '{"body": "Hello from curl!"}' \
         https://natter.example/api/v1/rooms/ABCD-EFGH/messages

The message appears at once in every browser that has the room open: it takes exactly the path a
message typed on the page takes (same validation, same limits, same live delivery).

## Files

Attach files by posting `multipart/form-data` instead of JSON: the text as a `body` part (it may
be empty) and each file as a `files` part. Each message lists its files under `attachments`, with
a `url` to download it (and, for an image, a `thumbnail_url`) with the same token:

    curl -s -X POST -H "Authorization: Bearer $NATTER_TOKEN" -H "Idempotency-Key: $(uuidgen)" \
         -F 'body=The plan' -F files=@whiteboard.png -F files=@plan.pdf \
         https://natter.example/api/v1/rooms/ABCD-EFGH/messages
    curl -OJ -H "Authorization: Bearer $NATTER_TOKEN" https://natter.example/api/v1/files/…

## Errors

Every error is `application/problem+json` (RFC 9457) with a stable `type`
(`https://natter.dev/problems/…`): `malformed-body` (400), `unauthorized` (401), `not-found`
(404), `method-not-allowed` (405), `body-too-large` (413), `unsupported-media-type` (415),
`range-not-satisfiable` (416), `invalid-input` and `invalid-parameter` (422), `rate-limited`
(429, with `Retry-After`),
`unavailable` (503, with `Retry-After`). The limits are the web's: by default 20 posts per 10 s,
20 new rooms per hour, 20 joins and leaves per minute, 10 wrong room codes per minute, bodies up
to 64 KiB. A `not-found` for a room counts as a wrong code too (a room that is not yours is not
there for you, so codes cannot be tested through its routes either): once they are spent, room
routes answer `rate-limited` for rooms that are not yours, whatever the code.

Times are RFC 3339 in UTC. Messages are numbered per room (`seq`, 1, 2, 3, … in the order they
were committed): use `seq` as the cursor for reading history."#;

/// The API routes, mounted under `/api`: the operations under `/v1`, the spec, the docs page.
pub fn routes() -> Route {
    let service = OpenApiService::new(
        (
            me::Api,
            rooms::Api,
            settings::Api,
            messages::Api,
            search::Api,
            files::Api,
            notify::Api,
            direct::Api,
        ),
        "natter API",
        "1",
    )
    .description(DESCRIPTION)
    .server("/api/v1");
    let spec = bytes::Bytes::from(service.spec());
    let docs = docs::page(&service.swagger_ui_html());
    Route::new()
        .at(
            "/v1/openapi.json",
            make_sync(move |_| {
                Response::builder()
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(header::CACHE_CONTROL, "no-cache")
                    .body(spec.clone())
            }),
        )
        .nest("/v1", service.into_endpoint().around(problem::around))
        .at("/docs", docs)
}

/// A stored time (Unix milliseconds) as an RFC 3339 timestamp.
fn timestamp(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}
