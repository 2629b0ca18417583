//! Signing in (provider and development), choosing a username, the profile, signing out.

use crate::both;
use crate::common::{Browser, FakeUser, Mode, TestApp};

/// Follows the provider sign-in as a browser does: natter → provider → natter's callback.
/// Returns natter's answer to the callback.
async fn provider_sign_in(
    app: &TestApp,
    browser: &Browser,
    next: Option<&str>,
) -> crate::common::Answer {
    let start = match next {
        Some(next) => format!(
            "/auth/login?next={}",
            url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        ),
        None => "/auth/login".to_string(),
    };
    let to_provider = browser.get(&start).await;
    assert_eq!(to_provider.status, 303, "{}", to_provider.body);
    let authorize = to_provider
        .header("location")
        .expect("provider URL")
        .to_string();
    assert!(
        authorize.starts_with(&app.provider.url("/authorize")),
        "{authorize}"
    );
    assert!(
        authorize.contains("code_challenge_method=S256"),
        "{authorize}"
    );
    let back = browser.get(&authorize).await;
    assert_eq!(back.status, 302, "provider refused: {}", back.body);
    let callback = back.header("location").expect("callback URL").to_string();
    assert!(
        callback.starts_with(&app.url("/auth/callback")),
        "{callback}"
    );
    browser.get(&callback).await
}

