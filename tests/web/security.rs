//! Headers, CSRF, same-origin checks, host redirects, error pages.

use poem::{EndpointExt, handler};

use crate::both;
use crate::common::{Answer, Browser, TestApp};

/// Asserts the headers every natter response carries (DESIGN.md §8), and no inline script or
/// style in HTML.
#[track_caller]
fn assert_secure(page: &Answer, name: &str) {
    assert_eq!(page.header("content-security-policy"), Some(CSP), "{name}");
    assert_eq!(
        page.header("x-content-type-options"),
        Some("nosniff"),
        "{name}"
    );
    assert_eq!(
        page.header("referrer-policy"),
        Some("same-origin"),
        "{name}"
    );
    assert!(page.header("x-request-id").is_some(), "{name}");
    if page
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/html"))
    {
        for inline in ["<script>", " style=\"", " onclick=", " onload=", "<style"] {
            assert!(!page.body.contains(inline), "{name} has {inline}");
        }
    }
}

#[handler]
fn panics() -> &'static str {
    panic!("a bug in a handler")
}

/// natter's own middleware around an endpoint that panics, served on its own port: what a
/// handler bug looks like from outside, without a route for it in natter itself.
async fn panicking_server(app: &TestApp) -> String {
    let state = app.state.clone();
    let endpoint = poem::Route::new()
        .at("/boom", poem::get(panics).post(panics))
        .around(move |ep, req| {
            let state = state.clone();
            async move { natter::web::middleware::around(&state, ep, req).await }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(endpoint));
    format!("http://{addr}")
}

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

both! {
    async fn every_page_carries_the_security_headers_and_no_inline_script(app: TestApp) {
        let browser = app.signed_in("headers@example.org", "headers").await;
        let code = app.create_room(&browser, "Headers").await;
        let guest = app.browser();
        let pages = [
            (guest.get("/").await, "/"),
            (guest.get("/auth/dev").await, "/auth/dev"),
            (guest.get("/nowhere").await, "/nowhere"),
            (browser.get("/home").await, "/home"),
            (browser.get("/profile").await, "/profile"),
            (browser.get(&format!("/rooms/{code}")).await, "room"),
            (browser.get(&format!("/join/{code}")).await, "join"),
            (browser.get("/assets/js/live.js").await, "asset"),
        ];
        for (page, name) in pages {
            assert_secure(&page, name);
        }
        // The pages people meet on the way in, and the error pages.
        let newcomer = app.browser();
        newcomer.dev_sign_in("newcomer@example.org").await;
        let username = newcomer.get("/username").await;
        assert_eq!(username.status, 200);
        assert_secure(&username, "/username");
        let refused = newcomer.post_form("/username", "/username", &[("username", "<b>no</b>")]).await;
        assert_eq!(refused.status, 422);
        assert_secure(&refused, "422 username form");
        let problem = guest.get("/auth/callback?code=x&state=y").await;
        assert!(problem.body.contains("Try again"), "{}", problem.body);
        assert_secure(&problem, "sign-in problem page");
        let wrong_method = browser.post_form("/home", "/home", &[]).await;
        assert_eq!(wrong_method.status, 405);
        assert_secure(&wrong_method, "405");
        let invalid = browser.post_form("/home", "/rooms", &[("name", &"x".repeat(81))]).await;
        assert_eq!(invalid.status, 422);
        assert_secure(&invalid, "422 room form");
        // Sign-in attempts are limited per address (30 a minute by default): the 429 page.
        let mut limited = None;
        for _ in 0..40 {
            let r = guest.get("/auth/login").await;
            if r.status == 429 {
                limited = Some(r);
                break;
            }
        }
        let limited = limited.expect("sign-ins are limited");
        assert!(limited.body.contains("Slow down"));
        assert_secure(&limited, "429");
    }

    async fn a_panicking_handler_shows_the_error_page_with_a_request_id(app: TestApp) {
        let base = panicking_server(&app).await;
        let browser = Browser::new(&app.base);
        let host = app.base.trim_start_matches("http://").to_string();
        let get = browser.get_with(&format!("{base}/boom"), &[("host", &host)]).await;
        let post = browser.post_with(&format!("{base}/boom"), &[], &[("origin", &app.base)]).await;
        for page in [get, post] {
            assert_eq!(page.status, 500, "{page:?}");
            assert!(page.body.contains("Something went wrong") && page.body.contains("natter.css"), "{}", page.body);
            let id = page.header("x-request-id").expect("request id").to_string();
            assert!(page.body.contains(&format!("<code>{id}</code>")), "the page quotes {id}");
            assert!(!page.body.contains("a bug in a handler"), "the panic stays in the log");
            assert_secure(&page, "500");
        }
        // The server goes on serving.
        assert_eq!(browser.get_with(&format!("{base}/boom"), &[("host", &host)]).await.status, 500);
    }

    async fn choosing_a_username_needs_the_csrf_token(app: TestApp) {
        let browser = app.browser();
        browser.dev_sign_in("chooser@example.org").await;
        let other = app.browser();
        other.dev_sign_in("other@example.org").await;
        let others_token = other.csrf_from("/username").await;
        for fields in [vec![("username", "chooser")], vec![("username", "chooser"), ("csrf", "garbage")], vec![("username", "chooser"), ("csrf", &others_token)]] {
            let r = browser.post("/username", &fields).await;
            assert_eq!(r.status, 403, "{fields:?}");
            assert!(r.body.contains("security token"), "{}", r.body);
        }
        assert_eq!(browser.get("/username").await.status, 200, "no name was set");
        assert_eq!(browser.get("/home").await.location(), "/username");
        let chosen = browser.post_form("/username", "/username", &[("username", "chooser")]).await;
        assert_eq!(chosen.status, 303, "the name was still free");
    }

    async fn signing_out_everywhere_needs_the_csrf_token(app: TestApp) {
        let laptop = app.signed_in("everywhere@example.org", "everywhere").await;
        let phone = app.browser();
        phone.dev_sign_in("everywhere@example.org").await;
        let others_token = app.signed_in("someone@example.org", "someone").await.csrf_from("/home").await;
        for fields in [vec![], vec![("csrf", "garbage")], vec![("csrf", others_token.as_str())]] {
            let r = laptop.post("/auth/logout/everywhere", &fields).await;
            assert_eq!(r.status, 403, "{fields:?}");
        }
        assert_eq!(laptop.get("/home").await.status, 200);
        assert_eq!(phone.get("/home").await.status, 200, "no session was ended");
        assert!(laptop.get("/profile").await.body.contains("signed in on 2 browsers"));
    }

    async fn every_page_carries_its_own_masking_of_the_token_and_each_is_accepted(app: TestApp) {
        let browser = app.signed_in("masks@example.org", "masks").await;
        let home = browser.csrf_from("/home").await;
        let profile = browser.csrf_from("/profile").await;
        let home_again = browser.csrf_from("/home").await;
        assert!(home != profile && home != home_again && profile != home_again, "masked afresh on every page");
        for (token, name) in [(&home, "one"), (&profile, "two"), (&home_again, "three"), (&home, "four")] {
            let r = browser.post("/rooms", &[("name", name), ("csrf", token)]).await;
            assert_eq!(r.status, 303, "{name}: {}", r.body);
        }
        let rooms = browser.get("/home").await.body;
        assert!(["one", "two", "three", "four"].iter().all(|n| rooms.contains(n)), "{rooms}");
    }

    async fn a_post_without_or_with_a_wrong_csrf_token_is_refused_and_changes_nothing(app: TestApp) {
        let browser = app.signed_in("csrf@example.org", "csrf").await;
        let other = app.signed_in("other@example.org", "other").await;
        let others_token = other.csrf_from("/home").await;
        for fields in [vec![("name", "Nope")], vec![("name", "Nope"), ("csrf", "garbage")], vec![("name", "Nope"), ("csrf", &others_token)]] {
            let r = browser.post("/rooms", &fields).await;
            assert_eq!(r.status, 403, "{fields:?}");
            assert!(r.body.contains("security token"), "{}", r.body);
        }
        assert!(browser.get("/home").await.body.contains("No rooms yet"), "no room was created");
        // Sign-out without a token does not sign out.
        assert_eq!(browser.post("/auth/logout", &[]).await.status, 403);
        assert_eq!(browser.get("/home").await.status, 200);
        // Before sign-in, the dev form needs the pre-session token too.
        let guest = app.browser();
        guest.get("/").await;
        assert_eq!(guest.post("/auth/dev", &[("email", "x@example.org")]).await.status, 403);
    }

    async fn a_cross_site_form_is_refused_before_anything_else(app: TestApp) {
        let browser = app.signed_in("origin@example.org", "origin").await;
        let csrf = browser.csrf_from("/home").await;
        for origin in ["https://evil.example", "null", "http://127.0.0.1:1"] {
            let r = browser.post_with("/rooms", &[("name", "x"), ("csrf", &csrf)], &[("origin", origin)]).await;
            assert_eq!(r.status, 403, "{origin}");
        }
        // No Origin: the Referer decides; neither: refused.
        let r = browser.post_with("/rooms", &[("name", "x"), ("csrf", &csrf)], &[]).await;
        assert_eq!(r.status, 403);
        let referer = app.url("/home");
        let r = browser.post_with("/rooms", &[("name", "ok"), ("csrf", &csrf)], &[("referer", &referer)]).await;
        assert_eq!(r.status, 303);
    }

    async fn another_host_name_is_redirected_to_the_public_url(app: TestApp) {
        let browser = app.browser();
        let alias = app.base.replace("127.0.0.1", "localhost");
        let r = browser.get(&format!("{alias}/profile?x=1")).await;
        assert_eq!(r.status, 307);
        assert_eq!(r.header("location"), Some(app.url("/profile?x=1").as_str()));
        for machine in ["/healthz", "/readyz"] {
            assert_eq!(browser.get(&format!("{alias}{machine}")).await.status, 200, "{machine} is never redirected");
        }
    }

    async fn errors_are_pages_in_the_layout_with_a_request_id(app: TestApp) {
        let browser = app.signed_in("errors@example.org", "errors").await;
        let missing = browser.get("/no/such/page").await;
        assert_eq!(missing.status, 404);
        assert!(missing.body.contains("Not found") && missing.body.contains("Request id"), "{}", missing.body);
        assert!(missing.body.contains("natter.css"));
        let wrong_method = browser.post_form("/home", "/home", &[]).await;
        assert_eq!(wrong_method.status, 405);
        assert!(wrong_method.body.contains("Not allowed"));
        let not_mine = browser.get("/rooms/ABCD-EFGH").await;
        assert_eq!(not_mine.status, 404);
        let too_big = "x".repeat(70 * 1024);
        let r = browser.post_form("/home", "/rooms", &[("name", &too_big)]).await;
        assert_eq!(r.status, 413);
        assert!(r.body.contains("Too large"));
    }

    async fn health_and_readiness_answer(app: TestApp) {
        let browser = app.browser();
        assert_eq!(browser.get("/healthz").await.status, 200);
        assert_eq!(browser.get("/readyz").await.body, "ready\n");
    }

    async fn assets_are_cached_by_content_hash(app: TestApp) {
        let browser = app.browser();
        let page = browser.get("/").await;
        let css = crate::common::extract_attr(&page.body, "rel=\"stylesheet\" href=\"").unwrap();
        assert!(css.contains("?v="), "{css}");
        let r = browser.get(&css).await;
        assert_eq!(r.status, 200);
        assert!(r.header("cache-control").unwrap().contains("immutable"));
        let etag = r.header("etag").unwrap().to_string();
        let again = browser.get_with("/assets/natter.css", &[("if-none-match", &etag)]).await;
        assert_eq!(again.status, 304);
        assert_eq!(browser.get("/assets/../Cargo.toml").await.status, 404);
        // The path is decoded into one name, which must be in the table.
        let encoded = browser.get("/assets/js%2F..%2F..%2FCargo.toml").await;
        assert_eq!(encoded.status, 404);
    }

    async fn pages_load_htmx_first_then_each_of_natters_modules(app: TestApp) {
        let browser = app.browser();
        let page = browser.get("/").await;
        // Every <script …> tag, as written.
        let tags: Vec<&str> = page
            .body
            .split("<script ")
            .skip(1)
            .map(|rest| &rest[..rest.find('>').unwrap()])
            .collect();
        // Deferred classic scripts and modules run in document order, so htmx and its ws and
        // sse extensions are there before js/live.js replaces htmx.createWebSocket.
        let vendored = ["htmx.min.js", "ws.min.js", "sse.min.js"];
        assert!(tags.len() > vendored.len(), "{tags:?}");
        for (tag, vendored) in tags.iter().zip(vendored) {
            assert!(tag.starts_with(&format!("src=\"/assets/{vendored}?v=")), "{tag}");
            assert!(tag.ends_with(" defer"), "{tag}");
        }
        let mut linked = Vec::new();
        for tag in &tags[vendored.len()..] {
            let url = tag
                .strip_prefix("type=\"module\" src=\"")
                .and_then(|t| t.strip_suffix('"'))
                .unwrap_or_else(|| panic!("not one of natter's modules: {tag}"));
            let (path, _) = url.split_once("?v=").expect("a content-hashed URL");
            linked.push(path.strip_prefix("/assets/").unwrap().to_string());
            let r = browser.get(url).await;
            assert_eq!(r.status, 200, "{url}");
            let js = Some("text/javascript; charset=utf-8");
            assert_eq!(r.header("content-type"), js, "{url}");
            let cache = r.header("cache-control").unwrap();
            assert!(cache.contains("immutable"), "{url}: {cache}");
        }
        // Every file under assets/js/ is served and loaded: none forgotten in the table.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/js");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|f| format!("js/{}", f.unwrap().file_name().to_string_lossy()))
            .collect();
        on_disk.sort();
        linked.sort();
        assert_eq!(linked, on_disk);
    }
}

/// natter's modules import nothing (an imported URL would carry no content hash, so it would be
/// revalidated on every page load instead of cached for a year), and people can read them: no
/// line is over 100 columns.
#[test]
fn natters_scripts_import_nothing_and_keep_lines_readable() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/js");
    for file in std::fs::read_dir(dir).unwrap() {
        let path = file.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let at = format!("{}:{}", path.display(), n + 1);
            let code = line.trim_start();
            assert!(
                !code.starts_with("import ") && !code.contains("import("),
                "{at} imports"
            );
            assert!(line.chars().count() <= 100, "{at} is over 100 columns");
        }
    }
}
