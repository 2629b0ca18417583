//! Headers, CSRF, same-origin checks, host redirects, error pages.

use crate::both;

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
            (browser.get("/assets/natter.js").await, "asset"),
        ];
        for (page, name) in pages {
            assert_eq!(page.header("content-security-policy"), Some(CSP), "{name}");
            assert_eq!(page.header("x-content-type-options"), Some("nosniff"), "{name}");
            assert_eq!(page.header("referrer-policy"), Some("same-origin"), "{name}");
            assert!(page.header("x-request-id").is_some(), "{name}");
            if page.header("content-type").is_some_and(|c| c.starts_with("text/html")) {
                for inline in ["<script>", " style=\"", " onclick=", " onload=", "<style"] {
                    assert!(!page.body.contains(inline), "{name} has {inline}");
                }
            }
        }
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
    }
}
