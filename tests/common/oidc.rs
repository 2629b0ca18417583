//! A strict fake OpenID Connect provider for tests, on its own random port.
//!
//! It implements what natter uses (authorize, token, userinfo) the way a real provider does:
//! the client id and secret are checked, the redirect URI must be the registered one, codes are
//! single-use and expire (after a minute, or what `set_code_lifetime` says), and the PKCE
//! verifier must hash to the challenge (S256 only). Tests tell it who signs in next and how to
//! misbehave.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use poem::{
    EndpointExt, Request, Response, Route, Server, get, handler,
    http::{StatusCode, header},
    listener::TcpAcceptor,
    post,
    web::{Data, Form, Query},
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "natter-test-client";
pub const CLIENT_SECRET: &str = "natter-test-secret";

/// Who the provider says signs in.
#[derive(Clone, Debug)]
pub struct FakeUser {
    pub subject: String,
    pub email: String,
    /// Sent as `email_verified`: a JSON boolean or string, or absent.
    pub email_verified: Option<serde_json::Value>,
}

impl FakeUser {
    pub fn verified(subject: &str, email: &str) -> Self {
        Self {
            subject: subject.into(),
            email: email.into(),
            email_verified: Some(true.into()),
        }
    }
}

/// How the provider behaves on the next sign-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// The person refuses consent: `error=access_denied`.
    Deny,
    /// The token endpoint answers `invalid_grant` whatever it gets.
    RefuseTokens,
    /// The userinfo endpoint fails with 503, as a provider having an outage does.
    UserinfoFails,
}

struct Grant {
    user: FakeUser,
    challenge: String,
    redirect_uri: String,
    issued: Instant,
}

struct Inner {
    redirect_uri: Mutex<String>,
    next_user: Mutex<FakeUser>,
    mode: Mutex<Mode>,
    codes: Mutex<HashMap<String, Grant>>,
    /// How long a code may wait before it is exchanged.
    code_lifetime: Mutex<Duration>,
    tokens: Mutex<HashMap<String, FakeUser>>,
    /// Every token request's outcome, for assertions ("the verifier was checked").
    pub token_log: Mutex<Vec<String>>,
}

/// A running fake provider.
#[derive(Clone)]
pub struct FakeProvider {
    inner: Arc<Inner>,
    pub addr: SocketAddr,
}

