//! How the API says no: `application/problem+json` (RFC 9457) with a stable `type` per kind of
//! failure, for every error, including those poem-openapi raises itself while parsing a request
//! (which it would otherwise answer as plain text).
//!
//! Operations declare the statuses they may answer with as a set (`Problems<{ … }>`), so the
//! spec documents exactly those; `around` turns whatever escapes an operation into a problem.

use std::sync::Arc;

use tokio::io::AsyncReadExt;

use poem::{
    Endpoint, IntoResponse, Request, Response,
    error::ResponseError,
    http::{HeaderValue, Method, StatusCode, header},
};
use poem_openapi::{
    ApiResponse, Object,
    error::{
        AuthorizationError, ContentTypeError, ParseMultipartError, ParseParamError, ParsePathError,
        ParseRequestPayloadError,
    },
    payload::Payload,
    registry::{MetaHeader, MetaMediaType, MetaResponse, MetaResponses, MetaSchema, Registry},
    types::{Example, ToJSON, Type},
};

use crate::{State, refusal::Refusal, store::StoreError};

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Where the problem types live; `type` is this plus a slug, e.g. `…/rate-limited`.
pub const TYPE_BASE: &str = "https://natter.dev/problems/";

/// A kind of failure: one stable `type` URI, one status, one title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The body is not JSON, or not the JSON the operation takes (wrong types, missing fields).
    MalformedBody,
    /// No bearer token, or one natter does not know (never issued, or revoked).
    Unauthorized,
    /// A member asked for what only the room's owner may do (room settings).
    Forbidden,
    /// No such room, not a member, or no such route.
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// The body is larger than natter accepts (64 KiB by default).
    BodyTooLarge,
    /// The body did not arrive within the body timeout (30 s by default).
    BodyTimeout,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// A query or header parameter is malformed or out of range.
    InvalidParameter,
    /// A value broke one of natter's rules; `detail` says which.
    InvalidInput,
    /// A download's `Range` starts past the end of the file.
    RangeNotSatisfiable,
    /// The thing is not in a state that allows this (a deleted message cannot be edited).
    Conflict,
    /// Over a rate limit; `Retry-After` says when to try again.
    RateLimited,
    /// The database failed; nothing was done. Safe to retry after `Retry-After`.
    Unavailable,
    /// A bug. Never expected; logged with the request id.
    Internal,
}

impl Kind {
    pub fn status(self) -> StatusCode {
        match self {
            Kind::MalformedBody => StatusCode::BAD_REQUEST,
            Kind::Unauthorized => StatusCode::UNAUTHORIZED,
            Kind::Forbidden => StatusCode::FORBIDDEN,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Kind::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Kind::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Kind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Kind::InvalidParameter | Kind::InvalidInput => StatusCode::UNPROCESSABLE_ENTITY,
            Kind::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
            Kind::Conflict => StatusCode::CONFLICT,
            Kind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The last part of the `type` URI. Stable: clients switch on it.
    pub fn slug(self) -> &'static str {
        match self {
            Kind::MalformedBody => "malformed-body",
            Kind::Unauthorized => "unauthorized",
            Kind::Forbidden => "forbidden",
            Kind::NotFound => "not-found",
            Kind::MethodNotAllowed => "method-not-allowed",
            Kind::BodyTooLarge => "body-too-large",
            Kind::BodyTimeout => "body-timeout",
            Kind::UnsupportedMediaType => "unsupported-media-type",
            Kind::InvalidParameter => "invalid-parameter",
            Kind::InvalidInput => "invalid-input",
            Kind::RangeNotSatisfiable => "range-not-satisfiable",
            Kind::Conflict => "conflict",
            Kind::RateLimited => "rate-limited",
            Kind::Unavailable => "unavailable",
            Kind::Internal => "internal",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Kind::MalformedBody => "The request body could not be read",
            Kind::Unauthorized => "A valid API token is required",
            Kind::Forbidden => "Only the room's owner may do this",
            Kind::NotFound => "Not found",
            Kind::MethodNotAllowed => "Method not allowed",
            Kind::BodyTooLarge => "The request body is too large",
            Kind::BodyTimeout => "The request body arrived too slowly",
            Kind::UnsupportedMediaType => "The request body must be JSON",
            Kind::InvalidParameter => "A parameter is not valid",
            Kind::InvalidInput => "A value is not valid",
            Kind::RangeNotSatisfiable => "The range is not in the file",
            Kind::Conflict => "Not possible in the current state",
            Kind::RateLimited => "Too many requests",
            Kind::Unavailable => "natter is temporarily unavailable",
            Kind::Internal => "Something went wrong on natter's side",
        }
    }

    pub fn type_uri(self) -> String {
        format!("{TYPE_BASE}{}", self.slug())
    }
}

/// An API failure. Rendered as a problem document wherever it is returned.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {detail}", kind.slug())]
pub struct ApiError {
    pub kind: Kind,
    /// For people: what went wrong and what to do. Never internal detail.
    pub detail: String,
    /// Seconds for `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(kind: Kind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            retry_after: None,
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            Kind::Unauthorized,
            "Send a personal access token as `Authorization: Bearer ntr_…`. Create one on your \
             profile page; a revoked token no longer works.",
        )
    }

    pub fn not_found() -> Self {
        Refusal::NotFound.into()
    }

    pub fn invalid_parameter(detail: impl Into<String>) -> Self {
        Self::new(Kind::InvalidParameter, detail)
    }

    /// The problem document as sent.
    pub fn body(&self) -> Problem {
        Problem {
            ty: self.kind.type_uri(),
            title: self.kind.title().to_string(),
            status: self.kind.status().as_u16(),
            detail: self.detail.clone(),
        }
    }
}

