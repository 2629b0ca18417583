//! Who is asking: server-side sessions behind a random cookie, CSRF tokens, client addresses,
//! and the extractors handlers use (`MaybeSession`, `Session`, `CurrentUser`).

pub mod csrf;
pub mod oidc;

use std::net::{IpAddr, Ipv6Addr};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use cookie::{
    Cookie, SameSite,
    prefix::{Host, Prefix},
};
use poem::{FromRequest, Request, RequestBody, web::Data};
use sha2::{Digest, Sha256};

use crate::{
    State,
    config::Config,
    error::AppError,
    refusal::Refusal,
    store::{User, now_ms},
};

/// A fresh 256-bit secret from the CSPRNG.
pub fn random_token() -> [u8; 32] {
    rand::random()
}

/// Cookie-safe text for a token.
pub fn encode_token(token: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(token)
}

/// The token inside a cookie value, if it is one.
pub fn decode_token(text: &str) -> Option<[u8; 32]> {
    URL_SAFE_NO_PAD.decode(text).ok()?.try_into().ok()
}

/// What the database keeps instead of a token: a stolen table holds no usable cookie.
pub fn hash_token(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

/// What every personal access token starts with, so one pasted into a chat or a repository is
/// recognisable (and secret scanners can look for it).
pub const API_TOKEN_PREFIX: &str = "ntr_";

/// A fresh personal access token: the secret to hash and store, and its text, shown once.
pub fn new_api_token() -> ([u8; 32], String) {
    let token = random_token();
    (token, format!("{API_TOKEN_PREFIX}{}", encode_token(&token)))
}

/// The secret inside a token's text, if the text is shaped like one.
pub fn parse_api_token(text: &str) -> Option<[u8; 32]> {
    decode_token(text.strip_prefix(API_TOKEN_PREFIX)?)
}

/// The session cookie.
pub const SESSION_COOKIE: &str = "natter_session";
/// Binds a sign-in in progress to the browser that started it.
pub const LOGIN_COOKIE: &str = "natter_login";
/// Carries the CSRF secret for forms shown before signing in.
pub const PRE_SESSION_COOKIE: &str = "natter_pre";

/// A cookie's name as sent: with the `__Host-` prefix when cookies are `Secure`, which pins it to
/// this exact host and path `/` so a sibling subdomain cannot plant one.
pub fn cookie_name(config: &Config, base: &str) -> String {
    if config.secure_cookies() {
        format!("{}{base}", Host::PREFIX)
    } else {
        base.to_string()
    }
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, Secure over https.
pub fn set_cookie(config: &Config, base: &str, value: &str, max_age_secs: u64) -> String {
    let max_age = i64::try_from(max_age_secs).unwrap_or(i64::MAX);
    Cookie::build((cookie_name(config, base), value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(cookie::time::Duration::seconds(max_age))
        .secure(config.secure_cookies())
        .build()
        .to_string()
}

/// A `Set-Cookie` value that deletes the cookie.
pub fn clear_cookie(config: &Config, base: &str) -> String {
    set_cookie(config, base, "", 0)
}

/// The value of the named cookie in the request (last one wins).
pub fn read_cookie(req: &Request, config: &Config, base: &str) -> Option<String> {
    let name = cookie_name(config, base);
    req.headers()
        .get_all(poem::http::header::COOKIE)
        .iter()
        .filter_map(|header| header.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(|cookie| cookie.name() == name)
        .last()
        .map(|cookie| cookie.value_trimmed().to_string())
}

/// The address of the person asking: the peer, unless the peer is a trusted proxy, in which case
/// the client that `X-Forwarded-For` names (see `forwarded_client`). `X-Real-IP` is not read:
/// a proxy that passes a client's own through (nginx's default) would let it choose its address.
pub fn client_ip(req: &Request, config: &Config) -> Option<IpAddr> {
    let peer = canonical(req.remote_addr().as_socket_addr()?.ip());
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        // A value that is not text counts as one hop that is not an address.
        .map(|v| v.to_str().unwrap_or(""))
        .collect();
    Some(forwarded_client(peer, &forwarded, &config.trusted_proxies))
}

/// Who sent a request that reached us from `peer` with these `X-Forwarded-For` values (in the
/// order received). Each proxy appends the address it got the request from, so the chain is
/// read from the right for as long as the hop we are at is a trusted proxy: the first address
/// that is not one is the client, and anything left of it is whatever that client chose to
/// send. If every hop is trusted, the leftmost is the client; a hop that is not an address
/// stops the walk at the trusted proxy that reported it.
fn forwarded_client(peer: IpAddr, forwarded: &[&str], trusted: &[IpAddr]) -> IpAddr {
    let hops = forwarded.iter().flat_map(|value| value.split(','));
    let mut client = peer;
    for hop in hops.rev() {
        if !trusted.contains(&client) {
            break;
        }
        match parse_hop(hop) {
            Some(ip) => client = ip,
            None => break,
        }
    }
    client
}

/// One `X-Forwarded-For` hop: an address, perhaps with a port (`1.2.3.4:80`, `[::1]:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let ip = hop
        .parse()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))?;
    Some(canonical(ip))
}

/// An IPv4 address reached over IPv6 (`::ffff:1.2.3.4`) as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// What a per-address limit counts against: an IPv4 address, or the /64 an IPv6 address is in.
/// A home or phone is given a whole /64 and may use any address in it, so counting single IPv6
/// addresses would hand one person 2^64 budgets.
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & (u128::MAX << 64))),
        v4 => v4,
    }
}