impl FakeProvider {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind provider");
        let addr = listener.local_addr().expect("provider addr");
        let inner = Arc::new(Inner {
            redirect_uri: Mutex::new(String::new()),
            next_user: Mutex::new(FakeUser::verified("sub-1", "ada@example.org")),
            mode: Mutex::new(Mode::Normal),
            codes: Mutex::new(HashMap::new()),
            code_lifetime: Mutex::new(Duration::from_secs(60)),
            tokens: Mutex::new(HashMap::new()),
            token_log: Mutex::new(Vec::new()),
        });
        let app = Route::new()
            .at("/authorize", get(authorize))
            .at("/token", post(token))
            .at("/userinfo", get(userinfo))
            .data(inner.clone());
        let acceptor = TcpAcceptor::from_tokio(listener).expect("acceptor");
        tokio::spawn(async move {
            let _ = Server::new_with_acceptor(acceptor).run(app).await;
        });
        Self { inner, addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The one redirect URI this client may use (natter's `{public}/auth/callback`).
    pub fn register_redirect(&self, uri: &str) {
        *self.inner.redirect_uri.lock().unwrap() = uri.to_string();
    }

    pub fn sign_in_as(&self, user: FakeUser) {
        *self.inner.next_user.lock().unwrap() = user;
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.inner.mode.lock().unwrap() = mode;
    }

    /// How long a code stays exchangeable after it was issued (`ZERO`: expired at once).
    pub fn set_code_lifetime(&self, lifetime: Duration) {
        *self.inner.code_lifetime.lock().unwrap() = lifetime;
    }

    pub fn token_log(&self) -> Vec<String> {
        self.inner.token_log.lock().unwrap().clone()
    }
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

fn bad(status: StatusCode, text: &str) -> Response {
    Response::builder().status(status).body(text.to_string())
}

#[handler]
fn authorize(Query(q): Query<AuthorizeQuery>, inner: Data<&Arc<Inner>>) -> Response {
    let registered = inner.redirect_uri.lock().unwrap().clone();
    if q.client_id.as_deref() != Some(CLIENT_ID) {
        return bad(StatusCode::BAD_REQUEST, "unknown client");
    }
    let Some(redirect_uri) = q.redirect_uri.filter(|r| *r == registered) else {
        return bad(StatusCode::BAD_REQUEST, "redirect_uri mismatch");
    };
    if q.response_type.as_deref() != Some("code")
        || q.code_challenge_method.as_deref() != Some("S256")
        || q.code_challenge.is_none()
        || !q.scope.unwrap_or_default().split(' ').any(|s| s == "email")
    {
        return bad(StatusCode::BAD_REQUEST, "bad authorization request");
    }
    let state = q.state.unwrap_or_default();
    let state_param = url::form_urlencoded::byte_serialize(state.as_bytes()).collect::<String>();
    let location = if *inner.mode.lock().unwrap() == Mode::Deny {
        format!("{redirect_uri}?error=access_denied&state={state_param}")
    } else {
        let code = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
        let user = inner.next_user.lock().unwrap().clone();
        inner.codes.lock().unwrap().insert(
            code.clone(),
            Grant {
                user,
                challenge: q.code_challenge.unwrap_or_default(),
                redirect_uri: redirect_uri.clone(),
                issued: Instant::now(),
            },
        );
        format!("{redirect_uri}?code={code}&state={state_param}")
    };
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, location)
        .finish()
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn client_authenticated(req: &Request, form: &TokenForm) -> bool {
    let basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    match basic {
        Some(pair) => pair == format!("{CLIENT_ID}:{CLIENT_SECRET}"),
        None => {
            form.client_id.as_deref() == Some(CLIENT_ID)
                && form.client_secret.as_deref() == Some(CLIENT_SECRET)
        }
    }
}

fn token_error(inner: &Inner, error: &str) -> Response {
    inner.token_log.lock().unwrap().push(error.to_string());
    Response::builder()
        .status(StatusCode::BAD_REQUEST)
        .content_type("application/json")
        .body(serde_json::json!({ "error": error }).to_string())
}

#[handler]
fn token(req: &Request, Form(form): Form<TokenForm>, inner: Data<&Arc<Inner>>) -> Response {
    if !client_authenticated(req, &form) {
        return token_error(&inner, "invalid_client");
    }
    if *inner.mode.lock().unwrap() == Mode::RefuseTokens {
        return token_error(&inner, "invalid_grant");
    }
    if form.grant_type.as_deref() != Some("authorization_code") {
        return token_error(&inner, "unsupported_grant_type");
    }
    // Single use: the code is gone whatever happens next.
    let Some(grant) = form
        .code
        .as_deref()
        .and_then(|c| inner.codes.lock().unwrap().remove(c))
    else {
        return token_error(&inner, "invalid_grant");
    };
    if grant.issued.elapsed() >= *inner.code_lifetime.lock().unwrap() {
        return token_error(&inner, "invalid_grant: expired");
    }
    if form.redirect_uri.as_deref() != Some(grant.redirect_uri.as_str()) {
        return token_error(&inner, "invalid_grant: redirect_uri");
    }
    let verifier = form.code_verifier.unwrap_or_default();
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != grant.challenge {
        return token_error(&inner, "invalid_grant: pkce");
    }
    let access = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>());
    inner
        .tokens
        .lock()
        .unwrap()
        .insert(access.clone(), grant.user);
    inner.token_log.lock().unwrap().push("ok".into());
    Response::builder().content_type("application/json").body(
        serde_json::json!({ "access_token": access, "token_type": "Bearer", "expires_in": 3600 })
            .to_string(),
    )
}

#[handler]
fn userinfo(req: &Request, inner: Data<&Arc<Inner>>) -> Response {
    let user = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| inner.tokens.lock().unwrap().get(t).cloned());
    let Some(user) = user else {
        return bad(StatusCode::UNAUTHORIZED, "bad token");
    };
    if *inner.mode.lock().unwrap() == Mode::UserinfoFails {
        return bad(StatusCode::SERVICE_UNAVAILABLE, "backend unavailable");
    }
    let mut body = serde_json::json!({ "sub": user.subject, "email": user.email });
    if let Some(v) = user.email_verified {
        body["email_verified"] = v;
    }
    Response::builder()
        .content_type("application/json")
        .body(body.to_string())
}
