//! Signing in and out, choosing a username, the profile.

use poem::{
    Request, Response, handler,
    http::{StatusCode, header},
    web::Query,
};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{GuestForm, NoFields, SessionForm, UserForm, member_nav, refused, respond, see_other};
use crate::{
    State,
    auth::{
        self, AppData, CurrentUser, LOGIN_COOKIE, MaybeSession, PRE_SESSION_COOKIE, SESSION_COOKIE,
        Session, oidc::SignInError,
    },
    domain::{Email, Username, agent::stored_user_agent, safe_return_path},
    error::AppError,
    refusal::{Budget, Refusal},
    store::{PendingLogin, USER_AGENT_MAX, now_ms},
    views::{
        account::{self as view, Profile, SignInOptions},
        tokens::TokenPanel,
    },
};

/// `?next=`: where to go after signing in.
#[derive(Deserialize, Default)]
pub struct NextQuery {
    next: Option<String>,
}

impl NextQuery {
    fn path(&self) -> Option<String> {
        self.next.as_deref().and_then(return_path)
    }
}

/// Where to go after signing in, from a `next` query or form field: a local path (see
/// `safe_return_path`) with anything outside ASCII percent-encoded, because it ends up in a
/// `Location` header, where raw UTF-8 is not allowed.
fn return_path(next: &str) -> Option<String> {
    let path = safe_return_path(next)?;
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut bytes = [0; 4];
            for b in c.encode_utf8(&mut bytes).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    Some(out)
}

fn with_next(base: &str, next: Option<&str>) -> String {
    match next {
        Some(next) => format!(
            "{base}?next={}",
            url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        ),
        None => base.to_string(),
    }
}

/// `GET /`: the landing page, or home for the signed in.
#[handler]
pub async fn landing(
    state: AppData<'_>,
    req: &Request,
    MaybeSession(session): MaybeSession,
    Query(query): Query<NextQuery>,
) -> Response {
    let next = query.path();
    if let Some(session) = session {
        let to = match session.user.username {
            None => with_next("/username", next.as_deref()),
            Some(_) => next.unwrap_or_else(|| "/home".into()),
        };
        return see_other(&to, false);
    }
    let (pre_csrf, cookie) = pre_session_csrf(&state, req);
    let login_url = with_next("/auth/login", next.as_deref());
    let page = view::landing(&SignInOptions {
        provider: state.provider.as_ref().map(|p| p.name.as_str()),
        dev_login: state.config.dev_login,
        csrf: &pre_csrf,
        next: next.as_deref(),
        login_url: &login_url,
    });
    let mut response = respond(StatusCode::OK, page);
    if let Some(cookie) = cookie {
        response
            .headers_mut()
            .append(header::SET_COOKIE, cookie.parse().expect("cookie header"));
    }
    response
}

/// The CSRF token for a signed-out form, and the pre-session cookie to set if the browser has
/// none yet.
fn pre_session_csrf(state: &State, req: &Request) -> (String, Option<String>) {
    let existing = auth::read_cookie(req, &state.config, PRE_SESSION_COOKIE)
        .and_then(|v| auth::decode_token(&v));
    let (token, cookie) = match existing {
        Some(token) => (token, None),
        None => {
            let token = auth::random_token();
            let cookie = auth::set_cookie(
                &state.config,
                PRE_SESSION_COOKIE,
                &auth::encode_token(&token),
                86_400,
            );
            (token, Some(cookie))
        }
    };
    (
        auth::csrf::mask(&auth::csrf::pre_session_secret(&token)),
        cookie,
    )
}

/// `GET /auth/dev`: the development sign-in form on its own page.
#[handler]
pub async fn dev_form(
    state: AppData<'_>,
    req: &Request,
    Query(query): Query<NextQuery>,
) -> poem::Result<Response> {
    if !state.config.dev_login {
        return Err(AppError::NOT_FOUND.into());
    }
    let (csrf, cookie) = pre_session_csrf(&state, req);
    let page = view::dev_sign_in(&csrf, "", None, query.path().as_deref());
    let mut response = respond(StatusCode::OK, page);
    if let Some(cookie) = cookie {
        response
            .headers_mut()
            .append(header::SET_COOKIE, cookie.parse().expect("cookie header"));
    }
    Ok(response)
}