impl ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        self.kind.status()
    }

    fn as_response(&self) -> Response {
        let body = self.body().to_json().unwrap_or_default().to_string();
        let mut response = Response::builder()
            .status(self.kind.status())
            .header(header::CONTENT_TYPE, PROBLEM_JSON)
            .header(header::CACHE_CONTROL, "no-store")
            .body(body);
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.kind == Kind::Unauthorized {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"natter\""),
            );
        }
        response
    }
}

/// The one place a refusal becomes a problem document: its kind (the stable `type`), its
/// sentence as `detail`, its `Retry-After`. The status is the refusal's own wherever the web
/// and the API mean the same thing; what only pages do (send people to sign in, redirect to a
/// canonical URL) has the API's answer instead.
impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        let kind = match refusal {
            Refusal::BadRequest(_) => Kind::MalformedBody,
            Refusal::SignInRequired { .. } | Refusal::UsernameRequired | Refusal::Forbidden(_) => {
                Kind::Unauthorized
            }
            Refusal::NotOwner(_) => Kind::Forbidden,
            Refusal::NotFound | Refusal::Moved { .. } => Kind::NotFound,
            Refusal::MethodNotAllowed => Kind::MethodNotAllowed,
            Refusal::TooLarge
            | Refusal::FileTooLarge { .. }
            | Refusal::TooManyFiles { .. }
            | Refusal::RoomFull { .. } => Kind::BodyTooLarge,
            Refusal::TooSlow => Kind::BodyTimeout,
            Refusal::Invalid(_) => Kind::InvalidInput,
            Refusal::Conflict(_) => Kind::Conflict,
            Refusal::TooFast { .. } => Kind::RateLimited,
            Refusal::Unavailable => Kind::Unavailable,
            Refusal::Internal => Kind::Internal,
        };
        Self {
            kind,
            detail: refusal.sentence().into_owned(),
            retry_after: refusal.retry_after_secs(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Refusal::from(e).into()
    }
}

/// The body of every error response (RFC 9457).
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct Problem {
    /// Stable identifier of the kind of problem, e.g.
    /// `https://natter.dev/problems/rate-limited`. Switch on this, not on `title` or `detail`.
    #[oai(rename = "type")]
    pub ty: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status, repeated.
    pub status: u16,
    /// What went wrong this time, for people.
    pub detail: String,
}

impl Example for Problem {
    fn example() -> Self {
        ApiError::from(Refusal::TooFast {
            retry_after: std::time::Duration::from_secs(4),
            budget: crate::refusal::Budget::Posts,
        })
        .body()
    }
}

