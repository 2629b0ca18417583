//! The room for pages without JavaScript: the streamed conversation (`/rooms/{code}/live`) and
//! the composer frame (`/rooms/{code}/compose`), read as a browser reads them, chunk by chunk.

use std::time::{Duration, Instant};

use crate::both;
use crate::common::{Browser, TestApp, assert_exactly, hostile_inputs, seqs_in};

const WAIT: Duration = Duration::from_secs(15);

/// A streamed document being read.
struct Stream {
    response: reqwest::Response,
    /// Everything read so far.
    text: String,
    /// Whether the document has ended.
    ended: bool,
}

impl Stream {
    async fn open(b: &Browser, path: &str) -> Stream {
        let response = b
            .http
            .get(format!("{}{path}", b.base))
            .send()
            .await
            .expect("GET the stream");
        Stream {
            response,
            text: String::new(),
            ended: false,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.response.headers().get(name)?.to_str().ok()
    }

    /// Reads until `done` holds for what was read (or the document ends); panics after WAIT.
    async fn until(&mut self, what: &str, done: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(&self.text) {
            assert!(
                !self.ended,
                "the stream ended before {what}:\n{}",
                self.text
            );
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => self.text.push_str(std::str::from_utf8(&chunk).unwrap()),
                Ok(Ok(None)) | Ok(Err(_)) => self.ended = true,
                Err(_) => panic!("waited {WAIT:?} for {what}; read:\n{}", self.text),
            }
        }
    }

    /// Reads until the document ends.
    async fn read_to_end(&mut self) {
        let deadline = Instant::now() + WAIT;
        while !self.ended {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => self.text.push_str(std::str::from_utf8(&chunk).unwrap()),
                Ok(Ok(None)) | Ok(Err(_)) => self.ended = true,
                Err(_) => panic!("the stream did not end; read:\n{}", self.text),
            }
        }
    }

    /// Whether anything arrives within `wait`.
    async fn quiet_for(&mut self, wait: Duration) -> bool {
        !matches!(
            tokio::time::timeout(wait, self.response.chunk()).await,
            Ok(Ok(Some(_)))
        )
    }
}

/// Whether `html` shows an article whose body is exactly `text`.
fn shows(html: &str, text: &str) -> bool {
    html.contains(&format!("dir=\"auto\">{text}</div>"))
}

async fn pair(app: &TestApp) -> (Browser, Browser, String) {
    let ada = app.signed_in("ada@example.org", "ada").await;
    let bob = app.signed_in("bob@example.org", "bob").await;
    let code = app.create_room(&ada, "Quiet").await;
    let joined = bob
        .post_form("/home", "/rooms/join", &[("code", &code)])
        .await;
    assert_eq!(joined.status, 303);
    (ada, bob, code)
}

