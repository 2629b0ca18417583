//! Rooms over plain HTTP: create, join by code or invitation, the room page, history, posting
//! (with and without htmx), limits, leaving.

use crate::both;
use crate::common::{TestApp, hostile_inputs, seqs_in};

/// Posts a message without JS (form post); returns the answer.
async fn post(b: &crate::common::Browser, code: &str, body: &str) -> crate::common::Answer {
    b.post_form(
        &format!("/rooms/{code}"),
        &format!("/rooms/{code}/messages"),
        &[("body", body), ("client_id", &random_id())],
    )
    .await
}

fn random_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The ways to ask a room route about a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    Page,
    Older,
    Post,
    HtmxPost,
    Leave,
    Socket,
}

impl Probe {
    const ALL: [Probe; 6] = [
        Probe::Page,
        Probe::Older,
        Probe::Post,
        Probe::HtmxPost,
        Probe::Leave,
        Probe::Socket,
    ];

    /// Asks as `who`; the status (101 for an opened socket) and `Retry-After`.
    async fn send(
        self,
        app: &TestApp,
        who: &crate::common::Browser,
        code: &str,
        csrf: &str,
    ) -> (u16, Option<String>) {
        let id = random_id();
        let post = [
            ("body", "hello?"),
            ("client_id", id.as_str()),
            ("csrf", csrf),
        ];
        let answer = match self {
            Probe::Page => who.get(&format!("/rooms/{code}")).await,
            Probe::Older => who.get(&format!("/rooms/{code}/messages?before=5")).await,
            Probe::Post => who.post(&format!("/rooms/{code}/messages"), &post).await,
            Probe::HtmxPost => {
                let headers = [("origin", app.base.as_str()), ("hx-request", "true")];
                who.post_with(&format!("/rooms/{code}/messages"), &post, &headers)
                    .await
            }
            Probe::Leave => {
                who.post(&format!("/rooms/{code}/leave"), &[("csrf", csrf)])
                    .await
            }
            Probe::Socket => {
                return match who.socket(code, None).await {
                    Ok(socket) => {
                        socket.close().await;
                        (101, None)
                    }
                    Err(crate::common::SocketRefused(status)) => (status, None),
                };
            }
        };
        (
            answer.status,
            answer.header("retry-after").map(str::to_string),
        )
    }
}

