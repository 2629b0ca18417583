//! What wraps every request: a request id and log span, the canonical-host redirect, the
//! same-origin check on state changes, error pages, and security headers.

use std::{panic::AssertUnwindSafe, sync::Arc, time::Instant};

use futures_util::FutureExt;

use poem::{
    Endpoint, IntoResponse, Request, Response,
    http::{HeaderValue, Method, StatusCode, header},
};
use tracing::Instrument;

use crate::{
    State,
    auth::{self, CookieRenewal},
    error::AppError,
    refusal::Refusal,
    views::errors::error_page as page,
};

/// The id quoted on error pages and in every log line of the request.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Paths proxies and scrapers call by address: never redirected to the public host.
fn is_machine_path(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics") || path.starts_with("/api/")
}

/// Wraps every request (see the module doc).
pub async fn around<E: Endpoint>(
    state: &State,
    ep: Arc<E>,
    mut req: Request,
) -> poem::Result<Response> {
    let id = format!("{:016x}", rand::random::<u64>());
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", id = %id);
    async move {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let htmx = super::is_htmx(&req);
        let mut response = if let Some(redirect) = host_redirect(state, &req) {
            redirect
        } else if needs_origin_check(&method, &path) && !same_origin(state, &req) {
            error_page(
                AppError::from(Refusal::Forbidden(
                    "This request did not come from a natter page, so it was refused.",
                ))
                .into(),
                htmx,
                &id,
            )
        } else {
            let renewal = CookieRenewal::default();
            req.extensions_mut().insert(renewal.clone());
            // A panicking handler would otherwise drop the connection: the person would see
            // the browser's own error instead of natter's page with a request id to quote.
            let mut response = match AssertUnwindSafe(ep.call(req)).catch_unwind().await {
                Ok(Ok(response)) => response.into_response(),
                Ok(Err(error)) => error_page(error, htmx, &id),
                Err(panic) => {
                    tracing::error!(panic = panic_text(&*panic), "handler panicked");
                    error_page(AppError::from(Refusal::Internal).into(), htmx, &id)
                }
            };
            renew_session_cookie(state, &renewal, &mut response);
            response
        };
        secure_headers(&mut response, &id);
        let status = response.status().as_u16();
        state.metrics.http_response(status);
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        if path != "/healthz" {
            tracing::info!(%method, %path, status, ms = format!("{ms:.1}"), "request");
        }
        Ok(response)
    }
    .instrument(span)
    .await
}

/// What a panic said, for the log.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Sends the session cookie again when the session slid during this request, unless the
/// response already sets it (signing in replaces it, signing out clears it).
fn renew_session_cookie(state: &State, renewal: &CookieRenewal, response: &mut Response) {
    let Some(cookie) = renewal.cookie(&state.config) else {
        return;
    };
    let name = format!(
        "{}=",
        auth::cookie_name(&state.config, auth::SESSION_COOKIE)
    );
    let already = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|v| v.as_bytes().starts_with(name.as_bytes()));
    if !already && let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// Redirects page requests made under another host name to the public URL, so forms and sockets
/// (whose Origin must match it) work.
fn host_redirect(state: &State, req: &Request) -> Option<Response> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) || is_machine_path(req.uri().path()) {
        return None;
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))?;
    if host.eq_ignore_ascii_case(&state.config.public_host()) {
        return None;
    }
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let location = format!("{}{path}", state.config.public_origin());
    Some(
        Response::builder()
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header(header::LOCATION, location)
            .finish(),
    )
}

fn needs_origin_check(method: &Method, path: &str) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) && !path.starts_with("/api/")
}

/// Whether a state-changing request comes from natter's own pages: `Origin` (or, failing that,
/// `Referer`) must be the public origin. Browsers send `Origin` on every cross-site POST, so
/// a forged form from another site always fails here, before any CSRF token is looked at.
fn same_origin(state: &State, req: &Request) -> bool {
    let expected = state.config.public_origin();
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        return origin.as_bytes() == expected.as_bytes();
    }
    req.headers()
        .get(header::REFERER)
        .and_then(|r| r.to_str().ok())
        .and_then(|r| url::Url::parse(r).ok())
        .is_some_and(|r| r.origin().ascii_serialization() == expected)
}

fn secure_headers(response: &mut Response, id: &str) {
    let headers = response.headers_mut();
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(CSP));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers
        .entry(header::X_FRAME_OPTIONS)
        .or_insert(HeaderValue::from_static("DENY"));
    if let Ok(id) = HeaderValue::from_str(id) {
        headers.insert("x-request-id", id);
    }
}

/// Turns an error into what the person sees: a redirect for "sign in first" (and canonical
/// room URLs), otherwise the error page in the layout with the request id, and what was typed
/// when natter can give it back.
pub fn error_page(error: poem::Error, htmx: bool, id: &str) -> Response {
    let detail = error.to_string();
    let (refusal, typed) = match error.downcast::<AppError>() {
        Ok(AppError { refusal, typed }) => (refusal, typed),
        Err(error) => (Refusal::from_status(error.status()), None),
    };
    match &refusal {
        Refusal::SignInRequired { next } => {
            let location = match next {
                Some(next) => format!(
                    "/?next={}",
                    url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
                ),
                None => "/".to_string(),
            };
            return super::see_other(&location, htmx);
        }
        Refusal::UsernameRequired => return super::see_other("/username", htmx),
        Refusal::Moved { location } => {
            return Response::builder()
                .status(refusal.status())
                .header(header::LOCATION, location.as_str())
                .finish();
        }
        _ => {}
    }
    let status = refusal.status().as_u16();
    if refusal.status().is_server_error() {
        tracing::error!(error = %detail, status, "request failed");
    } else {
        tracing::debug!(error = %detail, status, "request refused");
    }
    let markup = page(refusal.title(), &refusal.explanation(), id, typed.as_ref());
    super::refused(&refusal, markup)
}