/// Put on every request by the middleware. `Session::load` fills it in when it slid the
/// session's expiry; the middleware then sends the session cookie again with the full lifetime,
/// so the browser keeps the cookie exactly as long as the server keeps the session.
#[derive(Clone, Debug, Default)]
pub struct CookieRenewal(std::sync::Arc<std::sync::OnceLock<String>>);

impl CookieRenewal {
    /// The `Set-Cookie` value to add, if the session slid during this request.
    pub fn cookie(&self, config: &Config) -> Option<String> {
        let token = self.0.get()?;
        Some(set_cookie(
            config,
            SESSION_COOKIE,
            token,
            config.session_lifetime().as_secs(),
        ))
    }
}

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// The SHA-256 of the cookie's token: the session row's key.
    pub token_hash: Vec<u8>,
    csrf_secret: Vec<u8>,
    /// Who is signed in.
    pub user: User,
}

impl Session {
    /// A CSRF token for one form or page, masked afresh each time (BREACH).
    pub fn csrf(&self) -> String {
        csrf::mask(&self.csrf_secret)
    }

    /// Whether `presented` (a form field or `X-CSRF-Token`) carries this session's secret.
    pub fn verify_csrf(&self, presented: &str) -> bool {
        csrf::verify(&self.csrf_secret, presented)
    }

    /// Loads the session named by the request's cookie, sliding its expiry (and, through
    /// `CookieRenewal`, the cookie's) at most once a minute.
    pub async fn load(state: &State, req: &Request) -> Result<Option<Session>, AppError> {
        let Some(token) =
            read_cookie(req, &state.config, SESSION_COOKIE).and_then(|v| decode_token(&v))
        else {
            return Ok(None);
        };
        let hash = hash_token(&token);
        let now = now_ms();
        let Some(record) = state.store.session(&hash, now).await? else {
            return Ok(None);
        };
        if now - record.last_seen_at > 60_000 {
            let expires = now + state.config.session_lifetime().as_millis() as i64;
            state.store.touch_session(&hash, now, expires).await?;
            if let Some(renewal) = req.extensions().get::<CookieRenewal>() {
                let _ = renewal.0.set(encode_token(&token));
            }
        }
        Ok(Some(Session {
            token_hash: record.token_hash,
            csrf_secret: record.csrf_token,
            user: record.user,
        }))
    }
}

fn app_state(req: &Request) -> Result<&State, AppError> {
    req.data::<State>().ok_or_else(|| {
        tracing::error!("application state missing");
        Refusal::Internal.into()
    })
}

/// The session, if the browser has one.
pub struct MaybeSession(pub Option<Session>);

impl<'a> FromRequest<'a> for MaybeSession {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let state = app_state(req)?;
        Ok(MaybeSession(Session::load(state, req).await?))
    }
}