both! {
    async fn the_room_page_shows_what_another_instance_posted_since_it_was_last_read(app: TestApp) {
        // The newest page is kept in memory between views; a post through another instance
        // (which this one's cache never hears of) must still show on the next view.
        let other = TestApp::start_on(app.db.clone(), None, &[]).await;
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Cached").await;
        let bob = other.signed_in("bob@example.org", "bob").await;
        bob.join(&code).await;
        for round in 1..=3 {
            let before = ada.get(&format!("/rooms/{code}")).await;
            assert_eq!(seqs_in(&before.body).len(), round - 1);
            bob.say(&code, &format!("from the other instance {round}")).await;
            let after = ada.get(&format!("/rooms/{code}")).await;
            assert_eq!(seqs_in(&after.body), (1..=round as i64).collect::<Vec<_>>(), "round {round}");
            assert!(after.body.contains(&format!("from the other instance {round}")));
        }
    }

    async fn the_room_page_lists_members_by_name_and_my_rooms_newest_first(app: TestApp) {
        // Members and the rail arrive in one statement (as JSON inside SQL): names with quotes,
        // markup and emoji must come out whole, escaped once, in order.
        let ada = app.signed_in("ada@example.org", "ada").await;
        let first = app.create_room(&ada, "First \"quoted\" & <b>bold</b>").await;
        let second = app.create_room(&ada, "Zweite 🎉 \\ backslash").await;
        let cyd = app.signed_in("cyd@example.org", "cyd").await;
        cyd.join(&first).await;
        let bob = app.signed_in("bob@example.org", "Bob").await;
        bob.join(&first).await;
        assert_eq!(post(&ada, &first, "makes First the most recent").await.status, 303);

        let page = ada.get(&format!("/rooms/{second}")).await;
        assert_eq!(page.status, 200);
        let rail = &page.body[page.body.find("aria-label=\"Your rooms\"").unwrap()..];
        let at = |needle: &str| rail.find(needle).unwrap_or_else(|| panic!("{needle} not in the rail"));
        assert!(at(&format!("/rooms/{first}")) < at(&format!("/rooms/{second}")), "most recently active first");
        assert!(rail.contains("First &quot;quoted&quot; &amp; &lt;b&gt;bold&lt;/b&gt;"), "{rail}");
        assert!(rail.contains("Zweite 🎉 \\ backslash"));
        // Only my rooms: cyd's own room is not in ada's rail.
        let cyds = app.create_room(&cyd, "Cyd's own").await;
        assert!(!ada.get(&format!("/rooms/{second}")).await.body.contains(&cyds));

        let page = ada.get(&format!("/rooms/{first}")).await;
        let list = &page.body[page.body.find("id=\"members\"").unwrap()..];
        let names: Vec<&str> = ["ada", "Bob", "cyd"].into_iter().filter(|n| list.contains(&format!(">{n}<"))).collect();
        assert_eq!(names, ["ada", "Bob", "cyd"], "every member listed");
        let (a, b, c) = (list.find(">ada<").unwrap(), list.find(">Bob<").unwrap(), list.find(">cyd<").unwrap());
        assert!(a < b && b < c, "by name, ignoring case");
        assert!(page.body.contains("3 members"));
        // A member of only one room sees just that one in the rail.
        let bobs = bob.get(&format!("/rooms/{first}")).await;
        let rail = &bobs.body[bobs.body.find("aria-label=\"Your rooms\"").unwrap()..];
        assert!(rail.contains(&first) && !rail.contains(&second));
    }

    async fn creating_a_room_lands_in_it_with_a_short_unique_code(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let r = ada.post_form("/home", "/rooms", &[("name", "Book club")]).await;
        assert_eq!(r.status, 303);
        let code = r.location().trim_start_matches("/rooms/").to_string();
        assert_eq!(code.len(), 9);
        assert_eq!(&code[4..5], "-");
        let page = ada.get(&r.location()).await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains("Book club"));
        assert!(page.body.contains(&code));
        assert!(page.body.contains(&format!("/join/{code}")), "invitation link shown");
        assert!(page.body.contains("id=\"member-"), "member list");
        assert!(page.body.contains("1 online · 1 member") || page.body.contains("0 online · 1 member"), "{}", page.body);
        let home = ada.get("/home").await;
        assert!(home.body.contains("Book club") && home.body.contains(&code), "listed in my rooms");
        // Without a name the room is shown by its code.
        let unnamed = app.create_room(&ada, "   ").await;
        assert!(ada.get(&format!("/rooms/{unnamed}")).await.body.contains(&format!("<h1><bdi>{unnamed}</bdi></h1>")));
    }

    async fn room_names_with_text_direction_controls_are_refused_with_the_reason(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        // U+202E would show "Invoice\u{202E}fdp.exe" as "Invoiceexe.pdf", and reverse " · natter"
        // after the name in the page title and whatever follows it in the rail.
        for name in ["Invoice\u{202e}fdp.exe", "\u{202e}", "a\u{202a}b", "\u{2067}x\u{2069}", "x\u{2068}", "x\u{200f}"] {
            let r = ada.post_form("/home", "/rooms", &[("name", name)]).await;
            assert_eq!(r.status, 422, "{name:?}");
            assert!(r.body.contains("cannot contain text direction controls"), "{name:?}: {}", r.body);
            assert!(r.body.contains(&format!("value=\"{name}\"")), "{name:?}: what was typed is kept");
        }
        assert!(!ada.get("/home").await.body.contains("room-row-name"), "no room was made");
        // Right-to-left names are welcome.
        let hebrew = "מועדון ספר 2";
        let code = app.create_room(&ada, hebrew).await;
        assert!(ada.get(&format!("/rooms/{code}")).await.body.contains(&format!("<bdi>{hebrew}</bdi>")));
    }

    #[settings(NATTER_LIMIT_ROOMS = "1000/1h")]
    async fn room_codes_stay_unique_under_many_creations(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let csrf = ada.csrf_from("/home").await;
        let answers = futures_util::future::join_all((0..200).map(|i| {
            let name = format!("room {i}");
            let csrf = csrf.clone();
            let ada = &ada;
            async move { ada.post("/rooms", &[("name", name.as_str()), ("csrf", csrf.as_str())]).await }
        }))
        .await;
        let codes: std::collections::HashSet<String> = answers.iter().map(|a| { assert_eq!(a.status, 303); a.location() }).collect();
        assert_eq!(codes.len(), 200);
    }

    async fn joining_by_code_forgives_case_spaces_and_dashes(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Lobby").await;
        let bob = app.signed_in("bob@example.org", "bob").await;
        let typed = format!(" {} {} ", code[..4].to_lowercase(), code[5..].to_lowercase());
        let r = bob.post_form("/home", "/rooms/join", &[("code", &typed)]).await;
        assert_eq!((r.status, r.location()), (303, format!("/rooms/{code}")));
        let page = bob.get(&format!("/rooms/{code}")).await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains(">ada<") && page.body.contains(">bob<"), "both members listed");
        // Joining again is harmless.
        assert_eq!(bob.post_form("/home", "/rooms/join", &[("code", &code)]).await.status, 303);
    }

    // 10 per hour: the budget cannot refill while the test runs.
    #[settings(NATTER_LIMIT_JOIN_FAILS = "10/1h")]
    async fn a_wrong_code_re_renders_home_and_guessing_is_limited(app: TestApp) {
        let bob = app.signed_in("bob@example.org", "bob").await;
        for typed in ["ZZZZ-ZZZZ", "nonsense", "<script>alert(1)</script>"] {
            let r = bob.post_form("/home", "/rooms/join", &[("code", typed)]).await;
            assert_eq!(r.status, 422, "{typed}");
            assert!(r.body.contains("no room with that code"), "{}", r.body);
            assert!(!r.body.contains("<script>alert"), "typed text is escaped");
        }
        for _ in 0..7 {
            assert_eq!(bob.post_form("/home", "/rooms/join", &[("code", "ZZZZ-ZZZY")]).await.status, 422);
        }
        let limited = bob.post_form("/home", "/rooms/join", &[("code", "ZZZZ-ZZZX")]).await;
        assert_eq!(limited.status, 429);
        assert!(limited.header("retry-after").is_some());
        assert!(limited.body.contains("Too many wrong codes") && limited.body.contains("ZZZZ-ZZZX"), "typed code kept");
        // While limited even a right code is refused: codes cannot be probed.
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Real").await;
        assert_eq!(bob.post_form("/home", "/rooms/join", &[("code", &code)]).await.status, 429);
        assert_eq!(bob.get(&format!("/join/{code}")).await.status, 429);
    }

    #[settings(NATTER_LIMIT_JOIN_FAILS = "10/1h")]
    async fn guesses_sent_all_at_once_are_limited_like_guesses_in_a_row(app: TestApp) {
        let bob = app.signed_in("bob@example.org", "bob").await;
        let csrf = bob.csrf_from("/home").await;
        let guesses: Vec<String> = (0..40).map(|i| format!("ZZZZ-ZZ{:02}", i % 30 + 10)).collect();
        let answers = futures_util::future::join_all(guesses.iter().map(|code| async {
            bob.post("/rooms/join", &[("code", code.as_str()), ("csrf", csrf.as_str())]).await
        }))
        .await;
        let evaluated = answers.iter().filter(|r| r.status == 422).count();
        let limited = answers.iter().filter(|r| r.status == 429).count();
        assert_eq!((evaluated, limited), (10, 30), "{:?}", answers.iter().map(|r| r.status).collect::<Vec<_>>());
        // A right code is neither charged nor let through while the budget is spent.
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Real").await;
        assert_eq!(bob.post_form("/home", "/rooms/join", &[("code", &code)]).await.status, 429);
    }

    #[settings(NATTER_LIMIT_JOIN_FAILS = "2/1h")]
    async fn a_right_code_costs_no_guess(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let bob = app.signed_in("bob@example.org", "bob").await;
        let code = app.create_room(&ada, "Open").await;
        for _ in 0..5 {
            assert_eq!(bob.post_form("/home", "/rooms/join", &[("code", &code)]).await.status, 303);
        }
        assert_eq!(bob.post_form("/home", "/rooms/join", &[("code", "ZZZZ-ZZZZ")]).await.status, 422);
        assert_eq!(bob.post_form("/home", "/rooms/join", &[("code", "ZZZZ-ZZZY")]).await.status, 422);
        assert_eq!(bob.post_form("/home", "/rooms/join", &[("code", "ZZZZ-ZZZX")]).await.status, 429);
    }

    async fn an_invitation_link_brings_a_signed_out_friend_through_sign_in_and_back(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Picnic").await;
        let friend = app.browser();
        let invite = friend.get(&format!("/join/{code}")).await;
        assert_eq!(invite.status, 200);
        assert!(invite.body.contains("Sign in to join"));
        assert!(!invite.body.contains("Picnic"), "the name is for signed-in people");
        let next = format!("/join/{code}");
        let signed = friend.post_form(&format!("/?next=%2Fjoin%2F{code}"), "/auth/dev", &[("email", "friend@example.org"), ("next", &next)]).await;
        assert_eq!(signed.location(), format!("/username?next=%2Fjoin%2F{code}"));
        let chosen = friend.post_form("/username", "/username", &[("username", "friend"), ("next", &next)]).await;
        assert_eq!(chosen.location(), next);
        let page = friend.get(&next).await;
        assert!(page.body.contains("Join <bdi>Picnic</bdi>?"), "{}", page.body);
        assert_eq!(friend.get(&format!("/rooms/{code}")).await.status, 404, "not a member until they join");
        let joined = friend.post_form(&next, "/rooms/join", &[("code", &code)]).await;
        assert_eq!(joined.location(), format!("/rooms/{code}"));
        // Members following the link go straight in.
        assert_eq!(friend.get(&next).await.location(), format!("/rooms/{code}"));
        assert_eq!(ada.get(&next).await.location(), format!("/rooms/{code}"));
        // A link with an unknown code is a 404 page.
        assert_eq!(friend.get("/join/ZZZZ-ZZZZ").await.status, 404);
    }

    // 20 posts per hour: the budget cannot refill while the test runs. (Each 404 is a wrong
    // guess, allowed here by the hundred: guessing has its own tests below.)
    #[settings(NATTER_LIMIT_POSTS = "20/1h", NATTER_LIMIT_JOIN_FAILS = "1000/1h")]
    async fn non_members_get_not_found_for_everything_in_a_room(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Private").await;
        post(&ada, &code, "secret plans").await;
        let eve = app.signed_in("eve@example.org", "eve").await;
        assert_eq!(eve.get(&format!("/rooms/{code}")).await.status, 404);
        assert_eq!(eve.get(&format!("/rooms/{code}/messages?before=100")).await.status, 404);
        let csrf = eve.csrf_from("/home").await;
        let path = format!("/rooms/{code}/messages");
        // Past the post budget too: a refused post costs nothing, and whatever would be wrong
        // with it (empty, too long, too fast) tells eve nothing either: the room is not there.
        let long = "a".repeat(4001);
        for i in 0..30 {
            let id = format!("eve-{i}");
            for body in ["hi", "", "   ", long.as_str()] {
                let r = eve.post(&path, &[("body", body), ("client_id", &id), ("csrf", &csrf)]).await;
                assert_eq!(r.status, 404, "{i}: {:?}", body.get(..10));
                let origin = app.base.clone();
                let r = eve.post_with(&path, &[("body", body)], &[("origin", &origin), ("hx-request", "true"), ("x-csrf-token", &csrf)]).await;
                assert_eq!(r.status, 404, "htmx {i}: {:?}", body.get(..10));
            }
        }
        assert_eq!(eve.post(&format!("/rooms/{code}/leave"), &[("csrf", &csrf)]).await.status, 404);
        assert!(!ada.get(&format!("/rooms/{code}")).await.body.contains("eve"), "nothing was posted by eve");
        let own = app.create_room(&eve, "Eve's").await;
        assert_eq!(post(&eve, &own, "my budget is whole").await.status, 303, "the refused posts spent nothing");
    }

    // 10 per hour: the budget cannot refill while the test runs.
    #[settings(NATTER_LIMIT_JOIN_FAILS = "10/1h")]
    async fn probing_codes_through_room_routes_costs_wrong_guesses_until_refused(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let foreign = app.create_room(&ada, "Private").await;
        let eve = app.signed_in("eve@example.org", "eve").await;
        let csrf = eve.csrf_from("/home").await;
        // Every room route, for someone else's room and for no room at all: the first ten
        // answers are "not found" (ten wrong guesses), every later one is "too many".
        let mut answers = Vec::new();
        for _ in 0..2 {
            for code in [foreign.as_str(), "ZZZZ-ZZZZ"] {
                for way in Probe::ALL {
                    answers.push((way, code, way.send(&app, &eve, code, &csrf).await));
                }
            }
        }
        for (i, (way, code, (status, retry_after))) in answers.iter().enumerate() {
            let expected = if i < 10 { 404 } else { 429 };
            assert_eq!(*status, expected, "probe {i}: {way:?} {code}");
            if expected == 429 && *way != Probe::Socket {
                assert!(retry_after.is_some(), "probe {i}: {way:?} {code} without Retry-After");
            }
        }
        // One budget: joining by code is refused too, even with the right code.
        assert_eq!(eve.post_form("/home", "/rooms/join", &[("code", &foreign)]).await.status, 429);
        // Members are never charged: ada's room works however much she uses it, and her own
        // budget of wrong codes is whole.
        let ada_csrf = ada.csrf_from(&format!("/rooms/{foreign}")).await;
        for way in Probe::ALL.into_iter().filter(|w| *w != Probe::Leave) {
            for _ in 0..6 {
                let (status, _) = way.send(&app, &ada, &foreign, &ada_csrf).await;
                assert!(matches!(status, 101 | 200 | 303), "{way:?}: {status}");
            }
        }
        for _ in 0..10 {
            assert_eq!(ada.post_form("/home", "/rooms/join", &[("code", "ZZZZ-ZZZY")]).await.status, 422);
        }
    }

    #[settings(NATTER_LIMIT_JOIN_FAILS = "4/1h")]
    async fn a_wrong_join_and_a_room_probe_spend_one_budget(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let foreign = app.create_room(&ada, "Private").await;
        let eve = app.signed_in("eve@example.org", "eve").await;
        let csrf = eve.csrf_from("/home").await;
        assert_eq!(eve.post_form("/home", "/rooms/join", &[("code", "ZZZZ-ZZZZ")]).await.status, 422);
        assert_eq!(Probe::Page.send(&app, &eve, "ZZZZ-ZZZY", &csrf).await.0, 404);
        assert_eq!(eve.post_form("/home", "/rooms/join", &[("code", "ZZZZ-ZZZX")]).await.status, 422);
        assert_eq!(Probe::Post.send(&app, &eve, &foreign, &csrf).await.0, 404);
        let join = eve.post_form("/home", "/rooms/join", &[("code", "ZZZZ-ZZZW")]).await;
        assert_eq!(join.status, 429);
        assert!(join.header("retry-after").is_some());
        assert_eq!(Probe::Page.send(&app, &eve, &foreign, &csrf).await.0, 429);
    }

    // (Each 404 is a wrong guess, allowed here by the hundred: guessing has its own tests.)
    #[settings(NATTER_LIMIT_JOIN_FAILS = "1000/1h")]
    async fn other_spellings_of_a_room_url_redirect_to_the_canonical_one(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Canon").await;
        let lower = code.to_lowercase().replace('-', "");
        let r = ada.get(&format!("/rooms/{lower}")).await;
        assert_eq!((r.status, r.location()), (308, format!("/rooms/{code}")));
        // Spellings that arrive percent-encoded (a space, a line break, an en dash) redirect
        // to the canonical URL too, never to themselves.
        let (a, b) = code.split_once('-').unwrap();
        for spelling in [format!("{a}%20{b}"), format!("{a}%0A{b}"), format!("{a}%E2%80%93{b}"), format!("%20{a}{b}%20")] {
            for (suffix, query) in [("", ""), ("/messages", "?before=3")] {
                let r = ada.get(&format!("/rooms/{spelling}{suffix}{query}")).await;
                assert_eq!((r.status, r.location()), (308, format!("/rooms/{code}{suffix}{query}")), "{spelling}{suffix}");
                assert_eq!(ada.get(&r.location()).await.status, 200, "{spelling}{suffix}");
            }
        }
        assert_eq!(ada.get("/rooms/not-a-valid-code").await.status, 404);
        for input in hostile_inputs() {
            let encoded: String = url::form_urlencoded::byte_serialize(input.as_bytes()).collect();
            for suffix in ["", "/messages", "/ws"] {
                let r = ada.get(&format!("/rooms/{encoded}{suffix}")).await;
                // (The socket route checks the Origin first: a plain GET has none.)
                assert!(matches!(r.status, 403 | 404), "{input:?}{suffix}: {}", r.status);
            }
        }
    }

    async fn posting_without_javascript_redirects_to_the_new_message(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Plain").await;
        let r = post(&ada, &code, "first line\r\nsecond line").await;
        assert_eq!((r.status, r.location()), (303, format!("/rooms/{code}#msg-1")));
        let page = ada.get(&format!("/rooms/{code}")).await;
        assert!(page.body.contains("id=\"msg-1\""));
        assert!(page.body.contains("first line\nsecond line"), "line breaks kept");
        assert!(page.body.contains("<time datetime=\""), "machine-readable time");
        assert!(page.body.contains("ws-connect=\"/rooms/") && page.body.contains("/ws?after=1\""), "live socket resumes after the last message shown");
    }

    async fn posting_with_htmx_answers_a_fresh_composer(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Htmx").await;
        let page = ada.get(&format!("/rooms/{code}")).await;
        let csrf = page.csrf().unwrap();
        let client_id = crate::common::extract_attr(&page.body, "name=\"client_id\" value=\"").unwrap();
        let origin = app.base.clone();
        let r = ada.post_with(&format!("/rooms/{code}/messages"), &[("body", "via htmx"), ("client_id", &client_id)],
            &[("origin", &origin), ("hx-request", "true"), ("x-csrf-token", &csrf)]).await;
        assert_eq!(r.status, 200);
        // Only a fresh client_id, out of band: the form (focus, text typed meanwhile) stays.
        assert_eq!(r.header("hx-reswap"), Some("none"));
        assert!(r.body.starts_with("<div id=\"composer-state\" hx-swap-oob=\"true\"><input type=\"hidden\" name=\"client_id\""), "{}", r.body);
        assert!(!r.body.contains("via htmx"), "the message itself comes over the socket, not in the answer");
        let fresh = crate::common::extract_attr(&r.body, "name=\"client_id\" value=\"").unwrap();
        assert!(fresh.len() >= 16 && fresh != client_id, "a fresh client_id");
        // The same client_id again (double click) posts nothing new.
        let again = ada.post_with(&format!("/rooms/{code}/messages"), &[("body", "via htmx"), ("client_id", &client_id)],
            &[("origin", &origin), ("hx-request", "true"), ("x-csrf-token", &csrf)]).await;
        assert_eq!(again.status, 200);
        let page = ada.get(&format!("/rooms/{code}")).await;
        assert_eq!(seqs_in(&page.body), vec![1]);
    }

    async fn a_resubmitted_form_posts_once(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Twice").await;
        let csrf = ada.csrf_from(&format!("/rooms/{code}")).await;
        let fields = [("body", "only once"), ("client_id", "resubmit-1"), ("csrf", csrf.as_str())];
        let path = format!("/rooms/{code}/messages");
        let (a, b) = tokio::join!(ada.post(&path, &fields), ada.post(&path, &fields));
        assert_eq!((a.status, b.status), (303, 303));
        assert_eq!(a.location(), b.location(), "the second answers as if it had succeeded");
        let page = ada.get(&format!("/rooms/{code}")).await;
        assert_eq!(page.body.matches("only once").count(), 1);
    }

    async fn bad_messages_are_refused_with_the_reason_and_the_text_kept(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Strict").await;
        for (body, reason) in [
            ("", "empty"),
            ("   \n\t ", "empty"),
            ("nul\u{0}byte", "control characters"),
            ("bell\u{7}", "control characters"),
        ] {
            let r = post(&ada, &code, body).await;
            assert_eq!(r.status, 422, "{body:?}");
            assert!(r.body.contains(reason), "{body:?}: {}", r.body);
            assert!(r.body.contains("id=\"composer-error\""));
        }
        let long = "é".repeat(4001);
        let r = post(&ada, &code, &long).await;
        assert_eq!(r.status, 422);
        assert!(r.body.contains("at most 4000") && r.body.contains(&long), "typed text kept");
        assert_eq!(post(&ada, &code, &"é".repeat(4000)).await.status, 303);
        // A body over 64 KiB is refused before it is read.
        let huge = "x".repeat(65 * 1024);
        assert_eq!(post(&ada, &code, &huge).await.status, 413);
    }

    // 20 per hour: the budget cannot refill while the test runs, however slow the machine.
    #[settings(NATTER_LIMIT_POSTS = "20/1h")]
    async fn posting_too_fast_is_refused_with_the_text_kept(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Fast").await;
        let csrf = ada.csrf_from(&format!("/rooms/{code}")).await;
        let path = format!("/rooms/{code}/messages");
        for i in 0..20 {
            let body = format!("message {i}");
            let id = format!("fast-{i}");
            assert_eq!(ada.post(&path, &[("body", &body), ("client_id", &id), ("csrf", &csrf)]).await.status, 303, "{i}");
        }
        let r = ada.post(&path, &[("body", "one too many"), ("client_id", "fast-x"), ("csrf", &csrf)]).await;
        assert_eq!(r.status, 429);
        assert!(r.header("retry-after").is_some());
        assert!(r.body.contains("very fast") && r.body.contains("one too many"), "{}", r.body);
        let origin = app.base.clone();
        let htmx = ada.post_with(&path, &[("body", "htmx too"), ("client_id", "fast-y")], &[("origin", &origin), ("hx-request", "true"), ("x-csrf-token", &csrf)]).await;
        assert_eq!(htmx.status, 429);
        assert!(htmx.body.starts_with("<form class=\"composer\" id=\"composer\"") && htmx.body.contains("htmx too"));
        // A form sent again after it went through still answers as it did, over the limit.
        let again = ada.post(&path, &[("body", "message 7"), ("client_id", "fast-7"), ("csrf", &csrf)]).await;
        assert_eq!((again.status, again.location()), (303, format!("/rooms/{code}#msg-8")));
        // Refused posts spend nothing: an empty one is 422 however fast, not 429.
        assert_eq!(ada.post(&path, &[("body", " "), ("client_id", "fast-z"), ("csrf", &csrf)]).await.status, 422);
    }

    #[settings(NATTER_LIMIT_POSTS = "1000/1s", NATTER_LIMIT_ROOMS = "1000/1h", NATTER_LIMIT_JOIN_FAILS = "1000/1s")]
    async fn every_hostile_input_is_shown_as_text_or_refused(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Hostile").await;
        for input in hostile_inputs() {
            let r = post(&ada, &code, &input).await;
            assert!(r.status == 303 || r.status == 422, "message {input:?}: {}", r.status);
            let r = ada.post_form("/home", "/rooms", &[("name", &input)]).await;
            assert!(r.status == 303 || r.status == 422, "room name {input:?}: {}", r.status);
            let r = ada.post_form("/home", "/rooms/join", &[("code", &input)]).await;
            assert_eq!(r.status, 422, "room code {input:?}");
            let q = url::form_urlencoded::byte_serialize(input.as_bytes()).collect::<String>();
            let r = ada.get(&format!("/rooms/{code}/messages?before={q}")).await;
            assert!(r.status == 400 || r.status == 200, "before={input:?}: {}", r.status);
        }
        let page = ada.get(&format!("/rooms/{code}")).await;
        // natter's own frames for pages without JavaScript are the one `<noscript>`: what
        // people typed is looked for everywhere else.
        let (before, rest) = page.body.split_once("<noscript>").expect("the frames");
        let (own, after) = rest.split_once("</noscript>").expect("closed");
        assert_eq!(own.matches("<iframe").count(), 2, "{own}");
        let page = crate::common::Answer { body: format!("{before}{after}"), ..page };
        for needle in ["<script>alert", "<img src=x", "<svg onload", "<iframe", "<style>body", "<meta http-equiv", "<a href=\"javascript", "<div hx-swap-oob", "hx-get=\"/auth/logout\""] {
            assert!(!page.body.contains(needle), "{needle} rendered as markup");
        }
        assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "shown as text");
        let home = ada.get("/home").await;
        assert!(!home.body.contains("<script>alert") && !home.body.contains("<img src=x"));
    }

    #[settings(NATTER_LIMIT_POSTS = "1000/1s")]
    async fn the_room_shows_the_latest_fifty_and_older_pages_load(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "History").await;
        let csrf = ada.csrf_from(&format!("/rooms/{code}")).await;
        for i in 1..=120 {
            let body = format!("number {i}");
            let id = format!("h{i}");
            ada.post(&format!("/rooms/{code}/messages"), &[("body", &body), ("client_id", &id), ("csrf", &csrf)]).await;
        }
        let page = ada.get(&format!("/rooms/{code}")).await;
        assert_eq!(seqs_in(&page.body), (71..=120).collect::<Vec<_>>());
        assert!(page.body.contains(&format!("/rooms/{code}/messages?before=71")), "Load older link");
        // htmx: the next link plus the older messages prepended out of band.
        let fragment = ada.get_with(&format!("/rooms/{code}/messages?before=71"), &[("hx-request", "true")]).await;
        assert_eq!(fragment.status, 200);
        assert!(fragment.body.starts_with("<a class=\"load-older\" id=\"load-older\""), "{}", &fragment.body[..80.min(fragment.body.len())]);
        assert!(fragment.body.contains("hx-swap-oob=\"afterbegin\""));
        assert_eq!(seqs_in(&fragment.body), (21..=70).collect::<Vec<_>>());
        let last = ada.get_with(&format!("/rooms/{code}/messages?before=21"), &[("hx-request", "true")]).await;
        assert_eq!(seqs_in(&last.body), (1..=20).collect::<Vec<_>>());
        assert!(!last.body.contains("load-older"), "no more pages");
        // Without JS: a full page with links.
        let plain = ada.get(&format!("/rooms/{code}/messages?before=71")).await;
        assert!(plain.body.contains("<!DOCTYPE html>") && plain.body.contains("Back to the latest messages"));
        assert_eq!(seqs_in(&plain.body), (21..=70).collect::<Vec<_>>());
        assert_eq!(ada.get(&format!("/rooms/{code}/messages?before=-1")).await.status, 400);
    }

    async fn leaving_removes_the_room(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Exit").await;
        let r = ada.post_form(&format!("/rooms/{code}"), &format!("/rooms/{code}/leave"), &[]).await;
        assert_eq!((r.status, r.location().as_str()), (303, "/home"));
        assert_eq!(ada.get(&format!("/rooms/{code}")).await.status, 404);
        assert!(!ada.get("/home").await.body.contains(&code));
        // CSRF applies to leaving, creating and joining.
        let code = app.create_room(&ada, "Stay").await;
        for (path, fields) in [(format!("/rooms/{code}/leave"), vec![]), ("/rooms".to_string(), vec![("name", "x")]), ("/rooms/join".to_string(), vec![("code", code.as_str())])] {
            let mut fields = fields;
            fields.push(("csrf", "forged"));
            assert_eq!(ada.post(&path, &fields).await.status, 403, "{path}");
        }
        assert_eq!(ada.get(&format!("/rooms/{code}")).await.status, 200);
    }

    #[settings(NATTER_LIMIT_MEMBERSHIP = "3/1h")]
    async fn joining_and_leaving_over_and_over_is_refused_for_a_while(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Revolving door").await;
        let bob = app.signed_in("bob@example.org", "bob").await;
        let leave = format!("/rooms/{code}/leave");
        let csrf = bob.csrf_from("/home").await;
        let htmx = [("origin", app.base.as_str()), ("hx-request", "true"), ("x-csrf-token", csrf.as_str())];
        bob.join(&code).await;
        assert_eq!(bob.post(&leave, &[("csrf", &csrf)]).await.status, 303);
        let joined = bob.post_with("/rooms/join", &[("code", &code)], &htmx).await;
        assert_eq!((joined.status, joined.header("hx-redirect")), (200, Some(format!("/rooms/{code}").as_str())));
        // Three changes: the fourth is refused, as a form, with htmx, leaving or joining.
        for (refused, what) in [
            (bob.post(&leave, &[("csrf", &csrf)]).await, "leave"),
            (bob.post_with(&leave, &[], &htmx).await, "leave with htmx"),
            (bob.post_form("/home", "/rooms/join", &[("code", &code)]).await, "join"),
            (bob.post_with("/rooms/join", &[("code", &code)], &htmx).await, "join with htmx"),
        ] {
            assert_eq!(refused.status, 429, "{what}");
            assert!(refused.header("retry-after").is_some_and(|s| s.parse::<u64>().is_ok()), "{what}");
            assert!(refused.body.contains("joined and left rooms many times"), "{what}: {}", refused.body);
        }
        assert_eq!(bob.get(&format!("/rooms/{code}")).await.status, 200, "still a member");
        // It is bob's budget, not the room's.
        let cyd = app.signed_in("cyd@example.org", "cyd").await;
        cyd.join(&code).await;
    }

    #[settings(NATTER_LIMIT_ROOMS = "2/1h")]
    async fn creating_rooms_is_rate_limited(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        app.create_room(&ada, "one").await;
        app.create_room(&ada, "two").await;
        let r = ada.post_form("/home", "/rooms", &[("name", "three")]).await;
        assert_eq!(r.status, 429);
        assert!(r.header("retry-after").is_some());
        assert!(r.body.contains("value=\"three\""), "typed name kept");
    }
}