/// The development sign-in form.
#[derive(Deserialize)]
pub struct DevSignIn {
    #[serde(default)]
    email: String,
    next: Option<String>,
}

/// `POST /auth/dev`: sign in as whoever the email says (loopback development only).
#[handler]
pub async fn dev_sign_in(
    state: AppData<'_>,
    req: &Request,
    form: poem::Result<GuestForm<DevSignIn>>,
) -> poem::Result<Response> {
    // Switched off, the route does not exist (404), whatever the form carries: the CSRF
    // check comes second so that it cannot tell anyone otherwise.
    if !state.config.dev_login {
        return Err(AppError::NOT_FOUND.into());
    }
    let GuestForm { form } = form?;
    limit_sign_ins(&state, req)?;
    let next = form.next.as_deref().and_then(return_path);
    match Email::parse(&form.email) {
        Ok(email) => {
            Ok(finish_sign_in(&state, req, "dev", email.as_str(), email.as_str(), next).await?)
        }
        Err(invalid) => {
            let (csrf, _) = pre_session_csrf(&state, req);
            let page = view::dev_sign_in(&csrf, &form.email, Some(invalid.0), next.as_deref());
            Ok(refused(&Refusal::Invalid(invalid.0), page))
        }
    }
}

fn limit_sign_ins(state: &State, req: &Request) -> Result<(), AppError> {
    let ip = auth::client_ip(req, &state.config).unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    let key = auth::limit_key(ip);
    Ok(Budget::SignIns.spend(&state.limits.sign_ins, &key)?)
}

/// `GET /auth/login`: off to the provider, remembering (in a row bound to this browser) the
/// state, the PKCE verifier and where to come back to.
#[handler]
pub async fn login(
    state: AppData<'_>,
    req: &Request,
    Query(query): Query<NextQuery>,
) -> poem::Result<Response> {
    let Some(provider) = &state.provider else {
        return Err(AppError::NOT_FOUND.into());
    };
    limit_sign_ins(&state, req)?;
    let authorization = provider.authorize();
    let token = auth::random_token();
    let pending = PendingLogin {
        state: authorization.state,
        pkce_verifier: authorization.pkce_verifier,
        return_to: query.path(),
        expires_at: now_ms() + 10 * 60 * 1000,
    };
    state
        .store
        .create_pending_login(&auth::hash_token(&token), &pending, pending.expires_at)
        .await
        .map_err(AppError::from)?;
    Ok(Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, authorization.url.as_str())
        .header(
            header::SET_COOKIE,
            auth::set_cookie(
                &state.config,
                LOGIN_COOKIE,
                &auth::encode_token(&token),
                600,
            ),
        )
        .finish())
}

