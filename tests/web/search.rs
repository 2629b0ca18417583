//! Search (`/search`): only my rooms (and not once I left), kept current by posts, edits and
//! deletes, the syntax (prefixes, phrases, `from:`, `in:`), hostile text, highlighting that
//! escapes first, paging without gaps or repeats, the length limit and the rate limit.

use crate::both;
use crate::common::{Answer, Browser, hostile_inputs};

/// Searches for `q` as the header's box does (a GET form).
async fn search(who: &Browser, q: &str) -> Answer {
    who.get(&format!("/search?q={}", encode(q))).await
}

fn encode(q: &str) -> String {
    url::form_urlencoded::byte_serialize(q.as_bytes()).collect()
}

/// The (room code, seq) of each result on a search page, in the order shown.
fn found(page: &Answer) -> Vec<(String, i64)> {
    assert_eq!(page.status, 200, "{}", page.body);
    let mut hits = Vec::new();
    let mut rest = page.body.as_str();
    while let Some(i) = rest.find("class=\"search-hit\" href=\"/rooms/") {
        rest = &rest[i + "class=\"search-hit\" href=\"/rooms/".len()..];
        let (code, after) = rest.split_once("/messages/").expect("a permalink");
        let seq: String = after.chars().take_while(char::is_ascii_digit).collect();
        hits.push((code.to_string(), seq.parse().expect("a seq")));
    }
    hits
}

/// Only the seqs of `found`.
fn seqs(page: &Answer) -> Vec<i64> {
    found(page).into_iter().map(|(_, seq)| seq).collect()
}

/// The "Older results" link's address, if the page has one.
fn older_link(page: &Answer) -> Option<String> {
    let i = page.body.find("class=\"search-more\"")?;
    crate::common::extract_attr(&page.body[i..], "href=\"").map(|h| h.replace("&amp;", "&"))
}