/// Status sets for `Problems<{ … }>`: one bit per status an operation may answer with.
pub mod status {
    /// 400 `malformed-body`.
    pub const BAD_REQUEST: u16 = 1 << 0;
    /// 401 `unauthorized`.
    pub const UNAUTHORIZED: u16 = 1 << 1;
    /// 404 `not-found`.
    pub const NOT_FOUND: u16 = 1 << 2;
    /// 413 `body-too-large`.
    pub const TOO_LARGE: u16 = 1 << 3;
    /// 415 `unsupported-media-type`.
    pub const UNSUPPORTED: u16 = 1 << 4;
    /// 422 `invalid-input` or `invalid-parameter`.
    pub const INVALID: u16 = 1 << 5;
    /// 429 `rate-limited`.
    pub const RATE_LIMITED: u16 = 1 << 6;
    /// 503 `unavailable`.
    pub const UNAVAILABLE: u16 = 1 << 7;
    /// 408 `body-timeout`.
    pub const TIMEOUT: u16 = 1 << 8;
    /// 409 `conflict`.
    pub const CONFLICT: u16 = 1 << 9;
    /// 403 `forbidden`.
    pub const FORBIDDEN: u16 = 1 << 10;

    /// What any operation may answer: the token is refused, or the database is down.
    pub const ALWAYS: u16 = UNAUTHORIZED | UNAVAILABLE;
    /// What a POST (or PUT) may answer besides: every body is size- and time-checked before
    /// parsing.
    pub const POST: u16 = ALWAYS | TOO_LARGE | TIMEOUT;
    /// What an operation taking a JSON body may answer besides.
    pub const JSON_BODY: u16 = POST | BAD_REQUEST | UNSUPPORTED;
}

/// One documented problem status: its bit, status, description and example.
struct Documented {
    bit: u16,
    kind: Kind,
    description: &'static str,
    example_detail: &'static str,
}

const DOCUMENTED: &[Documented] = &[
    Documented {
        bit: status::BAD_REQUEST,
        kind: Kind::MalformedBody,
        description: "`malformed-body`: the body is not JSON, or not the JSON this operation takes (a missing field, a wrong type, a number out of range).",
        example_detail: "parse request payload error: failed to parse \"string\": expected `string`, found `123`",
    },
    Documented {
        bit: status::UNAUTHORIZED,
        kind: Kind::Unauthorized,
        description: "`unauthorized`: no `Authorization: Bearer` token, or one natter does not know (never issued, or revoked). A session cookie is never accepted.",
        example_detail: "Send a personal access token as `Authorization: Bearer ntr_…`. Create one on your profile page; a revoked token no longer works.",
    },
    Documented {
        bit: status::FORBIDDEN,
        kind: Kind::Forbidden,
        description: "`forbidden`: you are a member of the room but not its owner, and only the owner may do this.",
        example_detail: "Only the room's owner can change its settings. Ask them, or ask them to hand the room to you.",
    },
    Documented {
        bit: status::NOT_FOUND,
        kind: Kind::NotFound,
        description: "`not-found`: there is no room with this code, or you are not a member of it.",
        example_detail: "There is no such room, or you are not a member.",
    },
    Documented {
        bit: status::TOO_LARGE,
        kind: Kind::BodyTooLarge,
        description: "`body-too-large`: the body is larger than natter accepts (64 KiB unless configured otherwise); with files, a file over the upload limit (10 MiB unless configured otherwise), more files than one message may carry (10), or more than the room's quota for files.",
        example_detail: "The body may have at most 65536 bytes.",
    },
    Documented {
        bit: status::TIMEOUT,
        kind: Kind::BodyTimeout,
        description: "`body-timeout`: the body did not arrive within 30 s (unless configured otherwise) of natter starting to read it. Send it again.",
        example_detail: "What you sent arrived too slowly, so natter stopped waiting. Check your connection and send it again.",
    },
    Documented {
        bit: status::UNSUPPORTED,
        kind: Kind::UnsupportedMediaType,
        description: "`unsupported-media-type`: the body must be sent as `Content-Type: application/json` (or, where the operation takes files, `multipart/form-data`).",
        example_detail: "the `Content-Type` requested by the client is not supported: text/plain",
    },
    Documented {
        bit: status::INVALID,
        kind: Kind::InvalidInput,
        description: "`invalid-input`: a value breaks one of natter's rules, and `detail` says which (an empty message, an image of too many pixels, a part natter does not take); or `invalid-parameter`: a query or header parameter is malformed or out of range.",
        example_detail: "A message has at most 4000 characters.",
    },
    Documented {
        bit: status::CONFLICT,
        kind: Kind::Conflict,
        description: "`conflict`: the message was deleted, so it cannot be edited.",
        example_detail: "This message was deleted, so it cannot be edited.",
    },
    Documented {
        bit: status::RATE_LIMITED,
        kind: Kind::RateLimited,
        description: "`rate-limited`: over one of the limits the web pages have too. Wait `Retry-After` seconds.",
        example_detail: "You are sending messages very fast. Wait 4 seconds, then send again.",
    },
    Documented {
        bit: status::UNAVAILABLE,
        kind: Kind::Unavailable,
        description: "`unavailable`: natter could not reach its database; nothing was done. Retry after `Retry-After` seconds.",
        example_detail: "natter could not save this just now (database unavailable). Try again in a moment.",
    },
];