/// What the provider sends back to `/auth/callback`.
#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /auth/callback`: finish the provider sign-in. Every failure ends on a page with a way
/// to try again; the detail is logged.
#[handler]
pub async fn callback(
    state: AppData<'_>,
    req: &Request,
    Query(params): Query<Callback>,
) -> poem::Result<Response> {
    let Some(provider) = &state.provider else {
        return Err(AppError::NOT_FOUND.into());
    };
    limit_sign_ins(&state, req)?;
    let clear = auth::clear_cookie(&state.config, LOGIN_COOKIE);
    let pending = match auth::read_cookie(req, &state.config, LOGIN_COOKIE)
        .and_then(|v| auth::decode_token(&v))
    {
        Some(token) => state
            .store
            .take_pending_login(&auth::hash_token(&token), now_ms())
            .await
            .map_err(AppError::from)?,
        None => None,
    };
    let problem =
        |status, title, text: &str| with_cookie(sign_in_problem(status, title, text), &clear);
    if let Some(error) = params.error {
        tracing::info!(%error, "provider reported a sign-in error");
        let text = if error == "access_denied" {
            "You cancelled the sign-in, so natter did not sign you in."
        } else {
            "The sign-in provider could not complete the sign-in."
        };
        return Ok(problem(
            StatusCode::BAD_REQUEST,
            "Sign-in did not finish",
            text,
        ));
    }
    let Some(pending) = pending else {
        tracing::info!("callback without a pending sign-in in this browser");
        return Ok(problem(
            StatusCode::BAD_REQUEST,
            "This sign-in link is not valid here",
            "It expired, was already used, or was started in another browser.",
        ));
    };
    let state_matches = params
        .state
        .as_deref()
        .is_some_and(|s| bool::from(s.as_bytes().ct_eq(pending.state.as_bytes())));
    let Some(code) = params.code.filter(|_| state_matches) else {
        tracing::warn!("callback with a missing or mismatched state");
        return Ok(problem(
            StatusCode::BAD_REQUEST,
            "Sign-in could not be verified",
            "The answer from the sign-in provider did not match the sign-in this browser started.",
        ));
    };
    match provider.finish(&code, &pending.pkce_verifier).await {
        Ok(identity) => {
            let response = finish_sign_in(
                &state,
                req,
                &provider.id,
                &identity.subject,
                &identity.email,
                pending.return_to,
            )
            .await?;
            Ok(with_cookie(response, &clear))
        }
        Err(error) => {
            tracing::warn!(%error, "sign-in failed");
            let (status, title, text) = match error {
                SignInError::EmailUnverified => (
                    StatusCode::FORBIDDEN,
                    "Your email is not verified",
                    format!(
                        "{} says your email address is not verified yet. Verify it there, then sign in again.",
                        provider.name
                    ),
                ),
                SignInError::Unreachable(_) => (
                    StatusCode::BAD_GATEWAY,
                    "The sign-in provider is not answering",
                    format!(
                        "natter could not reach {}. Please try again in a moment.",
                        provider.name
                    ),
                ),
                SignInError::TokenRefused(_) | SignInError::BadUserinfo(_) => (
                    StatusCode::BAD_GATEWAY,
                    "Sign-in did not finish",
                    format!("{} did not confirm the sign-in.", provider.name),
                ),
            };
            Ok(problem(status, title, &text))
        }
    }
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = cookie.parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

fn sign_in_problem(status: StatusCode, title: &str, text: &str) -> Response {
    respond(status, view::sign_in_problem(title, text))
}

/// Creates the user on first sign-in and a fresh session (never reusing one the browser
/// brought: no session fixation), then goes on: choose a username, or where they were going.
async fn finish_sign_in(
    state: &State,
    req: &Request,
    provider: &str,
    subject: &str,
    email: &str,
    return_to: Option<String>,
) -> Result<Response, AppError> {
    let now = now_ms();
    let user = state
        .store
        .sign_in_identity(provider, subject, email, now)
        .await?;
    if let Some(old) =
        auth::read_cookie(req, &state.config, SESSION_COOKIE).and_then(|v| auth::decode_token(&v))
    {
        state.store.delete_session(&auth::hash_token(&old)).await?;
    }
    let token = auth::random_token();
    let lifetime = state.config.session_lifetime();
    let user_agent = req
        .header(header::USER_AGENT)
        .map(|ua| stored_user_agent(ua, USER_AGENT_MAX))
        .unwrap_or_default();
    let public_id: String = rand::random::<[u8; 16]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    state
        .store
        .create_session(
            &auth::hash_token(&token),
            user.id,
            &auth::random_token(),
            &public_id,
            &user_agent,
            now,
            now + lifetime.as_millis() as i64,
        )
        .await?;
    tracing::info!(user_id = user.id, provider, "signed in");
    let to = match user.username {
        None => with_next("/username", return_to.as_deref()),
        Some(_) => return_to.unwrap_or_else(|| "/home".into()),
    };
    Ok(Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, to)
        .header(
            header::SET_COOKIE,
            auth::set_cookie(
                &state.config,
                SESSION_COOKIE,
                &auth::encode_token(&token),
                lifetime.as_secs(),
            ),
        )
        .finish())
}

