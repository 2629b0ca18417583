//! Signing in (provider and development), choosing a username, the profile, signing out.

use std::time::Duration;

use crate::both;
use crate::common::{Answer, Browser, FakeUser, Mode, TestApp, hostile_inputs};
use natter::domain::{Email, Username};

/// A direct connection to the test's database, for what no page shows: how many users rows
/// exist, and session times to move into the past.
enum Sql {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Sql {
    async fn open(app: &TestApp) -> Sql {
        let url = app.db.url();
        match app.db.backend() {
            crate::common::Backend::Sqlite => {
                Sql::Sqlite(sqlx::SqlitePool::connect(&url).await.expect("sqlite"))
            }
            crate::common::Backend::Postgres => {
                Sql::Postgres(sqlx::PgPool::connect(&url).await.expect("postgres"))
            }
        }
    }

    async fn scalar(&self, query: &'static str) -> i64 {
        match self {
            Sql::Sqlite(pool) => sqlx::query_scalar(query)
                .fetch_one(pool)
                .await
                .expect(query),
            Sql::Postgres(pool) => sqlx::query_scalar(query)
                .fetch_one(pool)
                .await
                .expect(query),
        }
    }

    async fn execute(&self, query: &'static str, arg: i64) {
        match self {
            Sql::Sqlite(pool) => sqlx::query(query).bind(arg).execute(pool).await.map(|_| ()),
            Sql::Postgres(pool) => sqlx::query(query).bind(arg).execute(pool).await.map(|_| ()),
        }
        .expect(query);
    }

