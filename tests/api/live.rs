//! A message posted through the API reaches the browsers in the room live, through the same
//! stream as a message typed on the page.

use std::time::Duration;

use serde_json::json;

use crate::api_user;
use crate::both;
use crate::common::assert_exactly;

both! {
    async fn a_message_posted_with_curl_appears_live_in_the_browser(app: TestApp) {
        let (ada_browser, ada) = api_user(&app, "ada@example.org", "ada").await;
        let bob_browser = app.signed_in("bob@example.org", "bob").await;
        let code = ada.create_room("Live").await;
        let joined = bob_browser.post_form("/home", "/rooms/join", &[("code", &code)]).await;
        assert_eq!(joined.status, 303);
        let mut bobs_tab = bob_browser.socket(&code, Some(0)).await.unwrap();
        let mut adas_tab = ada_browser.socket(&code, Some(0)).await.unwrap();
        let r = ada.post_message(&code, "Hello <b>from</b> curl").await;
        assert_eq!(r.status, 201, "{}", r.body);
        for tab in [&mut bobs_tab, &mut adas_tab] {
            assert!(tab.wait_for("Hello &lt;b&gt;from&lt;/b&gt; curl", Duration::from_secs(10)).await, "{:?}", tab.frames);
            assert_exactly(&tab.seqs(), 1, 1);
        }
        // Page posts and API posts share one sequence and one stream.
        let csrf = bob_browser.csrf_from(&format!("/rooms/{code}")).await;
        let web = bob_browser.post(&format!("/rooms/{code}/messages"), &[("body", "typed on the page"), ("csrf", &csrf)]).await;
        assert_eq!(web.status, 303);
        assert_eq!(ada.post_message(&code, "and the API again").await.json["seq"], 3);
        assert_exactly(&adas_tab.seqs_until(3, Duration::from_secs(10)).await, 1, 3);
        assert_exactly(&bobs_tab.seqs_until(3, Duration::from_secs(10)).await, 1, 3);
        // A retried post (same Idempotency-Key) is not delivered twice.
        let path = format!("/rooms/{code}/messages");
        for _ in 0..2 {
            let req = ada.request(reqwest::Method::POST, &path).header("idempotency-key", "once").json(&json!({ "body": "retried" }));
            assert_eq!(crate::Api::send(req).await.json["seq"], 4);
        }
        assert_eq!(ada.post_message(&code, "after the retry").await.json["seq"], 5);
        assert_exactly(&bobs_tab.seqs_until(5, Duration::from_secs(10)).await, 1, 5);
        bobs_tab.close().await;
        adas_tab.close().await;
    }
}
