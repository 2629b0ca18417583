//! The JSON API end to end: personal access tokens made on the profile page, every operation on
//! SQLite and PostgreSQL, problem+json for every failure, the limits, live delivery to browsers,
//! and the spec served at runtime. One binary so it builds once.

#[path = "../common/mod.rs"]
mod common;

mod live;
mod messages;
mod robustness;
mod rooms;
mod spec;
mod tokens;

use std::time::Duration;

use common::{Browser, TestApp};
use reqwest::header::HeaderMap;
use serde_json::Value;

/// An HTTP answer from the API, with its body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
    pub json: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts this is a problem document of `status` with the stable type `…/{slug}`.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, slug: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.body
        );
        assert_eq!(
            self.json["type"],
            format!("https://natter.dev/problems/{slug}"),
            "{}",
            self.body
        );
        assert_eq!(self.json["status"], status, "{}", self.body);
        assert!(self.json["title"].is_string(), "{}", self.body);
        assert!(self.json["detail"].is_string(), "{}", self.body);
    }
}

/// An API client: a plain HTTP client (no cookies) with an optional bearer token.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
}

impl Api {
    pub fn new(app: &TestApp, token: Option<&str>) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Self {
            http,
            base: app.base.clone(),
            token: token.map(str::to_string),
        }
    }

    /// The same client with another token (or none).
    pub fn with_token(&self, token: Option<&str>) -> Self {
        Self {
            token: token.map(str::to_string),
            ..self.clone()
        }
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        req
    }

    pub async fn send(req: reqwest::RequestBuilder) -> Reply {
        let response = req.send().await.expect("API request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap_or_default();
        let json = serde_json::from_str(&body).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            json,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        Self::send(self.request(reqwest::Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, json: Value) -> Reply {
        Self::send(self.request(reqwest::Method::POST, path).json(&json)).await
    }

    /// POSTs raw bytes with the given content type (none when `None`).
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        let mut req = self.request(reqwest::Method::POST, path).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        Self::send(req).await
    }

    /// Posts a message; returns the answer.
    pub async fn post_message(&self, code: &str, body: &str) -> Reply {
        self.post(
            &format!("/rooms/{code}/messages"),
            serde_json::json!({ "body": body }),
        )
        .await
    }

    /// Creates a room; returns its code.
    pub async fn create_room(&self, name: &str) -> String {
        let r = self
            .post("/rooms", serde_json::json!({ "name": name }))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.json["code"].as_str().expect("code").to_string()
    }
}

/// Creates a token named `name` on `browser`'s profile page; returns its text.
pub async fn create_token(browser: &Browser, name: &str) -> String {
    let page = browser
        .post_form("/profile", "/profile/tokens", &[("name", name)])
        .await;
    assert_eq!(page.status, 201, "{}", page.body);
    shown_token(&page.body).expect("the new token is shown")
}

/// The token shown on a profile page right after creating it.
pub fn shown_token(page: &str) -> Option<String> {
    let start = page.find("id=\"new-token\">")? + "id=\"new-token\">".len();
    let len = page[start..].find('<')?;
    Some(page[start..start + len].to_string())
}

/// A person signed in on the web, with an API client holding one of their tokens.
pub async fn api_user(app: &TestApp, email: &str, username: &str) -> (Browser, Api) {
    let browser = app.signed_in(email, username).await;
    let token = create_token(&browser, "tests").await;
    let api = Api::new(app, Some(&token));
    (browser, api)
}

/// `app`'s database under a fresh natter started with `settings` (the first one stops).
pub async fn restart_with(app: TestApp, settings: &[(&str, &str)]) -> TestApp {
    let db = app.db.clone();
    drop(app);
    TestApp::start_on(db, None, settings).await
}