both! {
    #[settings(NATTER_LIMIT_POSTS = "100000/1s")]
    async fn the_stream_shows_the_newest_page_then_each_new_message_as_it_is_posted(app: TestApp) {
        let (ada, bob, code) = pair(&app).await;
        bob.say(&code, "before the stream").await;
        let mut stream = Stream::open(&ada, &format!("/rooms/{code}/live")).await;
        assert_eq!(stream.response.status(), 200);
        assert_eq!(stream.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(stream.header("content-length"), None);
        assert_eq!(stream.header("cache-control"), Some("no-store, no-transform"));
        assert_eq!(stream.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(stream.header("x-frame-options"), Some("SAMEORIGIN"));
        let csp = stream.header("content-security-policy").unwrap().to_string();
        assert!(csp.contains("frame-ancestors 'self'") && csp.contains("script-src 'self'"), "{csp}");
        stream.until("the newest page", |t| shows(t, "before the stream")).await;
        // The head reloads the frame once the document ends, resuming after what it showed;
        // links open in the whole tab; it is a log for assistive technology.
        assert!(stream.text.contains(&format!(
            "<meta http-equiv=\"refresh\" content=\"0; url=/rooms/{code}/live?after=1\">"
        )), "{}", stream.text);
        assert!(stream.text.contains("<base target=\"_top\">"));
        assert!(stream.text.contains("role=\"log\""));

        for (i, text) in ["one", "two", "three"].iter().enumerate() {
            let seq = bob.say(&code, text).await;
            assert_eq!(seq, i as i64 + 2);
            stream.until(text, |t| shows(t, text)).await;
        }
        assert_exactly(&seqs_in(&stream.text), 1, 4);
        assert!(!stream.ended, "the stream stays open");

        // Every other page keeps refusing to be framed.
        let page = ada.get(&format!("/rooms/{code}")).await;
        assert!(page.header("content-security-policy").unwrap().contains("frame-ancestors 'none'"));
        assert_eq!(page.header("x-frame-options"), Some("DENY"));
        // ... and carries the frames only for pages without script.
        let noscript = page.body.find("<noscript>").expect("a noscript");
        let frames = &page.body[noscript..];
        assert!(frames.contains(&format!("<iframe class=\"live-frame\" src=\"/rooms/{code}/live\" title=")));
        assert!(frames.contains(&format!("<iframe class=\"compose-frame\" src=\"/rooms/{code}/compose\" title=")));
    }

    #[settings(NATTER_LIMIT_POSTS = "100000/1s")]
    async fn racing_posters_reach_the_stream_exactly_once_in_order(app: TestApp) {
        let (ada, bob, code) = pair(&app).await;
        let cyd = app.signed_in("cyd@example.org", "cyd").await;
        cyd.post_form("/home", "/rooms/join", &[("code", &code)]).await;
        let mut stream = Stream::open(&ada, &format!("/rooms/{code}/live")).await;
        stream.until("the page", |t| t.contains("role=\"log\"")).await;
        let post = |who: Browser, prefix: &'static str| {
            let code = code.clone();
            tokio::spawn(async move {
                for i in 0..30 {
                    who.say(&code, &format!("{prefix} {i}")).await;
                }
            })
        };
        let (a, b) = (post(bob, "bob"), post(cyd, "cyd"));
        a.await.unwrap();
        b.await.unwrap();
        stream.until("all 60", |t| seqs_in(t).len() >= 60).await;
        assert!(stream.quiet_for(Duration::from_millis(300)).await, "more than was posted");
        assert_exactly(&seqs_in(&stream.text), 1, 60);
    }

    async fn an_edit_ends_the_stream_so_the_frame_reloads_into_the_room_as_it_is(app: TestApp) {
        let (ada, bob, code) = pair(&app).await;
        let seq = bob.say(&code, "a mistkae").await;
        let mut stream = Stream::open(&ada, &format!("/rooms/{code}/live")).await;
        stream.until("the message", |t| shows(t, "a mistkae")).await;
        let edited = bob
            .post_form(&format!("/rooms/{code}"), &format!("/rooms/{code}/messages/{seq}/edit"), &[("body", "a mistake")])
            .await;
        assert_eq!(edited.status, 303, "{}", edited.body);
        stream.read_to_end().await;
        assert!(stream.text.ends_with("</div></main></body></html>\n"), "{}", stream.text);
        assert!(!shows(&stream.text, "a mistake"), "a document cannot change what it shows");
        // What the frame reloads into (its head's refresh) shows the edit.
        let mut again = Stream::open(&ada, &format!("/rooms/{code}/live?after={seq}")).await;
        again.until("the edited message", |t| shows(t, "a mistake")).await;
    }

    async fn a_signed_out_or_departed_reader_s_stream_ends_with_a_notice_that_does_not_reload(app: TestApp) {
        let (ada, bob, code) = pair(&app).await;
        let mut stream = Stream::open(&ada, &format!("/rooms/{code}/live")).await;
        stream.until("the page", |t| t.contains("role=\"log\"")).await;
        let out = ada.post_form("/profile", "/auth/logout", &[]).await;
        assert_eq!(out.status, 303);
        stream.read_to_end().await;
        assert!(stream.text.contains("You signed out."), "{}", stream.text);
        // The refresh in the head reloads the frame once, into a notice with nothing that
        // reloads it again.
        let reloaded = ada.get(&format!("/rooms/{code}/live?after=0")).await;
        assert_eq!(reloaded.status, 401);
        assert!(reloaded.body.contains("You are signed out."));
        assert!(!reloaded.body.contains("http-equiv=\"refresh\""), "{}", reloaded.body);
        assert!(reloaded.header("content-length").is_some(), "a whole document, not a stream");

        let mut stream = Stream::open(&bob, &format!("/rooms/{code}/live")).await;
        stream.until("the page", |t| t.contains("role=\"log\"")).await;
        bob.leave(&code).await;
        stream.read_to_end().await;
        assert!(stream.text.contains("You are no longer in this room."), "{}", stream.text);
        let reloaded = bob.get(&format!("/rooms/{code}/live")).await;
        assert_eq!(reloaded.status, 404);
        assert!(!reloaded.body.contains("http-equiv=\"refresh\""));
    }

    async fn a_removed_member_s_stream_ends_with_the_notice(app: TestApp) {
        let (ada, bob, code) = pair(&app).await;
        let mut stream = Stream::open(&bob, &format!("/rooms/{code}/live")).await;
        stream.until("the page", |t| t.contains("role=\"log\"")).await;
        let path = format!("/rooms/{code}/members/bob/remove");
        assert_eq!(ada.post_form(&format!("/rooms/{code}"), &path, &[]).await.status, 303);
        stream.read_to_end().await;
        assert!(stream.text.contains("You were removed from this room."), "{}", stream.text);
    }

    async fn the_stream_is_for_members_with_a_session_and_a_well_formed_cursor(app: TestApp) {
        let (ada, _bob, code) = pair(&app).await;
        let eve = app.signed_in("eve@example.org", "eve").await;
        let r = eve.get(&format!("/rooms/{code}/live")).await;
        assert_eq!(r.status, 404);
        assert!(r.body.contains("You are not in this room."));
        let r = app.browser().get(&format!("/rooms/{code}/live")).await;
        assert_eq!(r.status, 401);
        for bad in ["after=-1", "after=x", "after=1&after=2"] {
            let r = ada.get(&format!("/rooms/{code}/live?{bad}")).await;
            assert_eq!(r.status, 400, "{bad}");
        }
        for path in ["live", "compose"] {
            let r = eve.get(&format!("/rooms/{code}/{path}")).await;
            assert_eq!(r.status, 404, "{path}");
            assert!(r.header("content-security-policy").unwrap().contains("frame-ancestors 'self'"));
        }
    }

    async fn a_session_streams_four_rooms_and_the_fifth_frame_shows_the_room_with_a_refresh_link(app: TestApp) {
        let (ada, bob, code) = pair(&app).await;
        bob.say(&code, "hello").await;
        let mut open = Vec::new();
        for _ in 0..4 {
            let mut s = Stream::open(&ada, &format!("/rooms/{code}/live")).await;
            s.until("the page", |t| t.contains("role=\"log\"")).await;
            open.push(s);
        }
        let fifth = ada.get(&format!("/rooms/{code}/live")).await;
        assert_eq!(fifth.status, 200);
        assert!(shows(&fifth.body, "hello"), "the room as it is");
        assert!(fifth.body.contains(&format!("href=\"/rooms/{code}/live\" target=\"_self\">Refresh</a>")), "{}", fifth.body);
        assert!(!fifth.body.contains("http-equiv=\"refresh\""));
        // Another session of the same person has its own four.
        let phone = Browser::new(&app.base);
        phone.dev_sign_in("ada@example.org").await;
        let mut s = Stream::open(&phone, &format!("/rooms/{code}/live")).await;
        s.until("the page", |t| t.contains("role=\"log\"")).await;
        // A closed frame gives its slot back.
        drop(open.pop());
        let deadline = Instant::now() + WAIT;
        loop {
            let mut s = Stream::open(&ada, &format!("/rooms/{code}/live")).await;
            s.until("an answer", |t| t.contains("</html>") || t.contains("role=\"log\"")).await;
            if !s.text.contains("Refresh</a>") {
                break;
            }
            assert!(Instant::now() < deadline, "the closed stream's slot never came back");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[settings(NATTER_DRAIN = "2s")]
    async fn shutting_down_ends_streams_so_their_frames_reload(app: TestApp) {
        let (ada, _bob, code) = pair(&app).await;
        let mut stream = Stream::open(&ada, &format!("/rooms/{code}/live")).await;
        stream.until("the page", |t| t.contains("role=\"log\"")).await;
        let stopping = tokio::spawn(app.stop());
        stream.read_to_end().await;
        assert!(stream.text.ends_with("</div></main></body></html>\n"), "{}", stream.text);
        // The frame's reload while natter drains: a notice that tries again by itself.
        let reloaded = ada.get(&format!("/rooms/{code}/live?after=0")).await;
        assert_eq!(reloaded.status, 503);
        assert!(reloaded.body.contains(&format!(
            "<meta http-equiv=\"refresh\" content=\"2; url=/rooms/{code}/live\">"
        )), "{}", reloaded.body);
        stopping.await.unwrap().expect("natter stops");
    }

    #[settings(NATTER_LIMIT_POSTS = "100000/1s")]
    async fn the_composer_frame_posts_to_itself_and_keeps_a_refused_text(app: TestApp) {
        let (ada, _bob, code) = pair(&app).await;
        let frame = ada.get(&format!("/rooms/{code}/compose")).await;
        assert_eq!(frame.status, 200);
        assert!(frame.header("content-security-policy").unwrap().contains("frame-ancestors 'self'"));
        assert!(frame.body.contains(&format!("action=\"/rooms/{code}/compose\" target=\"_self\"")));
        let compose = format!("/rooms/{code}/compose");
        let csrf = frame.csrf().unwrap();
        for text in hostile_inputs().into_iter().filter(|t| !t.trim().is_empty()).take(20) {
            let r = ada.post(&compose, &[("body", &text), ("csrf", &csrf)]).await;
            if r.status == 422 {
                // Too long, or otherwise refused: said in the frame, the text kept.
                assert!(r.body.contains("id=\"composer-error\""));
                continue;
            }
            assert_eq!(r.status, 303, "{text:?}: {}", r.body);
            assert_eq!(r.location(), compose);
        }
        let r = ada.post(&compose, &[("body", "   "), ("csrf", &csrf)]).await;
        assert_eq!(r.status, 422);
        assert!(r.body.contains("id=\"composer-error\""));
        let kept = "<script>alert(1)</script>";
        let r = ada.post(&compose, &[("body", &format!("{kept}{}", "x".repeat(5000))), ("csrf", &csrf)]).await;
        assert_eq!(r.status, 422);
        assert!(r.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;xxx"), "the text kept, escaped");
        assert!(!r.body.contains(kept));
        // A forged form from another site.
        let r = ada.post_with(&compose, &[("body", "forged"), ("csrf", &csrf)], &[("origin", "https://evil.example")]).await;
        assert_eq!(r.status, 403);
        let r = ada.post(&compose, &[("body", "no token")]).await;
        assert!(r.status >= 400 && r.status < 500, "{}", r.status);
    }
}
