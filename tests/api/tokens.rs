//! Personal access tokens: made and revoked on the profile page, shown once, stored hashed, the
//! only way into the API.

use base64::Engine;
use sha2::Digest;

use crate::both;
use crate::{
    Api, api_user, create_token, database_places_holding, shown_token, stored_token_hashes,
};

both! {
    async fn a_token_created_on_the_profile_is_shown_once_and_acts_as_its_owner(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let profile = ada.get("/profile").await;
        assert!(profile.body.contains("API tokens") && profile.body.contains("You have no API tokens."), "{}", profile.body);
        let page = ada.post_form("/profile", "/profile/tokens", &[("name", "  deploy bot ")]).await;
        assert_eq!(page.status, 201);
        assert!(page.body.contains("won't be shown again"), "{}", page.body);
        let token = shown_token(&page.body).unwrap();
        assert!(token.starts_with("ntr_") && token.len() == 47, "{token}");
        assert_eq!(page.header("cache-control"), Some("no-store"));
        // Listed by name, never shown again.
        let later = ada.get("/profile").await;
        assert!(later.body.contains("deploy bot") && later.body.contains("never"), "{}", later.body);
        assert!(!later.body.contains(&token), "the token text appears only once");
        let me = Api::new(&app, Some(&token)).get("/me").await;
        assert_eq!(me.status, 200, "{}", me.body);
        assert_eq!(me.json["username"], "ada");
        assert!(me.json["id"].is_i64());
        assert!(me.json["member_since"].as_str().unwrap().ends_with('Z'), "{}", me.body);
    }

    async fn only_the_sha256_of_a_token_is_stored(app: TestApp) {
        let (_ada, api) = api_user(&app, "ada@example.org", "ada").await;
        let token = api.token.clone().unwrap();
        assert_eq!(api.get("/me").await.status, 200, "the token works");
        // `ntr_` and 32 random bytes in unpadded base64url: what is kept is their SHA-256.
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&token["ntr_".len()..])
            .expect("a token is base64url after its prefix");
        assert_eq!(secret.len(), 32);
        let hash = sha2::Sha256::digest(&secret).to_vec();
        assert_eq!(stored_token_hashes(&app).await, vec![hash]);
        // Neither the token's text, nor its secret part, nor its raw bytes are anywhere.
        for text in [token.as_str(), &token["ntr_".len()..]] {
            let places = database_places_holding(&app, text, &secret).await;
            assert!(places.is_empty(), "the token is stored in the clear: {places:?}");
        }
        // The search itself finds what is there: the hash.
        let hex: String = sha2::Sha256::digest(&secret).iter().map(|b| format!("{b:02x}")).collect();
        let places = database_places_holding(&app, &hex, &sha2::Sha256::digest(&secret)).await;
        assert!(!places.is_empty(), "the search never finds anything, not even the hash");
    }

    async fn using_a_token_is_shown_as_last_used(app: TestApp) {
        let (ada, api) = api_user(&app, "ada@example.org", "ada").await;
        assert!(ada.get("/profile").await.body.contains("never"));
        assert_eq!(api.get("/rooms").await.status, 200);
        let profile = ada.get("/profile").await;
        assert!(!profile.body.contains(">never<"), "{}", profile.body);
    }

    async fn a_revoked_token_stops_working_at_once(app: TestApp) {
        let (ada, api) = api_user(&app, "ada@example.org", "ada").await;
        assert_eq!(api.get("/me").await.status, 200);
        let profile = ada.get("/profile").await;
        let action = crate::common::extract_attr(&profile.body, "action=\"/profile/tokens/").unwrap();
        let revoked = ada.post_form("/profile", &format!("/profile/tokens/{action}"), &[]).await;
        assert_eq!((revoked.status, revoked.location()), (303, "/profile".to_string()));
        api.get("/me").await.assert_problem(401, "unauthorized");
        assert!(ada.get("/profile").await.body.contains("You have no API tokens."));
        // Revoking again, or someone else's token, is not found.
        assert_eq!(ada.post_form("/profile", &format!("/profile/tokens/{action}"), &[]).await.status, 404);
        assert_eq!(ada.post_form("/profile", "/profile/tokens/nope/revoke", &[]).await.status, 404);
    }

    async fn signing_out_everywhere_says_that_tokens_keep_working_and_they_do(app: TestApp) {
        let (ada, api) = api_user(&app, "ada@example.org", "ada").await;
        let profile = ada.get("/profile").await;
        // Said where the button is, and read with it.
        assert!(profile.body.contains("API tokens keep working: <a href=\"#tokens-title\">revoke them below</a>"), "{}", profile.body);
        assert!(profile.body.contains("aria-describedby=\"sign-out-everywhere-note\""), "{}", profile.body);
        assert_eq!(ada.post_form("/profile", "/auth/logout/everywhere", &[]).await.status, 303);
        assert_eq!(ada.get("/profile").await.status, 303, "the browser is signed out");
        assert_eq!(api.get("/me").await.status, 200, "the token still works, as the page said");
    }

    async fn nobody_can_revoke_or_use_another_persons_token(app: TestApp) {
        let (ada, api) = api_user(&app, "ada@example.org", "ada").await;
        let bob = app.signed_in("bob@example.org", "bob").await;
        let profile = ada.get("/profile").await;
        let action = crate::common::extract_attr(&profile.body, "action=\"/profile/tokens/").unwrap();
        assert_eq!(bob.post_form("/profile", &format!("/profile/tokens/{action}"), &[]).await.status, 404);
        assert_eq!(api.get("/me").await.json["username"], "ada");
        assert!(!bob.get("/profile").await.body.contains("tests"), "bob sees only his tokens");
    }

    async fn missing_unknown_and_malformed_tokens_are_refused_with_401(app: TestApp) {
        let (_ada, api) = api_user(&app, "ada@example.org", "ada").await;
        let real = api.token.clone().unwrap();
        let forged = format!("ntr_{}", "A".repeat(43));
        for token in [None, Some(""), Some("nonsense"), Some(forged.as_str()), Some(&real[4..]), Some(&real[..46])] {
            let r = api.with_token(token).get("/me").await;
            r.assert_problem(401, "unauthorized");
            assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"natter\""), "{token:?}");
        }
        for scheme in ["Basic", "Token", "bearer"] {
            let r = Api::send(api.with_token(None).request(reqwest::Method::GET, "/me").header("authorization", format!("{scheme} {real}"))).await;
            assert!(r.status == 401 || (scheme == "bearer" && r.status == 200), "{scheme}: {}", r.status);
        }
    }

    async fn the_session_cookie_never_opens_the_api(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Cookies").await;
        let cookie = ada.cookie_header();
        assert!(cookie.contains("natter_session"));
        for path in ["/me".to_string(), "/rooms".into(), format!("/rooms/{code}/messages")] {
            let r = ada.get_with(&format!("/api/v1{path}"), &[]).await;
            assert_eq!(r.status, 401, "{path}");
        }
        // A cross-site form post carrying the cookie changes nothing.
        let r = ada
            .post_with(&format!("/api/v1/rooms/{code}/messages"), &[("body", "forged")], &[("origin", "https://evil.example")])
            .await;
        assert_eq!(r.status, 401, "{}", r.body);
        assert!(!ada.get(&format!("/rooms/{code}")).await.body.contains("forged"));
    }

    async fn token_names_are_checked_and_kept_when_refused(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let long = "x".repeat(61);
        for (typed, why) in [("", "Give the token a name"), ("   ", "Give the token a name"), (long.as_str(), "at most 60"), ("a\u{0}b", "control characters")] {
            let page = ada.post_form("/profile", "/profile/tokens", &[("name", typed)]).await;
            assert_eq!(page.status, 422, "{typed:?}");
            assert!(page.body.contains(why), "{typed:?}: {}", page.body);
            assert!(page.body.contains("aria-invalid=\"true\""));
            assert!(shown_token(&page.body).is_none());
        }
        let page = ada.post_form("/profile", "/profile/tokens", &[("name", "<b>x</b>")]).await;
        assert_eq!(page.status, 201);
        assert!(page.body.contains("&lt;b&gt;x&lt;/b&gt;") && !page.body.contains("<b>x</b>"), "{}", page.body);
    }

    async fn hostile_token_names_are_escaped_or_refused(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        for input in crate::common::hostile_inputs() {
            let page = ada.post_form("/profile", "/profile/tokens", &[("name", &input)]).await;
            assert!(!page.body.contains("<script>alert"), "{input:?}");
            match natter::domain::TokenName::parse(&input) {
                Ok(name) => {
                    assert_eq!(page.status, 201, "{input:?}");
                    assert!(shown_token(&page.body).is_some());
                    // Revoke it again (the newest is listed first) to stay under the cap.
                    let action = crate::common::extract_attr(&page.body, "action=\"/profile/tokens/").unwrap();
                    assert_eq!(ada.post_form("/profile", &format!("/profile/tokens/{action}"), &[]).await.status, 303, "{}", name.as_str());
                }
                Err(_) => assert_eq!(page.status, 422, "{input:?}"),
            }
        }
    }

    async fn one_person_holds_at_most_twenty_tokens(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        for i in 0..20 {
            create_token(&ada, &format!("token {i}")).await;
        }
        let page = ada.post_form("/profile", "/profile/tokens", &[("name", "one too many")]).await;
        assert_eq!(page.status, 422);
        assert!(page.body.contains("Revoke one"), "{}", page.body);
        assert!(page.body.contains("value=\"one too many\""));
    }

    async fn creating_or_revoking_a_token_needs_the_csrf_token(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        assert_eq!(ada.post("/profile/tokens", &[("name", "x")]).await.status, 403);
        create_token(&ada, "kept").await;
        let profile = ada.get("/profile").await;
        let action = crate::common::extract_attr(&profile.body, "action=\"/profile/tokens/").unwrap();
        assert_eq!(ada.post(&format!("/profile/tokens/{action}"), &[]).await.status, 403);
        assert!(ada.get("/profile").await.body.contains("kept"));
    }
}