/// An operation's failure, carrying the set `S` of statuses it may answer with (bits from
/// `status`) so the spec lists exactly those.
#[derive(Debug)]
pub struct Problems<const S: u16>(pub ApiError);

impl<const S: u16> Problems<S> {
    /// The statuses this operation documents.
    pub fn statuses() -> Vec<u16> {
        DOCUMENTED
            .iter()
            .filter(|d| S & d.bit != 0)
            .map(|d| d.kind.status().as_u16())
            .collect()
    }
}

impl<const S: u16> From<ApiError> for Problems<S> {
    fn from(error: ApiError) -> Self {
        debug_assert!(
            Self::statuses().contains(&error.kind.status().as_u16()),
            "an operation answered {:?}, which its spec does not list",
            error.kind
        );
        Self(error)
    }
}

impl<const S: u16> From<Refusal> for Problems<S> {
    fn from(refusal: Refusal) -> Self {
        ApiError::from(refusal).into()
    }
}

impl<const S: u16> From<StoreError> for Problems<S> {
    fn from(e: StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl<const S: u16> From<Problems<S>> for poem::Error {
    fn from(problems: Problems<S>) -> Self {
        poem::Error::from(problems.0)
    }
}

impl<const S: u16> ApiResponse for Problems<S> {
    fn meta() -> MetaResponses {
        let responses = DOCUMENTED
            .iter()
            .filter(|d| S & d.bit != 0)
            .map(|d| {
                let example = ApiError::new(d.kind, d.example_detail).body();
                let schema = MetaSchema {
                    all_of: vec![Problem::schema_ref()],
                    example: example.to_json(),
                    ..MetaSchema::ANY
                };
                let mut headers = Vec::new();
                if matches!(d.kind, Kind::RateLimited | Kind::Unavailable) {
                    headers.push(MetaHeader {
                        name: "Retry-After".into(),
                        description: Some("Seconds to wait before trying again.".into()),
                        required: true,
                        deprecated: false,
                        schema: u64::schema_ref(),
                    });
                }
                MetaResponse {
                    description: d.description,
                    status: Some(d.kind.status().as_u16()),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: PROBLEM_JSON,
                        schema: poem_openapi::registry::MetaSchemaRef::Inline(Box::new(schema)),
                    }],
                    headers,
                }
            })
            .collect();
        MetaResponses { responses }
    }

    fn register(registry: &mut Registry) {
        Problem::register(registry);
    }
}

/// Wraps the API: bounds request bodies (POST, PATCH, PUT), and turns every error (natter's own, poem-openapi's
/// parse errors, unknown routes) into a problem document, so no client ever has to parse
/// plain text or an HTML page.
pub async fn around<E: Endpoint>(ep: Arc<E>, mut req: Request) -> poem::Result<Response> {
    // A multipart body carries files: it is read by natter's multipart reader, which spools
    // them as they arrive within the upload limits and its own deadline, never here whole in
    // memory. An operation that takes no multipart refuses it (415) before reading a byte.
    let is_multipart = req
        .content_type()
        .is_some_and(super::upload::MessageWithFiles::check_content_type);
    if matches!(*req.method(), Method::POST | Method::PATCH | Method::PUT)
        && !is_multipart
        && let Some(state) = req.data::<State>()
    {
        let (limit, timeout) = (state.config.limits.body_bytes, state.config.timeouts.body);
        let bounded = tokio::time::timeout(timeout, bound_body(&mut req, limit)).await;
        if let Err(error) = bounded.unwrap_or_else(|_| Err(Refusal::TooSlow.into())) {
            return Ok(error.as_response());
        }
    }
    let response = match ep.call(req).await {
        Ok(response) => response.into_response(),
        Err(error) => return Ok(problem_for(&error).as_response()),
    };
    let status = response.status();
    let is_problem = response
        .content_type()
        .is_some_and(|c| c.starts_with(PROBLEM_JSON));
    if (status.is_client_error() || status.is_server_error()) && !is_problem {
        return Ok(problem_for(&poem::Error::from_status(status)).as_response());
    }
    Ok(response)
}

