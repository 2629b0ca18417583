//! Pages and fragments. One module per area; every route is listed in `routes()` so `grep` for a
//! path finds its handler.

pub mod account;
pub mod assets;
pub mod home;
pub mod live;
pub mod middleware;
pub mod ops;
pub mod room;
pub mod tokens;

use poem::{
    FromRequest, Request, RequestBody, Response, Route, get,
    http::{Method, StatusCode, header},
    post,
};
use serde::{Deserialize, de::DeserializeOwned};

use crate::{
    State,
    auth::{self, CurrentUser, Session},
    error::AppError,
    views::Nav,
};

/// Every route natter serves (DESIGN.md §3).
pub fn routes() -> Route {
    Route::new()
        .at("/", get(account::landing))
        .at("/auth/login", get(account::login))
        .at("/auth/callback", get(account::callback))
        .at(
            "/auth/dev",
            get(account::dev_form).post(account::dev_sign_in),
        )
        .at("/auth/logout", post(account::logout))
        .at("/auth/logout/everywhere", post(account::logout_everywhere))
        .at(
            "/username",
            get(account::username_form).post(account::choose_username),
        )
        .at("/profile", get(account::profile))
        .at("/profile/tokens", post(tokens::create))
        .at("/profile/tokens/:id/revoke", post(tokens::revoke))
        .at("/me.css", get(account::me_css))
        .at("/home", get(home::home))
        .at("/rooms", post(home::create_room))
        .at("/rooms/join", post(home::join_room))
        .at("/join/:code", get(home::invitation))
        .at("/rooms/:code", get(room::show))
        .at(
            "/rooms/:code/messages",
            get(room::older).post(room::post_message),
        )
        .at("/rooms/:code/ws", get(live::connect))
        .at("/rooms/:code/leave", post(room::leave))
        .at("/healthz", get(ops::healthz))
        .at("/readyz", get(ops::readyz))
        .at("/metrics", get(ops::metrics))
        .at("/assets/:name", get(assets::serve))
        .nest("/api", crate::api::routes())
}

/// A complete HTML response.
pub fn respond(status: StatusCode, markup: maud::Markup) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(markup.into_string())
}

/// `303 See Other` to `location` (after a successful form post), or for htmx an `HX-Redirect`
/// (a plain redirect would be followed by the XHR and swapped into the target).
pub fn see_other(location: &str, htmx: bool) -> Response {
    if htmx {
        Response::builder()
            .status(StatusCode::OK)
            .header("HX-Redirect", location)
            .finish()
    } else {
        Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(header::LOCATION, location)
            .finish()
    }
}

/// The header's account links for a signed-in person.
pub fn member_nav<'a>(user: &'a CurrentUser, csrf: &'a str) -> Nav<'a> {
    Nav::Member {
        username: &user.username,
        user_id: user.id,
        csrf,
    }
}

/// Whether htmx made this request (it answers with fragments or `HX-Redirect`).
pub fn is_htmx(req: &Request) -> bool {
    req.headers().contains_key("hx-request")
}

fn state(req: &Request) -> Result<&State, AppError> {
    req.data::<State>()
        .ok_or_else(|| AppError::Internal("application state missing".into()))
}

#[derive(Deserialize)]
struct CsrfField {
    csrf: Option<String>,
}

/// Reads an urlencoded body of at most the configured size into `T`, returning it with the CSRF
/// token it carries (`csrf` field, else the `X-CSRF-Token` header htmx sends).
async fn read_form<T: DeserializeOwned>(
    req: &Request,
    body: &mut RequestBody,
) -> Result<(T, Option<String>), AppError> {
    let limit = state(req)?.config.limits.body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(AppError::TooLarge);
    }
    let bytes = body
        .take()
        .map_err(|_| AppError::BadRequest("The form was empty."))?
        .into_bytes_limit(limit)
        .await
        .map_err(|e| match e {
            poem::error::ReadBodyError::PayloadTooLarge => AppError::TooLarge,
            _ => AppError::BadRequest("The form could not be read."),
        })?;
    let form: T = serde_urlencoded::from_bytes(&bytes)
        .map_err(|_| AppError::BadRequest("The form was malformed."))?;
    let csrf = serde_urlencoded::from_bytes::<CsrfField>(&bytes)
        .ok()
        .and_then(|f| f.csrf)
        .or_else(|| {
            req.headers()
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        });
    Ok((form, csrf))
}

const CSRF_REFUSED: &str =
    "The form's security token did not match your session. Reload the page and try again.";

/// A form posted by a signed-in person with a username, CSRF-checked.
pub struct UserForm<T> {
    pub user: CurrentUser,
    pub form: T,
    pub htmx: bool,
}

impl<'a, T: DeserializeOwned> FromRequest<'a> for UserForm<T> {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        let SessionForm {
            session,
            form,
            htmx,
        } = SessionForm::from_request(req, body).await?;
        Ok(UserForm {
            user: CurrentUser::from_session(session)?,
            form,
            htmx,
        })
    }
}

/// A form posted by a signed-in browser (username not required: choosing one, signing out),
/// CSRF-checked.
pub struct SessionForm<T> {
    pub session: Session,
    pub form: T,
    pub htmx: bool,
}

impl<'a, T: DeserializeOwned> FromRequest<'a> for SessionForm<T> {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        debug_assert_eq!(req.method(), Method::POST);
        let session = match Session::from_request(req, body).await {
            Ok(session) => session,
            Err(e)
                if e.downcast_ref::<AppError>()
                    .is_some_and(|e| matches!(e, AppError::Store(_))) =>
            {
                // The database is down: nothing can be checked or saved, but what was typed
                // goes back to the person instead of being lost.
                let fields = read_form::<Vec<(String, String)>>(req, body)
                    .await
                    .map(|(f, _)| f)
                    .unwrap_or_default();
                let action = req.original_uri().path().to_string();
                return Err(AppError::UnavailableKeeping(crate::views::FormEcho {
                    action,
                    fields,
                })
                .into());
            }
            Err(e) => return Err(e),
        };
        let (form, csrf) = read_form::<T>(req, body).await?;
        if !csrf.is_some_and(|c| session.verify_csrf(&c)) {
            return Err(AppError::Forbidden(CSRF_REFUSED).into());
        }
        Ok(SessionForm {
            session,
            form,
            htmx: is_htmx(req),
        })
    }
}

/// A form posted before signing in, CSRF-checked against the pre-session cookie.
pub struct GuestForm<T> {
    pub form: T,
}

impl<'a, T: DeserializeOwned> FromRequest<'a> for GuestForm<T> {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        let state = state(req)?;
        let (form, csrf) = read_form::<T>(req, body).await?;
        let secret = auth::read_cookie(req, &state.config, auth::PRE_SESSION_COOKIE)
            .and_then(|v| auth::decode_token(&v))
            .map(|t| auth::csrf::pre_session_secret(&t));
        match (secret, csrf) {
            (Some(secret), Some(csrf)) if auth::csrf::verify(&secret, &csrf) => {
                Ok(GuestForm { form })
            }
            _ => Err(AppError::Forbidden(CSRF_REFUSED).into()),
        }
    }
}

/// An empty form: only its CSRF token matters (sign out, leave).
#[derive(Deserialize)]
pub struct NoFields {}