/// `POST /auth/logout`: deletes this session (its cookie is worthless from now on) and closes
/// its sockets.
#[handler]
pub async fn logout(
    state: AppData<'_>,
    SessionForm { session, htmx, .. }: SessionForm<NoFields>,
) -> poem::Result<Response> {
    state
        .store
        .delete_session(&session.token_hash)
        .await
        .map_err(AppError::from)?;
    state.chat.end_sessions(&[session.token_hash]).await;
    Ok(with_cookie(
        see_other("/", htmx),
        &auth::clear_cookie(&state.config, SESSION_COOKIE),
    ))
}

/// `POST /auth/logout/everywhere`: ends every session of this person.
#[handler]
pub async fn logout_everywhere(
    state: AppData<'_>,
    UserForm { user, htmx, .. }: UserForm<NoFields>,
) -> poem::Result<Response> {
    let ended = state
        .store
        .delete_user_sessions(user.id)
        .await
        .map_err(AppError::from)?;
    tracing::info!(
        user_id = user.id,
        sessions = ended.len(),
        "signed out everywhere"
    );
    state.chat.end_sessions(&ended).await;
    Ok(with_cookie(
        see_other("/", htmx),
        &auth::clear_cookie(&state.config, SESSION_COOKIE),
    ))
}

/// `GET /username`: the form, only until a username is chosen.
#[handler]
pub async fn username_form(session: Session, Query(query): Query<NextQuery>) -> Response {
    if session.user.username.is_some() {
        return see_other(&query.path().unwrap_or_else(|| "/home".into()), false);
    }
    respond(
        StatusCode::OK,
        view::username(&session.csrf(), "", None, query.path().as_deref()),
    )
}

/// The username form.
#[derive(Deserialize)]
pub struct ChooseUsername {
    #[serde(default)]
    username: String,
    next: Option<String>,
}

/// `POST /username`: claim a name. Refused names come back with the reason and what was typed
/// (422); when two people race for one name the unique index picks the winner.
#[handler]
pub async fn choose_username(
    state: AppData<'_>,
    SessionForm {
        session,
        form,
        htmx,
        ..
    }: SessionForm<ChooseUsername>,
) -> poem::Result<Response> {
    let next = form.next.as_deref().and_then(return_path);
    let done = || see_other(next.as_deref().unwrap_or("/home"), htmx);
    if session.user.username.is_some() {
        return Ok(done());
    }
    let refuse = |reason: &'static str| {
        let page = view::username(
            &session.csrf(),
            &form.username,
            Some(reason),
            next.as_deref(),
        );
        refused(&Refusal::Invalid(reason), page)
    };
    let name = match Username::parse(&form.username) {
        Ok(name) => name,
        Err(invalid) => return Ok(refuse(invalid.0)),
    };
    match state.store.choose_username(session.user.id, &name).await {
        Ok(_) => {
            tracing::info!(user_id = session.user.id, "username chosen");
            Ok(done())
        }
        Err(e) if e.is_unique_violation() => {
            Ok(refuse("That username is taken. Please choose another."))
        }
        Err(e) => Err(AppError::from(e).into()),
    }
}

/// `GET /profile`: who you are here, sessions, API tokens.
#[handler]
pub async fn profile(state: AppData<'_>, user: CurrentUser) -> poem::Result<Response> {
    let page = profile_page(&state, &user, TokenPanel::default()).await?;
    Ok(respond(StatusCode::OK, page))
}

/// The profile page, its API-token panel showing `panel` (a refused name, or a token just
/// created).
pub(super) async fn profile_page(
    state: &State,
    user: &CurrentUser,
    panel: TokenPanel<'_>,
) -> Result<maud::Markup, AppError> {
    profile_page_with(state, user, panel, None, None).await
}

