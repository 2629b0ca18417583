//! Scenario 2: the whole journey with JavaScript switched off in Chrome's settings: full-page
//! posts and redirects only.

use crate::chrome::{Chrome, Js};
use crate::*;

/// Marks the page and its streamed conversation's document (WebDriver runs scripts with
/// JavaScript off too); `STILL_MARKED` says whether both marks are still there.
const MARK_PAGE_AND_STREAM: &str = "(window.natterMark = 1,
    document.querySelector('iframe.live-frame').contentWindow.natterMark = 1, true)";
const STILL_MARKED: &str = "[window.natterMark === 1,
    document.querySelector('iframe.live-frame').contentWindow.natterMark === 1]";

crate::both! {
    #[settings(NATTER_LIMIT_POSTS = "100000/1s")]
    async fn the_whole_journey_works_with_javascript_off(app: TestApp) {
        let Some((ada, bob)) = Chrome::pair(&app.base, Js::Off).await else {
            return;
        };
        sign_up_with_provider(&ada, &app, "ada@example.org", "ada").await;
        let code = create_room(&ada, "Quiet room").await;

        // Sixty older messages from someone else, so there is history to page back through.
        let cy = app.signed_in("cyd@example.org", "cyd").await;
        cy.join(&code).await;
        for i in 1..=60 {
            cy.say(&code, &format!("older {i}")).await;
        }

        send(&ada, "hello without javascript").await;
        wait_for_message(&ada, "hello without javascript").await;
        // JavaScript really is off: js/copy.js would have added the copy button.
        assert!(!ada.exists("button[data-copy]").await);

        // Bob joins with the code from the home page form.
        sign_up_with_provider(&bob, &app, "bob@example.org", "bob").await;
        bob.type_into("#join-code", &code.to_lowercase()).await;
        bob.click("form[action='/rooms/join'] button[type=submit]")
            .await;
        bob.wait_for_path(&format!("/rooms/{code}")).await;
        let texts = bob.message_texts().await;
        assert_eq!(texts.len(), 50, "one page of history");
        assert_eq!(texts.last().unwrap(), "hello without javascript");
        assert!(!texts.contains(&"older 1".to_string()));

        // Load older, at the top of the streamed conversation: a page of its own, in the whole
        // tab (links in the frame open there). Clicked by script: WebDriver cannot enter a
        // frame whose document is still loading, and the stream's always is.
        bob.js(
            "document.querySelector('iframe.live-frame').contentDocument.querySelector('#load-older').click()",
            vec![],
        )
        .await;
        bob.wait_for_path(&format!("/rooms/{code}/messages")).await;
        let older = bob.message_texts().await;
        assert!(older.contains(&"older 1".to_string()), "{older:?}");
        bob.screenshots("history-no-js").await;

        bob.goto(&format!("/rooms/{code}")).await;
        // Ada's page and her streamed conversation stay as they are from here on: marked, so a
        // reload of either would show.
        ada.js(MARK_PAGE_AND_STREAM, vec![]).await;
        send(&bob, "bob here, also without javascript").await;
        wait_for_message(&bob, "bob here, also without javascript").await;
        assert_eq!(
            bob.message_texts().await.last().unwrap(),
            "bob here, also without javascript"
        );

        // A refused post keeps the text and says why, in the composer frame, and the
        // conversation beside it goes on.
        in_composer_frame(&bob, |bob| async move {
            bob.type_into("#composer-body", "   ").await;
            bob.click("form.composer button[type=submit]").await;
            bob.find("#composer-error").await;
            assert_eq!(bob.js(COMPOSER_TEXT, vec![]).await, serde_json::json!("   "));
        })
        .await;

        // Ada sees it arrive without reloading anything.
        wait_for_message(&ada, "bob here, also without javascript").await;
        assert_eq!(
            ada.js(STILL_MARKED, vec![]).await,
            serde_json::json!([true, true]),
            "the page or its stream reloaded"
        );
        assert_eq!(
            ada.message_texts().await.last().unwrap(),
            "bob here, also without javascript"
        );
        ada.screenshots("room-no-js").await;

        // Sign out: back on the landing page, and signed-in pages send her there.
        ada.click("form[action='/auth/logout'] button[type=submit]")
            .await;
        ada.wait_until_path_is("/").await;
        ada.goto("/profile").await;
        ada.wait_until_path_is("/?next=%2Fprofile").await;
        assert!(ada.exists("a[href^='/auth/login']").await);
        // No CSP report and no error anywhere on the way (besides the refused post's 422, which
        // Chromium reports as a failed load).
        ada.assert_console_clean("the journey without JavaScript")
            .await;
        bob.assert_console_clean_but_statuses("the journey without JavaScript", &[422])
            .await;
        ada.quit().await;
        bob.quit().await;
    }
}
