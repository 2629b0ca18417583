//! Scenario 2: the whole journey with JavaScript switched off in Chrome's settings: full-page
//! posts and redirects only.

use crate::chrome::{Chrome, Js};
use crate::*;

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

        // Load older: a page of its own. (Scrolled to first, as a reader would: WebDriver's own
        // scrolling does not reach into the bottom-anchored message column.)
        bob.js(
            "document.querySelector('#load-older').scrollIntoView()",
            vec![],
        )
        .await;
        bob.click("#load-older").await;
        bob.wait_for_path(&format!("/rooms/{code}/messages")).await;
        let older = bob.message_texts().await;
        assert!(older.contains(&"older 1".to_string()), "{older:?}");
        bob.screenshots("history-no-js").await;

        bob.goto(&format!("/rooms/{code}")).await;
        send(&bob, "bob here, also without javascript").await;
        wait_for_message(&bob, "bob here, also without javascript").await;
        assert_eq!(
            bob.message_texts().await.last().unwrap(),
            "bob here, also without javascript"
        );

        // A refused post keeps the text and says why, without JavaScript too.
        bob.type_into("#composer-body", "   ").await;
        bob.click("#composer button[type=submit]").await;
        bob.find("#composer-error").await;

        // Ada reads it by loading the room again.
        ada.goto(&format!("/rooms/{code}")).await;
        assert_eq!(
            ada.message_texts().await.last().unwrap(),
            "bob here, also without javascript"
        );
        // Without a live socket nobody is online, and the summary's dot says so too.
        assert!(ada.text("#member-summary").await.starts_with("0 online"));
        assert_eq!(
            ada.js(
                "getComputedStyle(document.querySelector('.members-details > summary'), '::before').backgroundColor",
                vec![]
            )
            .await,
            serde_json::json!("rgba(0, 0, 0, 0)"),
            "a green dot beside \"0 online\""
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