/// Reads the body (keeping at most `limit` bytes) and puts it back, so the operation's JSON
/// parsing never buffers more than that. An oversized body is still read (and dropped) up to a
/// bound before answering 413: a client that is still sending when the answer comes would
/// otherwise see a broken connection instead of the problem document.
async fn bound_body(req: &mut Request, limit: usize) -> Result<(), ApiError> {
    let drain_limit = limit.saturating_mul(16);
    let too_large = || {
        ApiError::new(
            Kind::BodyTooLarge,
            format!("The body may have at most {limit} bytes."),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > drain_limit as u64) {
        return Err(too_large());
    }
    let mut reader = req.take_body().into_async_read();
    let mut kept = Vec::new();
    let mut total = 0usize;
    let mut buf = [0u8; 8192];
    loop {
        let n = reader.read(&mut buf).await.map_err(|_| {
            ApiError::new(Kind::MalformedBody, "The request body could not be read.")
        })?;
        if n == 0 {
            break;
        }
        total += n;
        if total <= limit {
            kept.extend_from_slice(&buf[..n]);
        } else if total > drain_limit {
            break;
        }
    }
    if total > limit {
        return Err(too_large());
    }
    req.set_body(kept);
    Ok(())
}

/// The problem for an error that escaped an operation.
fn problem_for(error: &poem::Error) -> ApiError {
    if let Some(e) = error.downcast_ref::<ApiError>() {
        return e.clone();
    }
    if error.is::<ParseRequestPayloadError>() || error.is::<ParseMultipartError>() {
        return ApiError::new(Kind::MalformedBody, error.to_string());
    }
    if error.is::<ContentTypeError>() {
        return ApiError::new(Kind::UnsupportedMediaType, error.to_string());
    }
    if error.is::<ParseParamError>() {
        return ApiError::invalid_parameter(error.to_string());
    }
    if error.is::<AuthorizationError>() {
        return ApiError::unauthorized();
    }
    // A path that does not parse names nothing: like an unknown room, simply not found.
    if error.is::<ParsePathError>() {
        return ApiError::not_found();
    }
    match error.status() {
        StatusCode::NOT_FOUND => ApiError::new(
            Kind::NotFound,
            "There is no such API route. See /api/v1/openapi.json.",
        ),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            Kind::MethodNotAllowed,
            "This route does not take that method. See /api/v1/openapi.json.",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(Kind::BodyTooLarge, "The request body is too large.")
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            Kind::UnsupportedMediaType,
            "Send the body as application/json.",
        ),
        status if status.is_client_error() => ApiError::new(Kind::MalformedBody, error.to_string()),
        status => {
            tracing::error!(error = %error, status = status.as_u16(), "API request failed");
            ApiError::new(
                Kind::Internal,
                "natter failed unexpectedly. The request id in X-Request-Id helps find out why.",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::refusal::Budget;

    #[test]
    fn a_refusal_keeps_its_status_sentence_and_wait_as_a_problem() {
        for refusal in [
            Refusal::BadRequest("The form was malformed."),
            Refusal::NotFound,
            Refusal::MethodNotAllowed,
            Refusal::TooLarge,
            Refusal::TooSlow,
            Refusal::Invalid("Say something."),
            Refusal::TooFast {
                retry_after: Duration::from_secs(3),
                budget: Budget::Posts,
            },
            Refusal::Unavailable,
            Refusal::Internal,
        ] {
            let problem = ApiError::from(refusal.clone());
            assert_eq!(problem.kind.status(), refusal.status(), "{refusal:?}");
            assert_eq!(problem.detail, refusal.sentence(), "{refusal:?}");
            assert_eq!(
                problem.retry_after,
                refusal.retry_after_secs(),
                "{refusal:?}"
            );
        }
        // What only pages do has the API's own answer.
        let sign_in = Refusal::SignInRequired { next: None };
        assert_eq!(ApiError::from(sign_in).kind, Kind::Unauthorized);
    }
}
