//! The live socket: delivery exactly once and in order, resume, overflow, gap-fill, presence,
//! and who may open it.

use std::time::{Duration, Instant};

use crate::both;
use crate::common::{Browser, Closed, SocketRefused, TestApp, assert_exactly, metric, seqs_in};

const WAIT: Duration = Duration::from_secs(15);

/// Posts `n` messages as `b` (without JS), numbered from `first`.
async fn post_many(b: &Browser, code: &str, first: usize, n: usize) {
    let csrf = b.csrf_from(&format!("/rooms/{code}")).await;
    for i in first..first + n {
        let body = format!("message {i}");
        let id = format!("{}-{i}", rand::random::<u32>());
        let r = b
            .post(
                &format!("/rooms/{code}/messages"),
                &[("body", &body), ("client_id", &id), ("csrf", &csrf)],
            )
            .await;
        assert_eq!(r.status, 303, "post {i}: {}", r.body);
    }
}

/// The user id of `name`'s entry in a page's member list.
fn member_id(page: &str, name: &str) -> i64 {
    let at = page.find(&format!(">{name}<")).expect("listed");
    let marker = "id=\"member-";
    let start = page[..at].rfind(marker).expect("an entry") + marker.len();
    let len = page[start..].find('"').unwrap();
    page[start..start + len].parse().unwrap()
}

async fn room_with(app: &TestApp, people: &[&str]) -> (Vec<Browser>, String) {
    let mut browsers = Vec::new();
    for name in people {
        browsers.push(app.signed_in(&format!("{name}@example.org"), name).await);
    }
    let code = app.create_room(&browsers[0], "Live").await;
    for b in &browsers[1..] {
        assert_eq!(
            b.post_form("/home", "/rooms/join", &[("code", &code)])
                .await
                .status,
            303
        );
    }
    (browsers, code)
}

