//! The JSON API end to end: personal access tokens made on the profile page, every operation on
//! SQLite and PostgreSQL, problem+json for every failure, the limits, live delivery to browsers,
//! and the spec served at runtime. One binary so it builds once.

#[path = "../common/mod.rs"]
mod common;

mod direct;
mod files;
mod live;
mod messages;
mod notifications;
mod robustness;
mod rooms;
mod search;
mod sessions;
mod settings;
mod spec;
mod tokens;
mod unread;

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

    pub async fn patch(&self, path: &str, json: Value) -> Reply {
        Self::send(self.request(reqwest::Method::PATCH, path).json(&json)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        Self::send(self.request(reqwest::Method::DELETE, path)).await
    }

    pub async fn put(&self, path: &str, json: Value) -> Reply {
        Self::send(self.request(reqwest::Method::PUT, path).json(&json)).await
    }

    /// PUTs raw bytes with the given content type.
    pub async fn put_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        let req = self.request(reqwest::Method::PUT, path).body(body);
        Self::send(req.header("content-type", content_type)).await
    }

    /// POSTs raw bytes with the given content type (none when `None`).
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        self.send_raw(reqwest::Method::POST, path, content_type, body)
            .await
    }

    /// Sends raw bytes with the given method and content type (none when `None`).
    pub async fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        let mut req = self.request(method, path).body(body);
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

/// The `token_hash` of every stored API token, read straight from the database.
pub async fn stored_token_hashes(app: &TestApp) -> Vec<Vec<u8>> {
    const SQL: &str = "SELECT token_hash FROM api_tokens ORDER BY id";
    match &*app.db {
        common::TestDb::Sqlite(_) => {
            let pool = sqlx::SqlitePool::connect(&app.db.url())
                .await
                .expect("open SQLite");
            let rows: Vec<(Vec<u8>,)> = sqlx::query_as(SQL).fetch_all(&pool).await.expect("read");
            pool.close().await;
            rows.into_iter().map(|(h,)| h).collect()
        }
        common::TestDb::Postgres { .. } => {
            let pool = sqlx::PgPool::connect(&app.db.url())
                .await
                .expect("open PostgreSQL");
            let rows: Vec<(Vec<u8>,)> = sqlx::query_as(SQL).fetch_all(&pool).await.expect("read");
            pool.close().await;
            rows.into_iter().map(|(h,)| h).collect()
        }
    }
}

/// Where in the database `text` (as text or as bytes) or `bytes` occur: SQLite's files byte by
/// byte (the write-ahead log too); on PostgreSQL every text and bytea column of every table.
pub async fn database_places_holding(app: &TestApp, text: &str, bytes: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    match &*app.db {
        common::TestDb::Sqlite(dir) => {
            for file in ["natter.db", "natter.db-wal"] {
                let Ok(content) = std::fs::read(dir.path().join(file)) else {
                    continue;
                };
                for (what, needle) in [("text", text.as_bytes()), ("bytes", bytes)] {
                    if content.windows(needle.len()).any(|w| w == needle) {
                        found.push(format!("{file} holds the {what}"));
                    }
                }
            }
        }
        common::TestDb::Postgres { .. } => {
            let pool = sqlx::PgPool::connect(&app.db.url())
                .await
                .expect("open PostgreSQL");
            let columns: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'bytea')",
            )
            .fetch_all(&pool)
            .await
            .expect("list columns");
            assert!(
                columns
                    .iter()
                    .any(|(t, c, _)| t == "api_tokens" && c == "token_hash"),
                "{columns:?}"
            );
            for (table, column, kind) in columns {
                let (sql, hits) = if kind == "bytea" {
                    let sql = format!(
                        "SELECT count(*) FROM \"{table}\" WHERE position($1 IN \"{column}\") > 0 OR position($2 IN \"{column}\") > 0"
                    );
                    let hits: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
                        .bind(text.as_bytes())
                        .bind(bytes)
                        .fetch_one(&pool)
                        .await
                        .expect("search");
                    (sql, hits)
                } else {
                    let sql = format!(
                        "SELECT count(*) FROM \"{table}\" WHERE position($1 IN \"{column}\") > 0"
                    );
                    let hits: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
                        .bind(text)
                        .fetch_one(&pool)
                        .await
                        .expect("search");
                    (sql, hits)
                };
                if hits > 0 {
                    found.push(format!("{table}.{column} ({sql})"));
                }
            }
            pool.close().await;
        }
    }
    found
}