    async fn users(&self) -> i64 {
        self.scalar("SELECT COUNT(*) FROM users").await
    }
}

/// Text as maud puts it into HTML (content and attribute values alike).
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Asserts `input` can only appear in `page` escaped: if escaping changes it, the raw text must
/// not be there.
#[track_caller]
fn assert_escaped(page: &Answer, input: &str, what: &str) {
    assert_ne!(page.status, 500, "{what} {input:?}");
    if escaped(input) != input {
        assert!(
            !page.body.contains(input),
            "{what} {input:?} appears unescaped"
        );
    }
}

fn encoded(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The session cookie a response sets, if any.
fn session_cookie(answer: &Answer) -> Option<String> {
    answer
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("natter_session="))
        .map(str::to_string)
}

/// A URL on a port nothing listens on (taken a moment ago and let go): a provider that is down.
fn unanswered_url(path: &str) -> String {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}{path}", dead.local_addr().unwrap());
    drop(dead);
    url
}

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

        // Signing out ends the session on the server: the old cookie, replayed, gets nothing.
        let cookie = browser.cookie_header();
        let out = browser.post_form("/profile", "/auth/logout", &[]).await;
        assert_eq!((out.status, out.location().as_str()), (303, "/"));
        assert!(session_cookie(&out).is_some_and(|c| c.contains("Max-Age=0")), "{:?}", out.headers);
        assert_eq!(browser.get("/profile").await.location(), "/?next=%2Fprofile");
        let replay = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
            .get(app.url("/profile")).header("cookie", cookie).send().await.unwrap();
        assert_eq!(replay.status(), 303, "the old cookie is worthless");
        assert_eq!(replay.headers()["location"], "/?next=%2Fprofile");
        assert_eq!(again.get("/profile").await.status, 200, "the other browser stays signed in");
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
        assert_eq!(Sql::open(&app).await.users().await, 0, "no user row before sign-in succeeds");
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
        assert!(stateless.contains("code=") && !stateless.contains("state="), "{stateless}");
        let page = browser.get(&stateless).await;
        assert_eq!(page.status, 400);
        assert!(page.body.contains("could not be verified") && page.body.contains("Try again"), "{}", page.body);
        assert_eq!(browser.get("/home").await.status, 303, "nobody is signed in");
        assert!(app.provider.token_log().is_empty(), "no code was exchanged");
        assert_eq!(Sql::open(&app).await.users().await, 0);
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
        assert_eq!(Sql::open(&app).await.users().await, 0);
    }

    async fn an_expired_code_ends_on_a_friendly_page(app: TestApp) {
        app.provider.set_code_lifetime(Duration::ZERO);
        let browser = app.browser();
        let page = provider_sign_in(&app, &browser, None).await;
        assert_eq!(page.status, 502);
        assert!(page.body.contains("did not confirm the sign-in") && page.body.contains("Try again"), "{}", page.body);
        assert_eq!(app.provider.token_log(), vec!["invalid_grant: expired"]);
        assert_eq!(browser.get("/home").await.status, 303);
        assert_eq!(Sql::open(&app).await.users().await, 0);
    }

    async fn a_failing_userinfo_endpoint_ends_on_a_friendly_page(app: TestApp) {
        app.provider.set_mode(Mode::UserinfoFails);
        let browser = app.browser();
        let page = provider_sign_in(&app, &browser, None).await;
        assert_eq!(page.status, 502);
        assert!(page.body.contains("not answering") && page.body.contains("Try again"), "{}", page.body);
        assert_eq!(app.provider.token_log(), vec!["ok"], "the code was exchanged; userinfo failed");
        assert_eq!(browser.get("/home").await.status, 303);
        assert_eq!(Sql::open(&app).await.users().await, 0);
        // Once the provider is back, the same person signs in.
        app.provider.set_mode(Mode::Normal);
        assert_eq!(provider_sign_in(&app, &browser, None).await.location(), "/username");
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
        assert_eq!(Sql::open(&app).await.users().await, 0);
        // "true" as a string is accepted, as Google sometimes sends it.
        app.provider.sign_in_as(FakeUser { subject: "u".into(), email: "u@example.org".into(), email_verified: Some("true".into()) });
        assert_eq!(provider_sign_in(&app, &app.browser(), None).await.status, 303);
    }

    #[settings(NATTER_OAUTH_TOKEN_URL = &unanswered_url("/token"))]
    async fn a_provider_that_is_down_ends_on_a_friendly_page(app: TestApp) {
        let browser = app.browser();
        let page = provider_sign_in(&app, &browser, None).await;
        assert_eq!(page.status, 502);
        assert!(page.body.contains("not answering"), "{}", page.body);
        assert!(page.body.contains("Try again"));
        assert_eq!(browser.get("/home").await.status, 303);
        assert_eq!(Sql::open(&app).await.users().await, 0);
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
            ("ada\u{202e}nimda", "only letters"),
            ("\u{2066}ada\u{2069}", "only letters"),
            ("", "Choose a username"),
        ] {
            let r = browser.post_form("/username", "/username", &[("username", typed)]).await;
            assert_eq!(r.status, 422, "{typed:?}");
            assert!(r.body.contains(reason), "{typed:?}: expected {reason:?} in {}", r.body);
            let escaped = typed.replace('<', "&lt;").replace('>', "&gt;");
            assert!(r.body.contains(&format!("value=\"{escaped}\"")), "{typed:?} kept in the form");
            assert!(r.body.contains("aria-invalid=\"true\""));
        }
    }

    #[settings(NATTER_LIMIT_SIGN_INS = "10000/1m")]
    async fn every_hostile_username_is_refused_with_the_reason_and_what_was_typed(app: TestApp) {
        let browser = app.browser();
        browser.dev_sign_in("hostile@example.org").await;
        let csrf = browser.csrf_from("/username").await;
        // Look-alikes of reserved names: fullwidth letters and the Turkish dotted I fold to
        // "admin" or "istanbul" under Unicode rules, so only ASCII may pass.
        let lookalikes = ["ＡＤＭＩＮ", "admİn", "İstanbul", "ıstanbul", "ſupport", "аdmin"];
        let inputs: Vec<String> = hostile_inputs().into_iter().chain(lookalikes.map(String::from)).collect();
        assert!(inputs.len() > 35, "the whole fixture is read");
        for input in &inputs {
            let r = browser.post("/username", &[("username", input), ("csrf", &csrf)]).await;
            match Username::parse(input) {
                Err(why) => {
                    assert_eq!(r.status, 422, "{input:?}: {}", r.body);
                    assert!(r.body.contains(why.0), "{input:?}: the reason {:?} is shown", why.0);
                    assert!(r.body.contains(&format!("value=\"{}\"", escaped(input))), "{input:?} is typed back, escaped");
                    assert_escaped(&r, input, "username");
                }
                Ok(_) => {
                    // A valid one is claimed by someone fresh, so the rest stay testable here.
                    let fresh = app.browser();
                    fresh.dev_sign_in(&format!("{}@example.org", rand::random::<u32>())).await;
                    let r = fresh.post_form("/username", "/username", &[("username", input)]).await;
                    assert_eq!(r.status, 303, "{input:?}");
                }
            }
        }
        for lookalike in lookalikes.iter().chain(&["admin", "Admin", "ADMIN"]) {
            assert!(Username::parse(lookalike).is_err(), "{lookalike} must be refused");
        }
        assert_eq!(browser.get("/username").await.status, 200, "no name was set");
    }

    #[settings(NATTER_LIMIT_SIGN_INS = "10000/1m")]
    async fn hostile_emails_and_return_paths_are_refused_or_shown_as_text(app: TestApp) {
        let guest = app.browser();
        let csrf = guest.csrf_from("/").await;
        // Signs in over and over, so it cannot be the guest looking at the signed-out pages.
        let signer = app.browser();
        let signer_csrf = signer.csrf_from("/").await;
        for input in hostile_inputs() {
            let r = guest.post("/auth/dev", &[("email", &input), ("csrf", &csrf)]).await;
            match Email::parse(&input) {
                Err(why) => {
                    assert_eq!(r.status, 422, "{input:?}");
                    assert!(r.body.contains(&escaped(why.0)), "{input:?}: {}", r.body);
                    assert!(r.body.contains(&format!("value=\"{}\"", escaped(&input))), "{input:?} is typed back");
                    assert_escaped(&r, &input, "email");
                }
                Ok(_) => assert_eq!(r.status, 303, "{input:?}"),
            }
            for next in [input.clone(), format!("/{input}")] {
                let q = encoded(&next);
                for page in [format!("/?next={q}"), format!("/auth/dev?next={q}")] {
                    let r = guest.get(&page).await;
                    assert_eq!(r.status, 200, "{page}");
                    assert_escaped(&r, &next, &page);
                }
                let r = guest.get(&format!("/auth/login?next={q}")).await;
                assert_eq!(r.status, 303, "login with next {next:?}");
                // Signing in with it goes to a local, plain-ASCII address.
                let r = signer.post("/auth/dev", &[("email", "next@example.org"), ("next", &next), ("csrf", &signer_csrf)]).await;
                assert_eq!(r.status, 303, "{next:?}");
                let to = r.header("location").unwrap_or_else(|| panic!("no plain Location for {next:?}"));
                assert!(to.starts_with("/username"), "{next:?} -> {to}");
                let page = signer.get(to).await;
                assert_eq!(page.status, 200, "{to}");
                assert_escaped(&page, &next, "next on /username");
                let form_csrf = page.csrf().expect("csrf");
                let r = signer.post("/username", &[("username", "x"), ("next", &next), ("csrf", &form_csrf)]).await;
                assert_eq!(r.status, 422);
                assert_escaped(&r, &next, "next in the refused form");
            }
        }
        // Once a name is chosen, next leads to a local path, encoded.
        let chosen = signer.post_form("/username", "/username", &[("username", "nexter"), ("next", "/<b>İ</b>")]).await;
        assert_eq!(chosen.header("location"), Some("/<b>%C4%B0</b>"));
        signer.post("/auth/dev", &[("email", "evil@example.org"), ("csrf", &signer_csrf)]).await;
        let r = signer.post_form("/username", "/username", &[("username", "evil_next"), ("next", "//evil.example")]).await;
        assert_eq!(r.header("location"), Some("/home"));
    }

    #[settings(NATTER_LIMIT_SIGN_INS = "10000/1m")]
    async fn hostile_callback_parameters_end_on_the_friendly_page(app: TestApp) {
        let browser = app.browser();
        for input in hostile_inputs() {
            let q = encoded(&input);
            // No sign-in in progress in this browser.
            for query in [format!("error={q}"), format!("code={q}&state={q}"), format!("code={q}"), format!("state={q}")] {
                let r = browser.get(&format!("/auth/callback?{query}")).await;
                assert_eq!(r.status, 400, "{query}");
                assert!(r.body.contains("Try again"), "{query}");
                assert_escaped(&r, &input, &query);
            }
            // A sign-in in progress, finished with a hostile code, state or error.
            for param in ["code", "state", "error"] {
                let to_provider = browser.get("/auth/login").await;
                let back = browser.get(to_provider.header("location").unwrap()).await;
                let mut callback = url::Url::parse(back.header("location").unwrap()).unwrap();
                let pairs: Vec<(String, String)> = callback.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).filter(|(k, _)| k != param).collect();
                callback.query_pairs_mut().clear().extend_pairs(pairs).append_pair(param, &input);
                let r = browser.get(callback.as_str()).await;
                assert!([400, 502].contains(&r.status), "{param}={input:?}: {}", r.status);
                assert!(r.body.contains("Try again"), "{param}={input:?}");
                assert_escaped(&r, &input, param);
                assert_eq!(browser.get("/home").await.status, 303, "{param}={input:?} signed someone in");
            }
        }
        assert_eq!(Sql::open(&app).await.users().await, 0);
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
        for loser in results.iter().filter(|r| r.status == 422) {
            assert!(loser.body.contains("That username is taken"), "{}", loser.body);
            assert!(loser.body.contains("value=\"Prize\""), "what they typed comes back");
            assert!(loser.body.contains("name=\"csrf\""), "ready to try another name");
        }
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

    async fn a_session_in_use_slides_its_expiry_and_its_cookie(app: TestApp) {
        const DAY: i64 = 86_400_000;
        let browser = app.signed_in("slider@example.org", "slider").await;
        let sql = Sql::open(&app).await;
        // As if the browser was last used two days ago: 28 days left.
        sql.execute("UPDATE sessions SET last_seen_at = last_seen_at - $1, expires_at = expires_at - $1", 2 * DAY).await;
        let before = sql.scalar("SELECT MAX(expires_at) FROM sessions").await;
        // natter may serve the session from its five-second cache first; the first request
        // after that sees the old times and slides them.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let cookie = loop {
            let page = browser.get("/home").await;
            assert_eq!(page.status, 200);
            if let Some(cookie) = session_cookie(&page) {
                break cookie;
            }
            assert!(tokio::time::Instant::now() < deadline, "the cookie was never sent again");
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        assert!(cookie.contains("Max-Age=2592000") && cookie.contains("HttpOnly"), "{cookie}");
        let after = sql.scalar("SELECT MAX(expires_at) FROM sessions").await;
        assert!(after > before + DAY, "expires_at slid: {before} -> {after}");
        // At most once a minute: the next request leaves both alone.
        assert_eq!(session_cookie(&browser.get("/home").await), None);
        assert_eq!(sql.scalar("SELECT MAX(expires_at) FROM sessions").await, after);
    }

    #[settings(NATTER_LIMIT_SIGN_INS = "3/1h")]
    async fn spoofed_forwarding_headers_share_one_sign_in_budget(app: TestApp) {
        let browser = app.browser();
        for i in 0..3 {
            let (xff, real) = (format!("10.0.0.{i}"), format!("10.1.0.{i}"));
            let r = browser.get_with("/auth/login", &[("x-forwarded-for", &xff), ("x-real-ip", &real)]).await;
            assert_eq!(r.status, 303);
        }
        let r = browser.get_with("/auth/login", &[("x-forwarded-for", "10.0.0.9"), ("x-real-ip", "10.1.0.9")]).await;
        assert_eq!(r.status, 429, "without trusted proxies the peer address is the client");
        assert!(r.header("retry-after").is_some());
    }

    #[settings(NATTER_LIMIT_SIGN_INS = "3/1h", NATTER_TRUSTED_PROXIES = "127.0.0.1")]
    async fn behind_a_trusted_proxy_each_client_has_its_own_budget(app: TestApp) {
        let browser = app.browser();
        // As the proxy sends it: X-Forwarded-For ends with the address it saw.
        let login = async |forwarded: &str| browser.get_with("/auth/login", &[("x-forwarded-for", forwarded)]).await.status;
        for _ in 0..3 {
            assert_eq!(login("203.0.113.1").await, 303);
        }
        assert_eq!(login("203.0.113.1").await, 429);
        assert_eq!(login("203.0.113.2").await, 303, "another client, another budget");
        // One IPv6 /64 is one client, whichever of its addresses it uses.
        for i in 1..=3 {
            assert_eq!(login(&format!("2001:db8:0:1::{i}")).await, 303);
        }
        assert_eq!(login("2001:db8:0:1:ffff:ffff:ffff:ffff").await, 429, "the same /64");
        assert_eq!(login("2001:db8:0:2::1").await, 303, "the next /64");
        assert_eq!(browser.get("/auth/login").await.status, 303, "the proxy's own requests count as its own");
    }

    #[settings(NATTER_LIMIT_SIGN_INS = "3/1h", NATTER_TRUSTED_PROXIES = "127.0.0.1")]
    async fn behind_a_trusted_proxy_a_client_cannot_choose_its_address(app: TestApp) {
        let browser = app.browser();
        // A proxy that passes the client's X-Real-IP through and appends the address it saw to
        // the client's X-Forwarded-For (nginx's defaults): every request here is 203.0.113.1.
        for i in 0..10 {
            let (real, forwarded) = (format!("198.51.100.{i}"), format!("198.51.100.{i}, 10.9.0.{i}, 203.0.113.1"));
            let r = browser.get_with("/auth/login", &[("x-real-ip", &real), ("x-forwarded-for", &forwarded)]).await;
            assert_eq!(r.status, if i < 3 { 303 } else { 429 }, "attempt {i}: the client chose its address");
        }
        // Behind two trusted proxies, the hop left of the inner one is the client.
        let chained = browser.get_with("/auth/login", &[("x-forwarded-for", "198.51.100.99, 203.0.113.1, 127.0.0.1")]).await;
        assert_eq!(chained.status, 429);
    }

    #[settings(NATTER_LIMIT_SIGN_INS = "3/1h")]
    async fn sign_in_attempts_are_limited_per_address(app: TestApp) {
        let browser = app.browser();
        for _ in 0..3 {
            assert_eq!(browser.get("/auth/login").await.status, 303);
        }
        let limited = browser.get("/auth/login").await;
        assert_eq!(limited.status, 429);
        assert!(limited.header("retry-after").is_some());
        assert!(limited.body.contains("Slow down"), "{}", limited.body);
    }

    #[settings(NATTER_DEV_LOGIN = "0")]
    async fn development_sign_in_can_be_off(app: TestApp) {
        let browser = app.browser();
        assert!(!browser.get("/").await.body.contains("/auth/dev"));
        assert_eq!(browser.get("/auth/dev").await.status, 404);
        for fields in [vec![("email", "x@example.org")], vec![("email", "x@example.org"), ("csrf", "garbage")]] {
            let r = browser.post("/auth/dev", &fields).await;
            assert_eq!(r.status, 404, "{fields:?}");
            assert!(r.body.contains("Not found"), "{}", r.body);
        }
        assert_eq!(Sql::open(&app).await.users().await, 0);
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

/// The fixture's annotations are read as what they mean, not as text to type.
#[test]
fn the_hostile_fixture_is_read_as_the_inputs_it_describes() {
    let inputs = hostile_inputs();
    let has = |s: &str| inputs.iter().any(|i| i == s);
    assert!(has(" ") && !inputs.iter().any(|i| i.contains("only spaces")));
    assert!(has("\t\t\t") && has("\r\n\r\n") && has("\u{0}") && has("\u{202e}"));
    assert!(has("admin") && has("Admin") && has("ADMIN"));
    assert!(has(&"A".repeat(4000)) && has(&"A".repeat(4001)));
    assert!(has("ＡＤＭＩＮ") && has("İstanbul") && has("e\u{301}"));
    assert!(has("<script>alert(1)</script>"));
    assert!(has("hx-get=\"/auth/logout\" hx-trigger=\"load\""));
    assert!(
        inputs.iter().all(|i| !i.contains('…') && !i.contains(" (")),
        "{inputs:?}"
    );
}
