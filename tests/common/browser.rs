//! A browser over plain HTTP: its own cookie jar, redirects not followed, CSRF tokens read from
//! the page it loaded, and the few journeys (sign in, create or join a room, post) tests repeat.

use std::{sync::Arc, time::Duration};

use reqwest::{cookie::CookieStore, header::HeaderMap};

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `Location` header as a path on natter (the origin removed).
    pub fn location(&self) -> String {
        let loc = self.header("location").unwrap_or_default();
        match url::Url::parse(loc) {
            Ok(u) => u[url::Position::BeforePath..].to_string(),
            Err(_) => loc.to_string(),
        }
    }

    /// The first CSRF token in the page.
    pub fn csrf(&self) -> Option<String> {
        extract_attr(&self.body, "name=\"csrf\" value=\"")
    }
}

/// The value following `marker` up to the next `"`.
pub fn extract_attr(body: &str, marker: &str) -> Option<String> {
    let start = body.find(marker)? + marker.len();
    let len = body[start..].find('"')?;
    Some(body[start..start + len].to_string())
}

/// A signed-out or signed-in browser: its own cookie jar, redirects not followed.
pub struct Browser {
    pub http: reqwest::Client,
    pub jar: Arc<reqwest::cookie::Jar>,
    pub base: String,
}

impl Browser {
    pub fn new(base: &str) -> Self {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Self {
            http,
            jar,
            base: base.to_string(),
        }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    async fn read(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap_or_default();
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        Self::read(self.http.get(self.url(path)).send().await.expect("GET")).await
    }

    /// GET with extra headers (e.g. `HX-Request`).
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = self.http.get(self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Self::read(req.send().await.expect("GET")).await
    }

    /// POSTs `fields` as a browser on natter's page would: same-origin `Origin` header.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        self.post_with(path, fields, &[("origin", &self.base)])
            .await
    }

    pub async fn post_with(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = self.http.post(self.url(path)).form(fields);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Self::read(req.send().await.expect("POST")).await
    }

    /// POSTs a `multipart/form-data` form as a browser would, in this order: `fields`, then
    /// `files` (each `(filename, content type, bytes)` as a part named `files`), with a
    /// same-origin `Origin` and `headers`. Built by hand, so tests control every byte.
    pub async fn post_multipart(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        files: &[(&str, &str, &[u8])],
        headers: &[(&str, &str)],
    ) -> Answer {
        let (content_type, body) = multipart(fields, files);
        let mut req = self
            .http
            .post(self.url(path))
            .header("origin", &self.base)
            .header("content-type", content_type)
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Self::read(req.send().await.expect("POST")).await
    }

    /// GETs `path` as bytes.
    pub async fn get_bytes(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let mut req = self.http.get(self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let response = req.send().await.expect("GET");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.expect("body").to_vec();
        (status, headers, body)
    }

    /// Loads `page` for its CSRF token, then posts the form with it.
    pub async fn post_form(&self, page: &str, path: &str, fields: &[(&str, &str)]) -> Answer {
        let csrf = self.csrf_from(page).await;
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.push(("csrf", &csrf));
        self.post(path, &all).await
    }

    pub async fn csrf_from(&self, page: &str) -> String {
        let p = self.get(page).await;
        p.csrf()
            .unwrap_or_else(|| panic!("no csrf on {page} ({}): {}", p.status, p.body))
    }

    /// A browser on `base` signed in through development sign-in, with `username` chosen.
    pub async fn signed_in(base: &str, email: &str, username: &str) -> Browser {
        let b = Browser::new(base);
        b.dev_sign_in(email).await;
        let r = b
            .post_form("/username", "/username", &[("username", username)])
            .await;
        assert_eq!(r.status, 303, "choosing {username}: {}", r.body);
        b
    }

    /// Creates a room; returns its code.
    pub async fn create_room(&self, name: &str) -> String {
        let r = self.post_form("/home", "/rooms", &[("name", name)]).await;
        assert_eq!(r.status, 303, "create room: {}", r.body);
        r.location().trim_start_matches("/rooms/").to_string()
    }

    /// Joins a room by code.
    pub async fn join(&self, code: &str) {
        let r = self
            .post_form("/home", "/rooms/join", &[("code", code)])
            .await;
        assert_eq!(r.status, 303, "join {code}: {}", r.body);
    }

    /// Leaves room `code` from its page, as its Leave button does.
    pub async fn leave(&self, code: &str) {
        let r = self
            .post_form(
                &format!("/rooms/{code}"),
                &format!("/rooms/{code}/leave"),
                &[],
            )
            .await;
        assert_eq!(r.status, 303, "leave {code}: {}", r.body);
    }

    /// Signs out from the home page.
    pub async fn sign_out(&self) {
        let r = self.post_form("/home", "/auth/logout", &[]).await;
        assert_eq!(r.status, 303, "sign out: {}", r.body);
    }

    /// Posts a message without JS from the room's page (opening it reads the room); returns
    /// its seq.
    pub async fn say(&self, code: &str, body: &str) -> i64 {
        self.say_on(&format!("/rooms/{code}"), code, body).await
    }

    /// Posts a message to room `code` without JS from `page` (a direct conversation's is
    /// `/dm/{name}`, its room address redirects there); returns its seq.
    pub async fn say_on(&self, page: &str, code: &str, body: &str) -> i64 {
        let csrf = self.csrf_from(page).await;
        let id = format!("{:032x}", rand::random::<u128>());
        let r = self
            .post(
                &format!("/rooms/{code}/messages"),
                &[("body", body), ("client_id", &id), ("csrf", &csrf)],
            )
            .await;
        assert_eq!(r.status, 303, "post: {}", r.body);
        r.location()
            .rsplit("#msg-")
            .next()
            .and_then(|s| s.parse().ok())
            .expect("seq in the redirect")
    }

    /// Development sign-in as `email`.
    pub async fn dev_sign_in(&self, email: &str) -> Answer {
        let r = self.post_form("/", "/auth/dev", &[("email", email)]).await;
        assert_eq!(r.status, 303, "dev sign-in: {}", r.body);
        r
    }

    /// The `Cookie` header this browser sends to natter.
    pub fn cookie_header(&self) -> String {
        let url = url::Url::parse(&self.base).expect("base");
        self.jar
            .cookies(&url)
            .map(|v| v.to_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    }

    /// A browser on `base` (another instance) carrying this one's cookies: the same session.
    pub fn same_session_on(&self, base: &str) -> Browser {
        let there = Browser::new(base);
        let url = url::Url::parse(base).expect("base");
        for cookie in self.cookie_header().split("; ") {
            there.jar.add_cookie_str(cookie, &url);
        }
        there
    }
}

/// A `multipart/form-data` body: its `Content-Type` (with the boundary) and its bytes.
pub fn multipart(fields: &[(&str, &str)], files: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = format!("natter-test-{:032x}", rand::random::<u128>());
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    for (filename, content_type, bytes) in files {
        // As browsers do: `"` and line breaks in the name are percent-encoded, and so are
        // other control characters, which a header may not carry raw.
        let filename: String = filename
            .chars()
            .map(|c| match c {
                '"' => "%22".to_string(),
                c if c.is_ascii_control() && c != '\t' => format!("%{:02X}", c as u32),
                c => c.to_string(),
            })
            .collect();
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}