/// The profile page, with why a notification (or "do not disturb") choice was refused, if one
/// was.
pub(super) async fn profile_page_with(
    state: &State,
    user: &CurrentUser,
    panel: TokenPanel<'_>,
    notify_error: Option<&str>,
    dnd_error: Option<&str>,
) -> Result<maud::Markup, AppError> {
    let notify = state.store.notify_default(user.id).await?;
    let now = now_ms();
    let dnd_until = state.store.dnd_until(user.id).await?.filter(|t| *t > now);
    let subscribed = !state
        .store
        .push_subscriptions_of_session(&user.session.token_hash)
        .await?
        .is_empty();
    let sessions = state.store.session_count(user.id, now_ms()).await?;
    let rooms = state.store.my_rooms(user.id).await?;
    let tokens = state.store.api_tokens(user.id).await?;
    let csrf = user.session.csrf();
    let shown = Profile {
        user: &user.session.user,
        username: &user.username,
        sessions,
        rooms: rooms.len(),
        tokens: &tokens,
        panel,
        notify: (notify, notify_error),
        push: crate::views::push::PushPanel {
            vapid_key: state.push.public_key(),
            subscribed,
            dnd_until,
            error: dnd_error,
        },
    };
    Ok(view::profile(member_nav(user, &csrf), &csrf, &shown))
}

/// The notification form: `notify` as chosen.
#[derive(Deserialize)]
pub struct NotifyForm {
    #[serde(default)]
    notify: String,
}

impl NotifyForm {
    /// The value chosen, as posted.
    pub fn value(&self) -> &str {
        &self.notify
    }
}

/// `POST /profile/notify`: what to hear about by default; 303 back to the profile, or the
/// profile again (422) with why the choice was refused.
#[handler]
pub async fn set_notify_default(
    state: AppData<'_>,
    UserForm {
        user, form, htmx, ..
    }: UserForm<NotifyForm>,
) -> poem::Result<Response> {
    match crate::actions::set_notify_default(&state, user.actor(), form.value()).await {
        Ok(_) => Ok(see_other("/profile#notify-title", htmx)),
        Err(refusal @ Refusal::Invalid(why)) => {
            let page =
                profile_page_with(&state, &user, TokenPanel::default(), Some(why), None).await?;
            Ok(refused(&refusal, page))
        }
        Err(refusal) => Err(AppError::from(refusal).into()),
    }
}

/// `GET /me.css`: the viewer's own messages get an accent. Messages are rendered once for
/// everyone with `data-author`; this tiny per-user stylesheet is the only per-viewer part.
#[handler]
pub async fn me_css(user: CurrentUser) -> Response {
    let css = view::me_css(user.id);
    Response::builder()
        .header(header::CONTENT_TYPE, "text/css; charset=utf-8")
        .header(header::CACHE_CONTROL, "private, max-age=86400")
        .body(css)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_carried_encoded() {
        assert_eq!(
            with_next("/username", Some("/rooms/ABCD-EFGH?x=1&y=2")),
            "/username?next=%2Frooms%2FABCD-EFGH%3Fx%3D1%26y%3D2"
        );
        assert_eq!(with_next("/username", None), "/username");
    }

    #[test]
    fn return_paths_are_local_and_plain_ascii() {
        assert_eq!(
            return_path("/rooms/ABCD-EFGH?x=1").as_deref(),
            Some("/rooms/ABCD-EFGH?x=1")
        );
        assert_eq!(return_path("/İstanbul").as_deref(), Some("/%C4%B0stanbul"));
        assert_eq!(return_path("/a\u{202e}b").as_deref(), Some("/a%E2%80%AEb"));
        for foreign in [
            "//evil.example",
            "https://evil.example",
            "evil",
            "/auth/login",
        ] {
            assert_eq!(return_path(foreign), None, "{foreign}");
        }
    }
}
