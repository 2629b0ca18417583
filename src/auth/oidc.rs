//! Sign-in with an OpenID Connect provider (Google by default): the authorization-code flow with
//! PKCE (S256) and `state`, then the userinfo endpoint for the verified email.
//!
//! No ID token is validated (the userinfo endpoint, called with the access token over TLS, is
//! the source of identity), so no `nonce` is sent: a nonce protects only ID-token replay.

use std::time::Duration;

use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, TokenUrl,
    basic::BasicClient,
};
use serde::Deserialize;
use thiserror::Error;
use url::Url;

use crate::config::OAuthConfig;

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// The configured provider and an HTTP client for talking to it.
pub struct Provider {
    client: Client,
    http: reqwest::Client,
    userinfo_url: Url,
    scopes: Vec<String>,
    /// Stable name of the identity namespace, stored with each user: the authorization
    /// endpoint's host (`accounts.google.com`).
    pub id: String,
    /// Shown on the sign-in button.
    pub name: String,
}

/// Where to send the browser and what to remember until it comes back.
pub struct Authorization {
    /// The provider's authorization URL to send the browser to.
    pub url: Url,
    /// The `state` parameter, checked on the way back.
    pub state: String,
    /// The PKCE verifier, sent with the code.
    pub pkce_verifier: String,
}

/// Who the provider says signed in.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The provider's stable id for the person (`sub`).
    pub subject: String,
    /// Their verified email.
    pub email: String,
}

/// Why finishing a sign-in failed. Each becomes a friendly page; the detail goes to the log.
#[derive(Debug, Error)]
pub enum SignInError {
    /// The provider refused the authorization code.
    #[error("the token endpoint refused the code: {0}")]
    TokenRefused(String),
    /// The provider could not be reached.
    #[error("the provider could not be reached: {0}")]
    Unreachable(String),
    /// The userinfo answer could not be read.
    #[error("the userinfo response was unusable: {0}")]
    BadUserinfo(String),
    /// The provider says the email is not verified.
    #[error("the email address is not verified")]
    EmailUnverified,
}

#[derive(Deserialize)]
struct Userinfo {
    sub: Option<String>,
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<serde_json::Value>,
}

impl Provider {
    /// The provider in `config`, sending people back to `redirect_url`.
    pub fn new(config: &OAuthConfig, redirect_url: &str) -> Result<Self, String> {
        let client = BasicClient::new(ClientId::new(config.client_id.clone()))
            .set_client_secret(ClientSecret::new(config.client_secret.expose().to_string()))
            .set_auth_uri(AuthUrl::from_url(config.auth_url.clone()))
            .set_token_uri(TokenUrl::from_url(config.token_url.clone()))
            .set_redirect_uri(
                RedirectUrl::new(redirect_url.to_string())
                    .map_err(|e| format!("bad redirect URL {redirect_url}: {e}"))?,
            );
        let http = reqwest::Client::builder()
            // oauth2's advice: following redirects from the token endpoint invites SSRF.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            client,
            http,
            userinfo_url: config.userinfo_url.clone(),
            scopes: config.scopes.clone(),
            id: config.auth_url.host_str().unwrap_or("oidc").to_string(),
            name: config.provider_name.clone(),
        })
    }

    /// Starts a sign-in: the provider URL with a fresh `state` and PKCE challenge.
    pub fn authorize(&self) -> Authorization {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state) = self
            .client
            .authorize_url(CsrfToken::new_random)
            .add_scopes(self.scopes.iter().cloned().map(Scope::new))
            .set_pkce_challenge(challenge)
            .url();
        Authorization {
            url,
            state: state.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        }
    }

    /// Exchanges the code (with the PKCE verifier) and asks the userinfo endpoint who it is.
    pub async fn finish(&self, code: &str, pkce_verifier: &str) -> Result<Identity, SignInError> {
        let token = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                oauth2::RequestTokenError::Request(e) => SignInError::Unreachable(e.to_string()),
                oauth2::RequestTokenError::ServerResponse(r) => {
                    SignInError::TokenRefused(r.to_string())
                }
                other => SignInError::TokenRefused(other.to_string()),
            })?;
        let response = self
            .http
            .get(self.userinfo_url.clone())
            .bearer_auth(token.access_token().secret())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| SignInError::Unreachable(e.to_string()))?;
        if response.status().is_server_error() {
            // The provider is failing, not refusing: "try again in a moment" is the advice.
            return Err(SignInError::Unreachable(format!(
                "userinfo status {}",
                response.status()
            )));
        }
        if !response.status().is_success() {
            return Err(SignInError::BadUserinfo(format!(
                "status {}",
                response.status()
            )));
        }
        let info: Userinfo = response
            .json()
            .await
            .map_err(|e| SignInError::BadUserinfo(e.to_string()))?;
        identity_from(info)
    }
}

fn identity_from(info: Userinfo) -> Result<Identity, SignInError> {
    let subject = info
        .sub
        .filter(|s| !s.is_empty() && s.len() <= 255)
        .ok_or_else(|| SignInError::BadUserinfo("no subject".into()))?;
    let email = info.email.filter(|e| !e.is_empty()).ok_or_else(|| {
        SignInError::BadUserinfo("no email (is the email scope requested?)".into())
    })?;
    let verified = matches!(&info.email_verified, Some(serde_json::Value::Bool(true)))
        || matches!(&info.email_verified, Some(serde_json::Value::String(s)) if s == "true");
    if !verified {
        return Err(SignInError::EmailUnverified);
    }
    let email = crate::domain::Email::parse(&email)
        .map_err(|_| SignInError::BadUserinfo("the email is not an address".into()))?;
    Ok(Identity {
        subject,
        email: email.as_str().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(verified: Option<serde_json::Value>) -> Userinfo {
        Userinfo {
            sub: Some("123".into()),
            email: Some("Ada@Example.org".into()),
            email_verified: verified,
        }
    }

    #[test]
    fn email_verified_must_be_true_as_bool_or_string() {
        assert_eq!(
            identity_from(info(Some(true.into()))).unwrap().email,
            "ada@example.org"
        );
        assert!(identity_from(info(Some("true".into()))).is_ok());
        for unverified in [
            None,
            Some(false.into()),
            Some("false".into()),
            Some("yes".into()),
            Some(1.into()),
        ] {
            assert!(matches!(
                identity_from(info(unverified)),
                Err(SignInError::EmailUnverified)
            ));
        }
    }
}