/// SQLite: the write-ahead log is copied back into the database file while posts go on (by
/// natter's own checkpoints: SQLite's automatic one is off, and 1,000 pages would not have
/// been reached here anyway). Without them the log would grow for as long as natter runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_posts_reach_the_database_file_not_only_its_log() {
    let Some(app) = TestApp::spawn_with(
        crate::common::Backend::Sqlite,
        &[("NATTER_LIMIT_POSTS", "100000/1s")],
    )
    .await
    else {
        return;
    };
    let crate::common::TestDb::Sqlite(dir) = &*app.db else {
        unreachable!()
    };
    let file = dir.path().join("natter.db");
    let size = || std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    let ada = app.signed_in("ada@example.org", "ada").await;
    let code = app.create_room(&ada, "Log").await;
    let before = size();
    let csrf = ada.csrf_from(&format!("/rooms/{code}")).await;
    let path = format!("/rooms/{code}/messages");
    let body = "checkpointed ".repeat(80);
    for i in 0..300 {
        let r = ada
            .post(
                &path,
                &[
                    ("body", &body),
                    ("client_id", &format!("c{i}")),
                    ("csrf", &csrf),
                ],
            )
            .await;
        assert_eq!(r.status, 303, "{i}");
    }
    // 300 posts of 1 KB: the file grows by about 300 KB once the log is copied into it.
    assert!(
        crate::common::eventually(std::time::Duration::from_secs(10), || async {
            size() >= before + 250_000
        })
        .await,
        "natter.db grew from {before} to only {} bytes",
        size()
    );
}