both! {
    async fn a_search_finds_only_the_rooms_i_am_in_and_not_once_i_left(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let bob = app.signed_in("bob@example.org", "bob").await;
        let secret = app.create_room(&ada, "Secret").await;
        let seq = ada.say(&secret, "the pineapple plan is ready").await;
        let mine = app.create_room(&bob, "Bob's").await;
        bob.say(&mine, "nothing about fruit").await;

        assert_eq!(found(&search(&ada, "pineapple").await), vec![(secret.clone(), seq)]);
        assert!(seqs(&search(&bob, "pineapple").await).is_empty(), "not a member: nothing");
        assert!(seqs(&search(&bob, &format!("pineapple in:{secret}")).await).is_empty());
        assert!(seqs(&search(&bob, "from:ada").await).is_empty());

        bob.join(&secret).await;
        assert_eq!(found(&search(&bob, "pineapple").await), vec![(secret.clone(), seq)]);
        bob.leave(&secret).await;
        assert!(seqs(&search(&bob, "pineapple").await).is_empty(), "left: nothing");
        assert!(seqs(&search(&bob, &format!("in:{secret}")).await).is_empty());
    }

    async fn an_edit_changes_what_is_found_and_a_delete_removes_it(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Drafts").await;
        let seq = ada.say(&code, "alpha draft of the memo").await;
        let other = ada.say(&code, "unrelated words").await;
        assert_eq!(seqs(&search(&ada, "alpha").await), vec![seq]);

        let page = format!("/rooms/{code}");
        let r = ada
            .post_form(&page, &format!("/rooms/{code}/messages/{seq}/edit"), &[("body", "omega final memo")])
            .await;
        assert_eq!(r.status, 303, "{}", r.body);
        assert!(seqs(&search(&ada, "alpha").await).is_empty(), "the old words are gone");
        assert_eq!(seqs(&search(&ada, "omega").await), vec![seq]);
        let edited = search(&ada, "omega").await;
        assert!(edited.body.contains("(edited)"), "{}", edited.body);

        let r = ada
            .post_form(&page, &format!("/rooms/{code}/messages/{seq}/delete"), &[])
            .await;
        assert_eq!(r.status, 303, "{}", r.body);
        assert!(seqs(&search(&ada, "omega").await).is_empty(), "a deleted message is never found");
        assert!(seqs(&search(&ada, "memo").await).is_empty());
        assert_eq!(seqs(&search(&ada, "from:ada").await), vec![other], "nor by its author");
    }

    async fn prefixes_phrases_from_and_in_narrow_the_results(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let bob = app.signed_in("bob@example.org", "bob").await;
        let ops = app.create_room(&ada, "Ops").await;
        let dev = app.create_room(&ada, "Dev").await;
        bob.join(&ops).await;
        let went = ada.say(&ops, "The deployment went fine").await;
        let fix = ada.say(&dev, "deploy the fix now").await;
        let bobs = bob.say(&ops, "fine, DEPLOYMENT finished").await;
        let cafe = ada.say(&dev, "Meet at the café, re-deploying e-mail").await;

        let all = found(&search(&ada, "deplo").await);
        assert_eq!(
            all,
            vec![(dev.clone(), cafe), (ops.clone(), bobs), (dev.clone(), fix), (ops.clone(), went)],
            "newest first, prefixes match, case does not matter"
        );
        assert_eq!(seqs(&search(&ada, "\"deployment went\"").await), vec![went]);
        assert!(seqs(&search(&ada, "\"went deployment\"").await).is_empty(), "a phrase keeps its order");
        assert_eq!(seqs(&search(&ada, "deplo from:bob").await), vec![bobs]);
        assert_eq!(seqs(&search(&ada, "from:BOB").await), vec![bobs]);
        assert_eq!(seqs(&search(&ada, &format!("deplo in:{}", dev.to_lowercase())).await), vec![cafe, fix]);
        assert_eq!(seqs(&search(&ada, "fine deployment").await), vec![bobs, went], "every word");
        assert_eq!(seqs(&search(&ada, "e-mail").await), vec![cafe], "punctuation joins a phrase");
        assert!(seqs(&search(&ada, "from:nobody").await).is_empty());
        assert!(seqs(&search(&ada, "in:nope deplo").await).is_empty());
        // Short words match only themselves.
        assert_eq!(seqs(&search(&ada, "re").await), vec![cafe]);
        assert!(seqs(&search(&ada, "de").await).is_empty());
        // Accents: SQLite compares without them; PostgreSQL's 'simple' keeps them.
        assert_eq!(seqs(&search(&ada, "café").await), vec![cafe]);
    }

    async fn matches_are_highlighted_after_escaping(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Escapes").await;
        ada.say(&code, "<script>alert('deploy')</script> <b>deploy</b> now").await;
        let page = search(&ada, "deploy").await;
        assert_eq!(seqs(&page).len(), 1);
        assert!(
            page.body.contains("&lt;script&gt;alert('<mark>deploy</mark>')&lt;/script&gt; &lt;b&gt;<mark>deploy</mark>&lt;/b&gt; now"),
            "{}",
            page.body
        );
        assert!(!page.body.contains("<script>alert"), "never raw");
        assert!(!page.body.contains("<b>deploy"), "never raw");
    }

    #[settings(NATTER_LIMIT_SEARCHES = "10000/1m")]
    async fn hostile_text_never_fails_and_is_shown_escaped(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Hostile").await;
        let seq = ada.say(&code, "robert tables deploy").await;
        for input in hostile_inputs() {
            let page = search(&ada, &input).await;
            assert!(
                page.status == 200 || (page.status == 422 && input.chars().count() > 200),
                "{input:?}: {} {}",
                page.status,
                page.body
            );
            if input.contains('<') {
                assert!(!page.body.contains(input.as_str()), "{input:?} shown unescaped");
            }
            // And as a phrase, a filter, and after a word that is found.
            for q in [format!("\"{input}\""), format!("from:{input}"), format!("in:{input}"), format!("deploy {input}")] {
                let page = search(&ada, &q).await;
                assert!(page.status == 200 || page.status == 422, "{q:?}: {} {}", page.status, page.body);
            }
        }
        assert_eq!(seqs(&search(&ada, "robert'); DROP TABLE messages;--").await), Vec::<i64>::new());
        assert_eq!(seqs(&search(&ada, "robert tables").await), vec![seq], "still there");
        // FTS5 and tsquery syntax typed as text is text.
        for q in ["deploy OR robert", "NEAR(deploy robert)", "deploy*", "^deploy", "deploy:*", "deploy & !robert", "deploy <-> robert", "body:deploy", "(deploy", "\"deploy"] {
            let page = search(&ada, q).await;
            assert_eq!(page.status, 200, "{q}: {}", page.body);
        }
        assert_eq!(seqs(&search(&ada, "deploy*").await), vec![seq]);
        assert_eq!(seqs(&search(&ada, "(deploy").await), vec![seq]);
    }

    async fn results_page_newest_first_without_repeats_or_gaps(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let a = app.create_room(&ada, "A").await;
        let b = app.create_room(&ada, "B").await;
        // Posted together through the writer's batches: many share a millisecond, so the
        // cursor's tie-breakers (room, seq) are what keeps pages apart.
        app.fill(&a, "ada", 30, |i| natter::domain::MessageBody::parse(&format!("paging item {i}")).unwrap()).await;
        app.fill(&b, "ada", 25, |i| natter::domain::MessageBody::parse(&format!("paging other {i}")).unwrap()).await;
        let mut all = Vec::new();
        let mut page = search(&ada, "paging").await;
        let mut pages = 1;
        loop {
            let hits = found(&page);
            assert!(hits.len() <= 20);
            all.extend(hits);
            match older_link(&page) {
                Some(next) => {
                    assert!(next.starts_with("/search?q=paging&before="), "{next}");
                    page = ada.get(&next).await;
                    pages += 1;
                }
                None => break,
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(all.len(), 55, "{all:?}");
        let unique: std::collections::BTreeSet<_> = all.iter().cloned().collect();
        assert_eq!(unique.len(), 55, "no result twice");
        // Newest first: within a room, a later seq is never listed after an earlier one.
        for room in [&a, &b] {
            let in_room: Vec<i64> = all.iter().filter(|(c, _)| c == room).map(|(_, s)| *s).collect();
            assert!(in_room.windows(2).all(|w| w[0] > w[1]), "{in_room:?}");
        }
        let bad = ada.get("/search?q=paging&before=nonsense").await;
        assert_eq!(bad.status, 400, "{}", bad.body);
    }

    async fn an_empty_search_shows_the_form_and_a_long_one_is_refused_with_its_text(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Limits").await;
        ada.say(&code, "something").await;
        for q in ["", "   ", "!!! ---"] {
            let page = search(&ada, q).await;
            assert_eq!(page.status, 200);
            assert!(page.body.contains("id=\"search-q\""), "the form");
            assert!(seqs(&page).is_empty() && !page.body.contains("No messages found"), "{}", page.body);
        }
        let page = ada.get("/search").await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains("action=\"/search\""));

        let exactly = format!("something {}", "x".repeat(190));
        assert_eq!(exactly.chars().count(), 200);
        assert_eq!(search(&ada, &exactly).await.status, 200);
        let long = format!("something {}", "é".repeat(191));
        let page = search(&ada, &long).await;
        assert_eq!(page.status, 422, "{}", page.body);
        assert!(page.body.contains("at most 200 characters"), "{}", page.body);
        assert!(page.body.contains(&format!("value=\"{long}\"")), "the text is kept");
        assert!(page.body.contains("aria-invalid=\"true\""));

        let signed_out = app.browser().get("/search?q=something").await;
        assert_eq!(signed_out.status, 303);
    }

    #[settings(NATTER_LIMIT_SEARCHES = "3/1h")]
    async fn searching_too_often_is_refused_with_a_wait(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Limits").await;
        ada.say(&code, "something").await;
        // Nothing to search for costs nothing.
        for _ in 0..5 {
            assert_eq!(search(&ada, "").await.status, 200);
        }
        for _ in 0..3 {
            assert_eq!(seqs(&search(&ada, "something").await).len(), 1);
        }
        let page = search(&ada, "something else").await;
        assert_eq!(page.status, 429, "{}", page.body);
        assert!(page.header("retry-after").is_some());
        assert!(page.body.contains("You have searched a lot just now"), "{}", page.body);
        assert!(page.body.contains("value=\"something else\""), "the text is kept");
        // Another person has their own budget.
        let bob = app.signed_in("bob@example.org", "bob").await;
        assert_eq!(search(&bob, "something").await.status, 200);
    }

    async fn every_page_has_the_header_search_box(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Box").await;
        for path in ["/home".to_string(), format!("/rooms/{code}"), "/profile".into(), "/search".into()] {
            let page = ada.get(&path).await;
            assert!(
                page.body.contains("<form class=\"header-search\" role=\"search\" method=\"get\" action=\"/search\""),
                "{path}: {}",
                page.body
            );
        }
        assert!(!app.browser().get("/").await.body.contains("header-search"), "not for guests");
    }
}