/// Where a signed-out request should come back to after signing in: GET page paths only.
fn return_path(req: &Request) -> Option<String> {
    if req.method() != poem::http::Method::GET {
        return None;
    }
    let uri = req.original_uri();
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    crate::domain::safe_return_path(path).filter(|p| p != "/")
}

impl<'a> FromRequest<'a> for Session {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let state = app_state(req)?;
        match Session::load(state, req).await? {
            Some(session) => Ok(session),
            None => Err(AppError::from(Refusal::SignInRequired {
                next: return_path(req),
            })
            .into()),
        }
    }
}

/// The signed-in person acting, whichever way they ask (a page or an API token): who
/// `actions` act for.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// Their user id.
    pub id: i64,
    /// Their username, shown as the author of what they post.
    pub username: &'a str,
}

/// A signed-in person who has chosen a username: what every page but sign-out and the username
/// form requires.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    /// Their session.
    pub session: Session,
    /// Their user id.
    pub id: i64,
    /// Their username.
    pub username: String,
}

impl CurrentUser {
    /// The person as an actor in `actions`.
    pub fn actor(&self) -> Actor<'_> {
        Actor {
            id: self.id,
            username: &self.username,
        }
    }

    /// The person behind `session`, or `UsernameRequired` if they have not chosen a name yet.
    pub fn from_session(session: Session) -> Result<Self, AppError> {
        let username = session
            .user
            .username
            .clone()
            .ok_or(AppError::from(Refusal::UsernameRequired))?;
        Ok(CurrentUser {
            id: session.user.id,
            username,
            session,
        })
    }
}

impl<'a> FromRequest<'a> for CurrentUser {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        let session = Session::from_request(req, body).await?;
        Ok(CurrentUser::from_session(session)?)
    }
}

/// Shorthand for handlers: the shared state.
pub type AppData<'a> = Data<&'a State>;

#[cfg(test)]
mod tests {
    use super::*;

    fn config(public_url: &str) -> Config {
        let env = [("NATTER_PUBLIC_URL".to_string(), public_url.to_string())].into();
        Config::from_sources(&env, &[]).unwrap()
    }

    #[test]
    fn over_https_cookies_are_secure_and_host_prefixed() {
        let https = config("https://chat.example.org");
        let cookie = set_cookie(&https, SESSION_COOKIE, "t0ken", 60);
        assert_eq!(
            cookie,
            "__Host-natter_session=t0ken; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=60"
        );
        assert!(clear_cookie(&https, LOGIN_COOKIE).starts_with("__Host-natter_login=;"));
        let http = config("http://localhost:8080");
        let cookie = set_cookie(&http, SESSION_COOKIE, "t0ken", 60);
        assert_eq!(
            cookie,
            "natter_session=t0ken; HttpOnly; SameSite=Lax; Path=/; Max-Age=60"
        );
    }

    #[test]
    fn a_cleared_cookie_is_empty_and_expires_at_once_with_the_same_attributes() {
        for (url, name, secure) in [
            (
                "https://chat.example.org",
                "__Host-natter_session",
                Some(true),
            ),
            ("http://localhost:8080", "natter_session", None),
        ] {
            let cleared = clear_cookie(&config(url), SESSION_COOKIE);
            let cookie = Cookie::parse(cleared.as_str()).unwrap();
            assert_eq!((cookie.name(), cookie.value()), (name, ""), "{cleared}");
            assert_eq!(cookie.max_age(), Some(cookie::time::Duration::ZERO));
            assert_eq!(cookie.path(), Some("/"));
            assert_eq!(cookie.http_only(), Some(true));
            assert_eq!(cookie.same_site(), Some(SameSite::Lax));
            assert_eq!(cookie.secure(), secure, "{cleared}");
        }
    }

    #[test]
    fn the_last_cookie_of_a_name_wins_across_headers() {
        let http = config("http://localhost:8080");
        let req = Request::builder()
            .header("cookie", "natter_session=first; other=x")
            .header("cookie", "natter_pre=p;natter_session=\"second\"; ;junk")
            .finish();
        assert_eq!(
            read_cookie(&req, &http, SESSION_COOKIE).as_deref(),
            Some("second")
        );
        assert_eq!(
            read_cookie(&req, &http, PRE_SESSION_COOKIE).as_deref(),
            Some("p")
        );
        assert_eq!(read_cookie(&req, &http, LOGIN_COOKIE), None);
        // A prefixed cookie is not the plain one either.
        let req = Request::builder()
            .header("cookie", "__Host-natter_session=prefixed")
            .finish();
        assert_eq!(read_cookie(&req, &http, SESSION_COOKIE), None);
    }