both! {
    #[settings(NATTER_LIMIT_POSTS = "100000/1s")]
    async fn every_client_receives_every_message_once_in_order_including_the_posters_other_tabs(app: TestApp) {
        let (people, code) = room_with(&app, &["ada", "bob", "cyd"]).await;
        let mut sockets = Vec::new();
        for b in &people {
            sockets.push(b.socket(&code, Some(0)).await.expect("socket"));
        }
        // Ada's second tab.
        sockets.push(people[0].socket(&code, Some(0)).await.expect("second tab"));
        // Everyone posts concurrently.
        let per_person = 15;
        futures_util::future::join_all(people.iter().enumerate().map(|(i, b)| {
            let code = code.clone();
            async move { post_many(b, &code, i * 100, per_person).await }
        }))
        .await;
        let total = (per_person * people.len()) as i64;
        for socket in &mut sockets {
            let seqs = socket.seqs_until(total as usize, WAIT).await;
            assert_exactly(&seqs, 1, total);
        }
        // Nothing more arrives afterwards (no duplicates trailing behind).
        for socket in &mut sockets {
            assert!(socket.next_text(Duration::from_millis(300)).await.is_none_or(|f| seqs_in(&f).is_empty()));
        }
    }

    #[settings(NATTER_LIMIT_POSTS = "100000/1s")]
    async fn a_client_that_reconnects_gets_exactly_what_it_missed_then_live_ones(app: TestApp) {
        let (people, code) = room_with(&app, &["ada", "bob"]).await;
        post_many(&people[0], &code, 0, 3).await;
        let mut bob = people[1].socket(&code, Some(3)).await.unwrap();
        post_many(&people[0], &code, 3, 2).await;
        assert_exactly(&bob.seqs_until(2, WAIT).await, 4, 5);
        bob.close().await;
        post_many(&people[0], &code, 5, 7).await;
        let mut bob = people[1].socket(&code, Some(5)).await.unwrap();
        assert_exactly(&bob.seqs_until(7, WAIT).await, 6, 12);
        post_many(&people[0], &code, 12, 1).await;
        assert_exactly(&bob.seqs_until(8, WAIT).await, 6, 13);
    }

    async fn the_after_cursor_follows_its_rules(app: TestApp) {
        let (people, code) = room_with(&app, &["ada"]).await;
        post_many(&people[0], &code, 0, 3).await;
        // Missing: no replay, live from now.
        let mut live = people[0].socket(&code, None).await.unwrap();
        assert!(live.wait_for("id=\"members\"", WAIT).await);
        post_many(&people[0], &code, 3, 1).await;
        assert_exactly(&live.seqs_until(1, WAIT).await, 4, 4);
        // Beyond the last seq: treated as the last.
        let mut ahead = people[0].socket(&code, Some(1000)).await.unwrap();
        assert!(ahead.wait_for("id=\"members\"", WAIT).await);
        post_many(&people[0], &code, 4, 1).await;
        assert_exactly(&ahead.seqs_until(1, WAIT).await, 5, 5);
        // Not a non-negative integer: refused before the upgrade.
        for bad in ["-1", "x", "1.5", "%00", "99999999999999999999"] {
            assert_eq!(people[0].socket_with(&code, Some(bad), Some(&app.base)).await.err(), Some(SocketRefused(400)), "{bad}");
        }
    }

    async fn sockets_opening_together_share_one_hub_and_miss_nothing(app: TestApp) {
        // The first socket of a room creates its hub; the others arriving with it wait for
        // it. Each gets the member list, everyone online, and every message once.
        let names = ["ada", "bob", "cyd", "dee", "eve", "fay", "gus", "hal"];
        let (people, code) = room_with(&app, &names).await;
        let mut sockets: Vec<_> = futures_util::future::join_all(
            people.iter().flat_map(|p| [p.socket(&code, Some(0)), p.socket(&code, Some(0))]),
        )
        .await
        .into_iter()
        .map(|s| s.unwrap())
        .collect();
        let everyone = format!("{n} online · {n} members", n = names.len());
        for socket in &mut sockets {
            assert!(socket.wait_for("id=\"members\"", WAIT).await);
            assert!(socket.wait_for(&everyone, WAIT).await, "{:?}", socket.frames);
        }
        post_many(&people[3], &code, 0, 3).await;
        for socket in &mut sockets {
            assert_exactly(&socket.seqs_until(3, WAIT).await, 1, 3);
        }
    }

    #[settings(NATTER_LIMIT_POSTS = "100000/1s")]
    async fn a_client_too_far_behind_is_told_to_reload(app: TestApp) {
        let (people, code) = room_with(&app, &["ada"]).await;
        let csrf = people[0].csrf_from(&format!("/rooms/{code}")).await;
        let path = format!("/rooms/{code}/messages");
        futures_util::future::join_all((0..510).map(|i| {
            let (b, csrf, path) = (&people[0], csrf.clone(), path.clone());
            async move { b.post(&path, &[("body", "x"), ("client_id", &format!("far{i}")), ("csrf", &csrf)]).await }
        }))
        .await;
        let mut socket = people[0].socket(&code, Some(2)).await.unwrap();
        assert_eq!(socket.closed(WAIT).await, Closed::Code(4409));
        assert!(socket.frames.iter().any(|f| f.contains("Reload")), "a notice offers a reload");
    }

    #[settings(NATTER_LIMIT_POSTS = "100000/1s", NATTER_HUB_CAPACITY = "2")]
    async fn a_client_that_overflowed_its_queue_still_gets_everything(app: TestApp) {
        let (people, code) = room_with(&app, &["ada", "bob"]).await;
        let mut sockets = vec![people[1].socket(&code, Some(0)).await.unwrap(), people[1].socket(&code, Some(0)).await.unwrap()];
        let csrf = people[0].csrf_from(&format!("/rooms/{code}")).await;
        let path = format!("/rooms/{code}/messages");
        let n = 300;
        futures_util::future::join_all((0..n).map(|i| {
            let (b, csrf, path) = (&people[0], csrf.clone(), path.clone());
            async move { b.post(&path, &[("body", "burst"), ("client_id", &format!("burst{i}")), ("csrf", &csrf)]).await }
        }))
        .await;
        for socket in &mut sockets {
            assert_exactly(&socket.seqs_until(n, WAIT).await, 1, n as i64);
        }
        let resyncs = metric(&app.base, "natter_resyncs_total").await;
        assert!(resyncs > Some(0.0), "the burst overflowed a 2-slot queue at least once");
    }

    async fn messages_published_out_of_order_still_arrive_once_in_order(app: TestApp) {
        let (people, code) = room_with(&app, &["ada", "bob"]).await;
        let mut bob = people[1].socket(&code, Some(0)).await.unwrap();
        assert!(bob.wait_for("id=\"members\"", WAIT).await);
        // Commit two messages through a second store on the same database, which publishes
        // nothing, then publish them to natter's hub in reverse order, as racing publishers
        // (two instances, a listener and a local post) can.
        let (store, _commits) = natter::store::Store::connect(&app.db.url(), 2).await.unwrap();
        let ada_id = app.state.store.room_by_code(natter::domain::RoomCode::parse(&code).unwrap()).await.unwrap().unwrap();
        let members = app.state.store.members(ada_id.id).await.unwrap();
        let ada = members.iter().find(|m| m.username == "ada").unwrap();
        let mut posted = Vec::new();
        for text in ["first", "second"] {
            let outcome = store.post_message(natter::store::NewPost {
                room_id: ada_id.id,
                user_id: ada.user_id,
                author: "ada".into(),
                body: natter::domain::MessageBody::parse(text).unwrap(),
                client_id: None,
                attachments: Vec::new(),
            }).await.unwrap();
            let natter::store::PostOutcome::Posted(m) = outcome else { panic!("{outcome:?}") };
            posted.push(m);
        }
        app.state.chat.publish(&posted[1..], Instant::now());
        app.state.chat.publish(&posted[..1], Instant::now());
        assert_exactly(&bob.seqs_until(2, WAIT).await, 1, 2);
        assert!(bob.next_text(Duration::from_millis(300)).await.is_none_or(|f| seqs_in(&f).is_empty()), "the late first one is not sent again");
        assert!(metric(&app.base, "natter_gap_fills_total").await >= Some(1.0));
        store.close().await;
    }

    async fn a_page_ahead_of_this_instances_hub_is_not_sent_what_it_shows(app: TestApp) {
        // A page that got messages from another instance reconnects here while this
        // instance's hub has not published them yet: resume after what the page shows.
        let (people, code) = room_with(&app, &["ada", "bob"]).await;
        let mut ada = people[0].socket(&code, Some(0)).await.unwrap();
        assert!(ada.wait_for("id=\"members\"", WAIT).await, "the room's hub is active");
        let (store, _commits) = natter::store::Store::connect(&app.db.url(), 2).await.unwrap();
        let room = app.state.store.room_by_code(natter::domain::RoomCode::parse(&code).unwrap()).await.unwrap().unwrap();
        let members = app.state.store.members(room.id).await.unwrap();
        let bob_id = members.iter().find(|m| m.username == "bob").unwrap().user_id;
        let mut posted = Vec::new();
        for text in ["one", "two"] {
            let outcome = store.post_message(natter::store::NewPost {
                room_id: room.id,
                user_id: bob_id,
                author: "bob".into(),
                body: natter::domain::MessageBody::parse(text).unwrap(),
                client_id: None,
                attachments: Vec::new(),
            }).await.unwrap();
            let natter::store::PostOutcome::Posted(m) = outcome else { panic!("{outcome:?}") };
            posted.push(m);
        }
        let mut bob = people[1].socket(&code, Some(2)).await.unwrap();
        assert!(bob.wait_for("id=\"members\"", WAIT).await);
        // A cursor beyond anything committed counts as what the hub has published: this one
        // still gets 1 and 2.
        let mut made_up = people[0].socket(&code, Some(1000)).await.unwrap();
        assert!(made_up.wait_for("id=\"members\"", WAIT).await);
        app.state.chat.publish(&posted, Instant::now());
        assert_exactly(&ada.seqs_until(2, WAIT).await, 1, 2);
        post_many(&people[0], &code, 0, 1).await;
        assert_exactly(&bob.seqs_until(1, WAIT).await, 3, 3);
        assert_exactly(&ada.seqs_until(3, WAIT).await, 1, 3);
        assert_exactly(&made_up.seqs_until(3, WAIT).await, 1, 3);
        store.close().await;
    }

    async fn the_socket_is_for_members_from_this_site_with_a_session(app: TestApp) {
        let (people, code) = room_with(&app, &["ada"]).await;
        let eve = app.signed_in("eve@example.org", "eve").await;
        assert_eq!(eve.socket(&code, Some(0)).await.err(), Some(SocketRefused(404)), "non-member");
        // Also while the room is active (its hub answers membership then).
        let mut ada = people[0].socket(&code, Some(0)).await.unwrap();
        assert!(ada.wait_for("id=\"members\"", WAIT).await);
        assert_eq!(eve.socket(&code, Some(0)).await.err(), Some(SocketRefused(404)), "non-member, room active");
        assert_eq!(people[0].socket_with(&code, Some("0"), Some("https://evil.example")).await.err(), Some(SocketRefused(403)), "cross-origin");
        assert_eq!(people[0].socket_with(&code, Some("0"), None).await.err(), Some(SocketRefused(403)), "no origin");
        assert_eq!(app.browser().socket(&code, Some(0)).await.err(), Some(SocketRefused(401)), "signed out");
        assert_eq!(people[0].socket("ZZZZ-ZZZZ", Some(0)).await.err(), Some(SocketRefused(404)), "unknown room");
        // Order of checks: a cross-origin request learns nothing about sessions or rooms.
        assert_eq!(app.browser().socket_with("ZZZZ-ZZZZ", Some("0"), Some("https://evil.example")).await.err(), Some(SocketRefused(403)));
    }

    async fn signing_out_closes_that_sessions_sockets_with_4401(app: TestApp) {
        let (people, code) = room_with(&app, &["ada"]).await;
        let other_tab = app.browser();
        other_tab.dev_sign_in("ada@example.org").await;
        let mut mine = people[0].socket(&code, Some(0)).await.unwrap();
        let mut other = other_tab.socket(&code, Some(0)).await.unwrap();
        assert!(mine.wait_for("id=\"members\"", WAIT).await);
        people[0].post_form("/home", "/auth/logout", &[]).await;
        assert_eq!(mine.closed(WAIT).await, Closed::Code(4401));
        // The other session's socket stays open: it still gets messages.
        post_many(&other_tab, &code, 0, 1).await;
        assert!(other.wait_for("id=\"msg-1\"", WAIT).await);
        // "Everywhere" closes the rest.
        other_tab.post_form("/profile", "/auth/logout/everywhere", &[]).await;
        assert_eq!(other.closed(WAIT).await, Closed::Code(4401));
    }

    async fn leaving_closes_the_members_sockets_with_4404_and_others_see_it(app: TestApp) {
        let (people, code) = room_with(&app, &["ada", "bob"]).await;
        let mut ada = people[0].socket(&code, Some(0)).await.unwrap();
        let mut bob = people[1].socket(&code, Some(0)).await.unwrap();
        assert!(ada.wait_for("id=\"members\"", WAIT).await);
        people[1].post_form(&format!("/rooms/{code}"), &format!("/rooms/{code}/leave"), &[]).await;
        assert_eq!(bob.closed(WAIT).await, Closed::Code(4404));
        assert!(ada.wait_for("data-online=\"false\" hidden", WAIT).await, "bob's entry is hidden for ada");
        assert!(ada.wait_for("1 member", WAIT).await);
        assert_eq!(people[1].socket(&code, Some(0)).await.err(), Some(SocketRefused(404)));
    }

    async fn presence_and_joins_arrive_as_member_fragments(app: TestApp) {
        let (people, code) = room_with(&app, &["ada", "bob"]).await;
        let mut ada = people[0].socket(&code, Some(0)).await.unwrap();
        let first = ada.next_text(WAIT).await.unwrap();
        assert!(first.starts_with("<ul class=\"member-list\" id=\"members\""), "a fresh member list on connect: {first}");
        assert!(first.contains("data-online=\"true\"") && first.contains(">ada<"));
        assert!(first.contains("1 online · 2 members"), "{first}");
        let bob = people[1].socket(&code, Some(0)).await.unwrap();
        assert!(ada.wait_for("2 online · 2 members", WAIT).await, "bob came online");
        assert!(
            ada.frames.iter().any(|f| f.starts_with("<ul id=\"members\" hx-swap-oob=\"beforeend\">") && f.matches("<li").count() == 1 && f.contains(">bob<") && f.contains("data-online=\"true\"")),
            "one upserted entry, not the whole list"
        );
        bob.close().await;
        assert!(ada.wait_for_new("1 online · 2 members", WAIT).await, "bob went offline");
        let cy = app.signed_in("cyd@example.org", "cyd").await;
        cy.post_form("/home", "/rooms/join", &[("code", &code)]).await;
        assert!(ada.wait_for("hx-swap-oob=\"beforeend\"><li", WAIT).await, "cyd appended");
        assert!(ada.wait_for("1 online · 3 members", WAIT).await);
    }

    async fn live_fragments_escape_hostile_text(app: TestApp) {
        let (people, code) = room_with(&app, &["ada", "bob"]).await;
        let mut bob = people[1].socket(&code, Some(0)).await.unwrap();
        let csrf = people[0].csrf_from(&format!("/rooms/{code}")).await;
        let payload = "<div hx-swap-oob=\"true\" id=\"messages\">x</div><script>alert(1)</script>";
        people[0].post(&format!("/rooms/{code}/messages"), &[("body", payload), ("csrf", &csrf)]).await;
        assert!(bob.wait_for("id=\"msg-1\"", WAIT).await);
        let frame = bob.frames.iter().find(|f| f.contains("msg-1")).unwrap();
        assert!(!frame.contains("<script>") && !frame.contains("<div hx-swap-oob=\"true\""), "{frame}");
        assert!(frame.contains("&lt;script&gt;"));
        assert!(frame.starts_with("<div id=\"messages\" hx-swap-oob=\"beforeend\">"), "{frame}");
    }

    async fn a_frame_bigger_than_one_fragment_arrives_whole(app: TestApp) {
        let (people, code) = room_with(&app, &["ada", "bob"]).await;
        let mut bob = people[1].socket(&code, Some(0)).await.unwrap();
        assert!(bob.wait_for("id=\"members\"", WAIT).await);
        // 4000 '<' escape to 16,000 bytes: sent as four fragments of one message.
        let body = "<".repeat(4000);
        people[0].say(&code, &body).await;
        assert!(bob.wait_for("id=\"msg-1\"", WAIT).await);
        let frame = bob.frames.iter().find(|f| f.contains("msg-1")).unwrap();
        assert_eq!(frame.matches("&lt;").count(), 4000);
        assert!(frame.ends_with("</article></div>"), "{}", &frame[frame.len() - 40..]);
    }

    async fn shutting_down_closes_sockets_with_1012(app: TestApp) {
        let (people, code) = room_with(&app, &["ada"]).await;
        let mut socket = people[0].socket(&code, Some(0)).await.unwrap();
        assert!(socket.wait_for("id=\"members\"", WAIT).await);
        let started = Instant::now();
        let stopping = tokio::spawn(app.stop());
        assert_eq!(socket.closed(WAIT).await, Closed::Code(1012));
        assert!(stopping.await.unwrap().is_ok());
        eprintln!("graceful stop took {:?}", started.elapsed());
    }

    #[settings(NATTER_LIMIT_POSTS = "100000/1s")]
    async fn one_room_sustains_a_burst_of_posts(app: TestApp) {
        let (people, code) = room_with(&app, &["ada", "bob"]).await;
        let mut bob = people[1].socket(&code, Some(0)).await.unwrap();
        let csrf = people[0].csrf_from(&format!("/rooms/{code}")).await;
        let path = format!("/rooms/{code}/messages");
        let n = 400;
        let started = Instant::now();
        futures_util::future::join_all((0..n).map(|i| {
            let (b, csrf, path) = (&people[0], csrf.clone(), path.clone());
            async move { b.post(&path, &[("body", "rate"), ("client_id", &format!("r{i}")), ("csrf", &csrf)]).await }
        }))
        .await;
        assert_exactly(&bob.seqs_until(n, WAIT).await, 1, n as i64);
        let secs = started.elapsed().as_secs_f64();
        eprintln!("one room: {n} posts delivered in {secs:.2} s = {:.0} messages/s (debug build, posts over HTTP)", n as f64 / secs);
    }

    // Member-list frames go out at most once per 250 ms per room (natter's batch window).
    #[settings(NATTER_LIMIT_MEMBERSHIP = "1000/1m")]
    async fn join_and_leave_churn_reaches_sockets_as_a_few_frames_ending_in_the_final_state(app: TestApp) {
        const WINDOW: Duration = Duration::from_millis(250);
        let (people, code) = room_with(&app, &["ada", "bob"]).await;
        let bob_id = member_id(&people[0].get(&format!("/rooms/{code}")).await.body, "bob");
        let mut ada = people[0].socket(&code, Some(0)).await.unwrap();
        assert!(ada.wait_for("1 online · 2 members", WAIT).await);
        // (Her own coming online follows the list.)
        while ada.next_text(4 * WINDOW).await.is_some() {}
        let listed = ada.frames.len();
        let csrf = people[1].csrf_from("/home").await;
        let started = Instant::now();
        for _ in 0..40 {
            let left = people[1].post(&format!("/rooms/{code}/leave"), &[("csrf", &csrf)]).await;
            assert_eq!(left.status, 303);
            let joined = people[1].post("/rooms/join", &[("code", &code), ("csrf", &csrf)]).await;
            assert_eq!(joined.status, 303);
        }
        // The final state (bob a member) arrives, then nothing more.
        let entry = format!("<li class=\"member\" id=\"member-{bob_id}\" data-online=\"false\">");
        let settled = |frames: &[String]| {
            frames.iter().rev().find(|f| f.contains(&format!("id=\"member-{bob_id}\""))).is_some_and(|f| f.contains(&entry))
                && frames.last().is_some_and(|f| f.contains("1 online · 2 members"))
        };
        let deadline = Instant::now() + WAIT;
        while !settled(&ada.frames[listed..]) && Instant::now() < deadline {
            ada.next_text(WAIT).await;
        }
        assert!(settled(&ada.frames[listed..]), "{:?}", &ada.frames[listed..]);
        while ada.next_text(4 * WINDOW).await.is_some() {}
        let elapsed = started.elapsed();
        let frames = &ada.frames[listed..];
        assert!(frames.iter().all(|f| f.contains("id=\"member-summary\"")), "member-list frames only: {frames:?}");
        let allowed = (elapsed.as_millis() / WINDOW.as_millis()) as usize + 1;
        assert!(
            frames.len() <= allowed,
            "80 changes in {elapsed:?} came as {} frames, more than one per {WINDOW:?}",
            frames.len()
        );
        assert!(settled(frames), "the last frames show bob a member: {frames:?}");
        eprintln!("80 member changes in {elapsed:?}: {} frames", frames.len());
    }

    // A room with more members than the list shows: a (re)connecting page gets the first 100
    // (online first) and a count of the rest, and presence changes send only the counts, not
    // entries for every coming and going to every socket.
    #[settings(NATTER_LIMIT_SIGN_INS = "100000/1s")]
    async fn a_capped_room_sends_counts_not_entries(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Big").await;
        let mut last = None;
        for i in 0..100 {
            let b = app
                .signed_in(&format!("m{i:03}@example.org"), &format!("m{i:03}"))
                .await;
            b.join(&code).await;
            last = Some(b);
        }
        let mut socket = ada.socket(&code, Some(0)).await.unwrap();
        let list = socket.next_text(WAIT).await.unwrap();
        assert!(
            list.starts_with("<ul class=\"member-list\" id=\"members\" hx-swap-oob=\"true\" data-capped"),
            "{list}"
        );
        assert_eq!(list.matches("<li class=\"member\"").count(), 100, "{list}");
        assert!(
            list.contains("and 1 more") && list.contains("1 online · 101 members"),
            "{list}"
        );
        assert!(list.contains(">ada<"), "online members come first: {list}");
        let other = last.unwrap().socket(&code, Some(0)).await.unwrap();
        assert!(socket.wait_for_new("2 online · 101 members", WAIT).await);
        let change = socket
            .frames
            .iter()
            .rev()
            .find(|f| f.contains("2 online"))
            .unwrap();
        assert!(!change.contains("<li"), "counts only: {change}");
        other.close().await;
        assert!(socket.wait_for_new("1 online · 101 members", WAIT).await);
    }
}

/// A post this instance's publisher never heard of (here: committed by a second process on the
/// same SQLite file, the stand-in for one committed between a socket's room read and its hub's
/// creation) still reaches open sockets: hubs are caught up from the store when created and
/// every few seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_the_publisher_missed_still_arrives() {
    let Some(app) = TestApp::spawn(crate::common::Backend::Sqlite).await else {
        return;
    };
    let ada = app.signed_in("ada@example.org", "ada").await;
    let code = app.create_room(&ada, "Missed").await;
    let mut socket = ada.socket(&code, Some(0)).await.unwrap();
    assert!(socket.wait_for("id=\"members\"", WAIT).await);
    let other = TestApp::start_on(app.db.clone(), None, &[]).await;
    let bob = other.signed_in("bob@example.org", "bob").await;
    bob.join(&code).await;
    bob.say(&code, "from elsewhere").await;
    assert_exactly(&socket.seqs_until(1, WAIT).await, 1, 1);
}