both! {
    async fn a_person_signs_in_with_the_provider_chooses_a_username_and_sees_their_profile(app: TestApp) {
        app.provider.sign_in_as(FakeUser::verified("google-123", "Ada@Example.org"));
        let browser = app.browser();
        let landing = browser.get("/").await;
        assert!(landing.body.contains("Sign in with Fake"), "{}", landing.body);

        let done = provider_sign_in(&app, &browser, None).await;
        assert_eq!(done.status, 303);
        assert_eq!(done.location(), "/username");
        assert_eq!(app.provider.token_log(), vec!["ok"], "the code was exchanged once with the PKCE verifier");

        let form = browser.get("/username").await;
        assert_eq!(form.status, 200);
        let chosen = browser.post_form("/username", "/username", &[("username", "Ada_L")]).await;
        assert_eq!((chosen.status, chosen.location().as_str()), (303, "/home"));

        let profile = browser.get("/profile").await;
        assert_eq!(profile.status, 200);
        assert!(profile.body.contains("Ada_L"), "username shown as typed");
        assert!(profile.body.contains("ada@example.org"), "email shown");
        assert!(profile.body.contains("Member since"));
        assert!(profile.body.contains("<time datetime="));

        // Signing in again goes straight home: the identity is the provider's subject.
        let again = app.browser();
        let done = provider_sign_in(&app, &again, None).await;
        assert_eq!(done.location(), "/home");
    }

    async fn the_email_is_refreshed_at_each_sign_in_and_identity_is_the_subject(app: TestApp) {
        app.provider.sign_in_as(FakeUser::verified("sub-7", "old@example.org"));
        let first = app.browser();
        provider_sign_in(&app, &first, None).await;
        first.post_form("/username", "/username", &[("username", "seven")]).await;

        app.provider.sign_in_as(FakeUser::verified("sub-7", "new@example.org"));
        let second = app.browser();
        assert_eq!(provider_sign_in(&app, &second, None).await.location(), "/home");
        let profile = second.get("/profile").await;
        assert!(profile.body.contains("seven") && profile.body.contains("new@example.org"), "{}", profile.body);

        // Same email, other subject: another person.
        app.provider.sign_in_as(FakeUser::verified("sub-8", "new@example.org"));
        let third = app.browser();
        assert_eq!(provider_sign_in(&app, &third, None).await.location(), "/username");
    }

    async fn signing_in_returns_to_the_page_people_were_going_to(app: TestApp) {
        let browser = app.browser();
        let bounced = browser.get("/profile").await;
        assert_eq!((bounced.status, bounced.location().as_str()), (303, "/?next=%2Fprofile"));
        let landing = browser.get(&bounced.location()).await;
        assert!(landing.body.contains("/auth/login?next=%2Fprofile"), "the sign-in link carries next");
        let done = provider_sign_in(&app, &browser, Some("/profile")).await;
        assert_eq!(done.location(), "/username?next=%2Fprofile");
        let chosen = browser.post_form("/username?next=%2Fprofile", "/username", &[("username", "returner"), ("next", "/profile")]).await;
        assert_eq!(chosen.location(), "/profile");
        // A next that leaves the site is ignored.
        let evil = app.browser().post_form("/", "/auth/dev", &[("email", "x@example.org"), ("next", "//evil.example")]).await;
        assert_eq!(evil.status, 303);
        assert!(!evil.location().contains("evil"), "{}", evil.location());
    }

    async fn denied_consent_ends_on_a_friendly_page(app: TestApp) {
        app.provider.set_mode(Mode::Deny);
        let browser = app.browser();
        let page = provider_sign_in(&app, &browser, None).await;
        assert_eq!(page.status, 400);
        assert!(page.body.contains("You cancelled the sign-in"), "{}", page.body);
        assert!(page.body.contains("Try again"));
        assert_eq!(browser.get("/home").await.status, 303, "nobody is signed in");
    }

    async fn a_forged_or_missing_state_signs_nobody_in(app: TestApp) {
        let browser = app.browser();
        let to_provider = browser.get("/auth/login").await;
        let back = browser.get(to_provider.header("location").unwrap()).await;
        let callback = back.header("location").unwrap().to_string();
        let forged = regex_replace_state(&callback, "forged");
        let page = browser.get(&forged).await;
        assert_eq!(page.status, 400);
        assert!(page.body.contains("could not be verified"), "{}", page.body);
        // The pending sign-in is used up: the genuine callback cannot be replayed afterwards.
        let replay = browser.get(&callback).await;
        assert_eq!(replay.status, 400);
        assert_eq!(browser.get("/home").await.status, 303);
        assert!(app.provider.token_log().is_empty(), "no code was exchanged");

        let browser = app.browser();
        let to_provider = browser.get("/auth/login").await;
        let back = browser.get(to_provider.header("location").unwrap()).await;
        let callback = back.header("location").unwrap().to_string();
        let stateless = callback.split("&state=").next().unwrap().to_string();
        assert_eq!(browser.get(&stateless).await.status, 400);
    }

    async fn a_callback_in_another_browser_signs_nobody_in(app: TestApp) {
        let victim = app.browser();
        let to_provider = victim.get("/auth/login").await;
        let back = victim.get(to_provider.header("location").unwrap()).await;
        let callback = back.header("location").unwrap().to_string();
        // An attacker hands the victim's callback URL to another browser (or the reverse).
        let other = app.browser();
        let page = other.get(&callback).await;
        assert_eq!(page.status, 400);
        assert!(page.body.contains("another browser"), "{}", page.body);
        assert_eq!(other.get("/home").await.status, 303);
        // The browser that started it can still finish.
        assert_eq!(victim.get(&callback).await.status, 303);
    }

    async fn a_token_endpoint_error_ends_on_a_friendly_page(app: TestApp) {
        app.provider.set_mode(Mode::RefuseTokens);
        let browser = app.browser();
        let page = provider_sign_in(&app, &browser, None).await;
        assert_eq!(page.status, 502);
        assert!(page.body.contains("did not confirm the sign-in"), "{}", page.body);
        assert!(page.body.contains("Try again"));
        assert_eq!(browser.get("/home").await.status, 303);
    }

    async fn an_unverified_email_is_refused(app: TestApp) {
        for verified in [None, Some(false.into()), Some("false".into())] {
            app.provider.sign_in_as(FakeUser { subject: "u".into(), email: "u@example.org".into(), email_verified: verified });
            let browser = app.browser();
            let page = provider_sign_in(&app, &browser, None).await;
            assert_eq!(page.status, 403);
            assert!(page.body.contains("not verified"), "{}", page.body);
            assert_eq!(browser.get("/home").await.status, 303);
        }
        // "true" as a string is accepted, as Google sometimes sends it.
        app.provider.sign_in_as(FakeUser { subject: "u".into(), email: "u@example.org".into(), email_verified: Some("true".into()) });
        assert_eq!(provider_sign_in(&app, &app.browser(), None).await.status, 303);
    }

    async fn a_provider_that_is_down_ends_on_a_friendly_page(app: TestApp) {
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_url = format!("http://{}/token", dead.local_addr().unwrap());
        drop(dead);
        let db = app.db.clone();
        drop(app);
        let app = TestApp::start_on(db, None, &[("NATTER_OAUTH_TOKEN_URL", &dead_url)]).await;
        let browser = app.browser();
        let page = provider_sign_in(&app, &browser, None).await;
        assert_eq!(page.status, 502);
        assert!(page.body.contains("not answering"), "{}", page.body);
        assert!(page.body.contains("Try again"));
    }

    async fn username_rules_are_enforced_with_the_reason_and_the_typed_text(app: TestApp) {
        let browser = app.browser();
        browser.dev_sign_in("rules@example.org").await;
        for (typed, reason) in [
            ("ab", "3 to 24 characters"),
            ("way_too_long_for_a_username_x", "3 to 24 characters"),
            ("has space", "only letters"),
            ("ädä", "only letters"),
            ("ADMIN", "reserved"),
            ("<script>x", "only letters"),
            ("", "Choose a username"),
        ] {
            let r = browser.post_form("/username", "/username", &[("username", typed)]).await;
            assert_eq!(r.status, 422, "{typed:?}");
            assert!(r.body.contains(reason), "{typed:?}: expected {reason:?} in {}", r.body);
            let escaped = typed.replace('<', "&lt;").replace('>', "&gt;");
            assert!(r.body.contains(&format!("value=\"{escaped}\"")), "{typed:?} kept in the form");
            assert!(r.body.contains("aria-invalid=\"true\""));
        }
        for hostile in crate::common::hostile_inputs() {
            let r = browser.post_form("/username", "/username", &[("username", &hostile)]).await;
            assert!(r.status == 422 || r.status == 303, "{hostile:?} gave {}", r.status);
            if r.status == 303 {
                break;
            }
        }
    }

    async fn usernames_are_unique_regardless_of_case_and_races_have_one_winner(app: TestApp) {
        let first = app.signed_in("first@example.org", "Racer").await;
        let second = app.browser();
        second.dev_sign_in("second@example.org").await;
        let taken = second.post_form("/username", "/username", &[("username", "rACER")]).await;
        assert_eq!(taken.status, 422);
        assert!(taken.body.contains("taken"), "{}", taken.body);
        drop(first);

        // Ten people race for one name at once: exactly one wins.
        let mut racers = Vec::new();
        for i in 0..10 {
            let b = app.browser();
            b.dev_sign_in(&format!("racer{i}@example.org")).await;
            let csrf = b.csrf_from("/username").await;
            racers.push((b, csrf));
        }
        let results = futures_util::future::join_all(racers.iter().map(|(b, csrf)| async move { b.post("/username", &[("username", "Prize"), ("csrf", csrf.as_str())]).await })).await;
        let statuses: Vec<u16> = results.iter().map(|r| r.status).collect();
        assert_eq!(statuses.iter().filter(|s| **s == 303).count(), 1, "{statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == 422).count(), 9, "{statuses:?}");
    }

    async fn nothing_but_sign_out_is_reachable_before_choosing_a_username(app: TestApp) {
        let browser = app.browser();
        browser.dev_sign_in("newbie@example.org").await;
        for page in ["/", "/home", "/profile", "/rooms/ABCD-EFGH", "/join/ABCD-EFGH"] {
            let r = browser.get(page).await;
            assert_eq!((r.status, r.location().as_str()), (303, "/username"), "{page}");
        }
        let csrf = browser.csrf_from("/username").await;
        let r = browser.post("/rooms", &[("name", "x"), ("csrf", &csrf)]).await;
        assert_eq!((r.status, r.location().as_str()), (303, "/username"));
        let out = browser.post("/auth/logout", &[("csrf", &csrf)]).await;
        assert_eq!((out.status, out.location().as_str()), (303, "/"));
        assert_eq!(browser.get("/username").await.status, 303);
    }

    async fn signing_out_makes_the_old_cookie_worthless(app: TestApp) {
        let browser = app.signed_in("leaver@example.org", "leaver").await;
        let cookie = browser.cookie_header();
        assert_eq!(browser.get("/home").await.status, 200);
        let out = browser.post_form("/home", "/auth/logout", &[]).await;
        assert_eq!((out.status, out.location().as_str()), (303, "/"));
        assert!(out.header("set-cookie").unwrap_or_default().contains("Max-Age=0"));
        // Replaying the old cookie by hand gets nothing.
        let replay = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
            .get(app.url("/home")).header("cookie", cookie).send().await.unwrap();
        assert_eq!(replay.status(), 303);
    }

    async fn signing_out_everywhere_ends_every_session(app: TestApp) {
        let laptop = app.signed_in("many@example.org", "many").await;
        let phone = app.browser();
        phone.dev_sign_in("many@example.org").await;
        let other = app.signed_in("bystander@example.org", "bystander").await;
        let profile = laptop.get("/profile").await;
        assert!(profile.body.contains("signed in on 2 browsers"), "{}", profile.body);
        let out = laptop.post_form("/profile", "/auth/logout/everywhere", &[]).await;
        assert_eq!(out.status, 303);
        assert_eq!(laptop.get("/home").await.status, 303);
        assert_eq!(phone.get("/home").await.status, 303);
        assert_eq!(other.get("/home").await.status, 200, "other people stay signed in");
    }

    async fn sessions_last_the_configured_days(app: TestApp) {
        let browser = app.browser();
        let r = browser.dev_sign_in("days@example.org").await;
        let cookie = r.header("set-cookie").unwrap_or_default();
        assert!(cookie.contains(&format!("Max-Age={}", 30 * 86_400)), "{cookie}");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    }

    async fn sign_in_attempts_are_limited_per_address(app: TestApp) {
        let db = app.db.clone();
        drop(app);
        let app = TestApp::start_on(db, None, &[("NATTER_LIMIT_SIGN_INS", "3/1h")]).await;
        let browser = app.browser();
        for _ in 0..3 {
            assert_eq!(browser.get("/auth/login").await.status, 303);
        }
        let limited = browser.get("/auth/login").await;
        assert_eq!(limited.status, 429);
        assert!(limited.header("retry-after").is_some());
        assert!(limited.body.contains("Slow down"), "{}", limited.body);
    }

    async fn development_sign_in_can_be_off(app: TestApp) {
        let db = app.db.clone();
        drop(app);
        let app = TestApp::start_on(db, None, &[("NATTER_DEV_LOGIN", "0")]).await;
        let browser = app.browser();
        assert!(!browser.get("/").await.body.contains("/auth/dev"));
        assert_eq!(browser.get("/auth/dev").await.status, 404);
        let r = browser.post("/auth/dev", &[("email", "x@example.org")]).await;
        assert!(r.status == 404 || r.status == 403, "{}", r.status);
    }

    async fn development_sign_in_explains_a_bad_email(app: TestApp) {
        let browser = app.browser();
        for bad in ["", "nope", "a b@example.org", "\"><img src=x>@x.org"] {
            let r = browser.post_form("/", "/auth/dev", &[("email", bad)]).await;
            assert_eq!(r.status, 422, "{bad:?}");
            assert!(r.body.contains("Enter an email address"), "{}", r.body);
            assert!(!r.body.contains("<img src=x>"));
        }
    }
}

/// Replaces the `state` parameter of a callback URL.
fn regex_replace_state(url: &str, state: &str) -> String {
    let mut parsed = url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| {
            (
                k.to_string(),
                if k == "state" {
                    state.to_string()
                } else {
                    v.to_string()
                },
            )
        })
        .collect();
    parsed.query_pairs_mut().clear().extend_pairs(pairs);
    parsed.to_string()
}