    #[test]
    fn the_cookie_is_read_under_its_prefixed_name_only() {
        let https = config("https://chat.example.org");
        let req = Request::builder()
            .header(
                "cookie",
                "natter_session=plain; __Host-natter_session=prefixed",
            )
            .finish();
        assert_eq!(
            read_cookie(&req, &https, SESSION_COOKIE).as_deref(),
            Some("prefixed")
        );
        let req = Request::builder()
            .header("cookie", "natter_session=planted")
            .finish();
        assert_eq!(read_cookie(&req, &https, SESSION_COOKIE), None);
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_client_is_the_rightmost_forwarded_hop_that_is_not_a_trusted_proxy() {
        let proxy = ip("127.0.0.1");
        let trusted = [proxy, ip("10.0.0.2")];
        let client = |forwarded: &[&str]| forwarded_client(proxy, forwarded, &trusted);
        // Caddy (and nginx's `$proxy_add_x_forwarded_for`) append the address they saw.
        assert_eq!(client(&["203.0.113.7"]), ip("203.0.113.7"));
        // Whatever the client wrote to the left of it is not believed.
        assert_eq!(client(&["198.51.100.1, 203.0.113.7"]), ip("203.0.113.7"));
        assert_eq!(client(&["198.51.100.1", "203.0.113.7"]), ip("203.0.113.7"));
        // Trusted proxies in the chain are skipped, whatever their order.
        assert_eq!(
            client(&["198.51.100.1, 203.0.113.7, 10.0.0.2, 127.0.0.1"]),
            ip("203.0.113.7")
        );
        // Only trusted hops: the leftmost is where the request came from.
        assert_eq!(client(&["10.0.0.2, 127.0.0.1"]), ip("10.0.0.2"));
        // No header: the proxy itself asked.
        assert_eq!(client(&[]), proxy);
        // Ports and IPv4 over IPv6 are read as the address they carry.
        assert_eq!(client(&["[2001:db8::1]:4711"]), ip("2001:db8::1"));
        assert_eq!(client(&["203.0.113.7:4711"]), ip("203.0.113.7"));
        assert_eq!(client(&["::ffff:203.0.113.7"]), ip("203.0.113.7"));
        // A hop that is not an address stops at the trusted proxy that reported it.
        for junk in [
            "unknown",
            "",
            "203.0.113.7,",
            "<script>",
            "203.0.113.7 , , ",
        ] {
            assert_eq!(client(&[junk]), proxy, "{junk:?}");
        }
        assert_eq!(client(&["junk, 10.0.0.2"]), ip("10.0.0.2"));
        // A peer that is not trusted is the client, whatever it says.
        assert_eq!(
            forwarded_client(ip("192.0.2.1"), &["203.0.113.7"], &trusted),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_slash_64() {
        assert_eq!(limit_key(ip("203.0.113.7")), ip("203.0.113.7"));
        let key = limit_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd"));
        assert_eq!(key, ip("2001:db8:1:2::"));
        assert_eq!(limit_key(ip("2001:db8:1:2::1")), key);
        assert_ne!(limit_key(ip("2001:db8:1:3::1")), key);
    }

    #[test]
    fn api_tokens_carry_their_prefix_and_parse_back() {
        let (secret, text) = new_api_token();
        assert!(text.starts_with("ntr_"), "{text}");
        assert_eq!(text.len(), 4 + 43);
        assert_eq!(parse_api_token(&text), Some(secret));
        assert_ne!(new_api_token().1, text, "every token is fresh");
        for bad in [
            "",
            "ntr_",
            "ntr_abc",
            &text[4..],
            &format!("xyz_{}", &text[4..]),
        ] {
            assert_eq!(parse_api_token(bad), None, "{bad:?}");
        }
    }
}
