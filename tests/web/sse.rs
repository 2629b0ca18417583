//! The Server-Sent Events fallback (`GET /rooms/{code}/events`): the socket's fragments as
//! events whose `id:` is the room event they bring, resuming from `Last-Event-ID` (or
//! `?after=`) exactly once, the socket's checks, and its close codes as a last event.

use std::time::Duration;

use crate::both;
use crate::common::{Browser, SocketRefused, TestApp, assert_exactly, seqs_in};

const WAIT: Duration = Duration::from_secs(15);

/// One server-sent event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Event {
    id: Option<String>,
    /// `None`: a `message`.
    name: Option<String>,
    data: String,
}

/// An open event stream, read event by event with deadlines.
struct Events {
    response: reqwest::Response,
    buffer: String,
    /// Every event received so far.
    seen: Vec<Event>,
}

/// How a read ended when no event came.
#[derive(Debug, PartialEq, Eq)]
enum Quiet {
    /// The server ended the body.
    Ended,
    /// Nothing arrived in time.
    Timeout,
}

impl Events {
    /// The next event (comments and a bare `retry:` are not events).
    async fn next(&mut self, within: Duration) -> Result<Event, Quiet> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = Event::default();
                let mut data: Vec<&str> = Vec::new();
                for line in block.lines() {
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match field {
                        "id" => event.id = Some(value.to_string()),
                        "event" => event.name = Some(value.to_string()),
                        "data" => data.push(value),
                        _ => {}
                    }
                }
                if data.is_empty() {
                    continue;
                }
                event.data = data.join("\n");
                self.seen.push(event.clone());
                return Ok(event);
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => self.buffer.push_str(std::str::from_utf8(&chunk).unwrap()),
                Ok(Ok(None)) | Ok(Err(_)) => return Err(Quiet::Ended),
                Err(_) => return Err(Quiet::Timeout),
            }
        }
    }

    /// Waits for an event whose data holds `needle` (one received earlier counts).
    async fn wait_for(&mut self, needle: &str, within: Duration) -> bool {
        if self.seen.iter().any(|e| e.data.contains(needle)) {
            return true;
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Ok(e) if e.data.contains(needle) => return true,
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
    }

    /// Reads until `n` messages (by `data-seq`) have arrived in total; returns their seqs.
    async fn seqs_until(&mut self, n: usize, within: Duration) -> Vec<i64> {
        let deadline = tokio::time::Instant::now() + within;
        while self.seqs().len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if self.next(left).await.is_err() {
                break;
            }
        }
        self.seqs()
    }

    fn seqs(&self) -> Vec<i64> {
        self.seen.iter().flat_map(|e| seqs_in(&e.data)).collect()
    }

    /// Reads until the stream ends; returns its close event's code.
    async fn closed(&mut self, within: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + within;
        let mut code = None;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Ok(e) if e.name.as_deref() == Some("close") => code = Some(e.data),
                Ok(e) => assert!(code.is_none(), "an event after the close: {e:?}"),
                Err(Quiet::Ended) => return code,
                Err(Quiet::Timeout) => panic!("events still open after {within:?}"),
            }
        }
    }
}

/// Asks for room `code`'s events as `b`'s EventSource would (its cookies, no `Origin`), with
/// `after` in the URL and extra `headers`.
async fn open(
    b: &Browser,
    code: &str,
    after: Option<&str>,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let path = match after {
        Some(a) => format!("/rooms/{code}/events?after={a}"),
        None => format!("/rooms/{code}/events"),
    };
    let mut req = b
        .http
        .get(format!("{}{path}", b.base))
        .header("accept", "text/event-stream");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("GET events")
}

/// Opens the events, which must be answered as a stream; waits for the member list (the
/// feed has joined the room's hub).
async fn events(b: &Browser, code: &str, after: Option<&str>, headers: &[(&str, &str)]) -> Events {
    let response = open(b, code, after, headers).await;
    assert_eq!(response.status(), 200);
    let mut events = Events {
        response,
        buffer: String::new(),
        seen: Vec::new(),
    };
    assert!(events.wait_for("id=\"members\"", WAIT).await);
    events
}

async fn room_with(app: &TestApp, people: &[&str]) -> (Vec<Browser>, String) {
    let mut browsers = Vec::new();
    for name in people {
        browsers.push(app.signed_in(&format!("{name}@example.org"), name).await);
    }
    let code = browsers[0].create_room("Events").await;
    for b in &browsers[1..] {
        b.join(&code).await;
    }
    (browsers, code)
}

both! {
    async fn events_carry_the_sockets_fragments_with_the_seq_as_id(app: TestApp) {
        let (people, code) = room_with(&app, &["ada", "bob"]).await;
        let response = open(&people[1], &code, Some("0"), &[]).await;
        assert_eq!(response.status(), 200);
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        assert_eq!(header("content-type").as_deref(), Some("text/event-stream"));
        assert_eq!(header("cache-control").as_deref(), Some("no-store, no-transform"));
        assert_eq!(header("x-accel-buffering").as_deref(), Some("no"));
        let mut bob = Events { response, buffer: String::new(), seen: Vec::new() };
        // First the member list, with no id (presence is not a room event); every element
        // names its swap, as htmx's swap for events needs.
        let first = bob.next(WAIT).await.unwrap();
        assert_eq!(first.id, None);
        assert!(first.data.starts_with("<ul class=\"member-list\" id=\"members\" hx-swap-oob=\"true\""), "{}", first.data);
        assert!(first.data.contains("<span id=\"member-summary\" hx-swap-oob=\"true\""), "{}", first.data);
        let seq = people[0].say(&code, "hello\r\nover events").await;
        let event = loop {
            let e = bob.next(WAIT).await.unwrap();
            if e.id.is_some() {
                break e;
            }
        };
        assert_eq!(event.id, Some(seq.to_string()));
        assert_eq!(event.name, None);
        assert_eq!(seqs_in(&event.data), vec![seq]);
        assert!(event.data.starts_with("<div id=\"messages\" hx-swap-oob=\"beforeend\">"), "{}", event.data);
        assert!(event.data.contains("hello\nover events"), "{}", event.data);
    }

    #[settings(NATTER_LIMIT_POSTS = "100000/1s")]
    async fn resuming_from_last_event_id_delivers_only_later_events_once(app: TestApp) {
        let (people, code) = room_with(&app, &["ada", "bob"]).await;
        for i in 0..3 {
            people[0].say(&code, &format!("m{i}")).await;
        }
        // The browser's own reconnect: the stale URL's cursor, and the last id it saw.
        let mut bob = events(&people[1], &code, Some("0"), &[("last-event-id", "2")]).await;
        assert_exactly(&bob.seqs_until(1, WAIT).await, 3, 3);
        assert_eq!(bob.seen.iter().filter_map(|e| e.id.clone()).collect::<Vec<_>>(), ["3"]);
        for i in 3..6 {
            people[0].say(&code, &format!("m{i}")).await;
        }
        assert_exactly(&bob.seqs_until(4, WAIT).await, 3, 6);
        // Nothing more (no duplicates trailing behind).
        while let Ok(e) = bob.next(Duration::from_millis(300)).await {
            assert!(seqs_in(&e.data).is_empty(), "{e:?}");
        }
        // Without Last-Event-ID, `?after=` says where to resume.
        let mut again = events(&people[1], &code, Some("4"), &[]).await;
        assert_exactly(&again.seqs_until(2, WAIT).await, 5, 6);
    }

    async fn events_are_for_members_from_this_site_with_a_session(app: TestApp) {
        let (people, code) = room_with(&app, &["ada"]).await;
        let ada = &people[0];
        let eve = app.signed_in("eve@example.org", "eve").await;
        let status = |r: reqwest::Response| r.status().as_u16();
        assert_eq!(status(open(&eve, &code, Some("0"), &[]).await), 404, "non-member");
        assert_eq!(status(open(ada, "ZZZZ-ZZZZ", Some("0"), &[]).await), 404, "unknown room");
        assert_eq!(status(open(&app.browser(), &code, Some("0"), &[]).await), 401, "signed out");
        let evil = [("origin", "https://evil.example")];
        assert_eq!(status(open(ada, &code, Some("0"), &evil).await), 403, "cross-origin");
        // Order of checks: a cross-origin request learns nothing about sessions or rooms.
        assert_eq!(status(open(&app.browser(), "ZZZZ-ZZZZ", Some("0"), &evil).await), 403);
        for bad in ["-1", "x", "1.5", "%00", "99999999999999999999"] {
            assert_eq!(status(open(ada, &code, Some(bad), &[]).await), 400, "after={bad}");
            assert_eq!(status(open(ada, &code, None, &[("last-event-id", bad)]).await), 400, "Last-Event-ID {bad}");
        }
        // The page's own origin, when sent, is fine.
        events(ada, &code, Some("0"), &[("origin", &app.base)]).await;
    }

    async fn signing_out_or_leaving_ends_the_events_with_the_sockets_close_codes(app: TestApp) {
        let (people, code) = room_with(&app, &["ada", "bob"]).await;
        let mut ada = events(&people[0], &code, Some("0"), &[]).await;
        let mut bob = events(&people[1], &code, Some("0"), &[]).await;
        people[0].post_form("/home", "/auth/logout", &[]).await;
        assert_eq!(ada.closed(WAIT).await.as_deref(), Some("4401"));
        people[1].post_form(&format!("/rooms/{code}"), &format!("/rooms/{code}/leave"), &[]).await;
        assert_eq!(bob.closed(WAIT).await.as_deref(), Some("4404"));
    }

    async fn a_removed_member_s_events_end_with_4404_and_the_reason(app: TestApp) {
        let (people, code) = room_with(&app, &["ada", "bob"]).await;
        let mut bob = events(&people[1], &code, Some("0"), &[]).await;
        let path = format!("/rooms/{code}/members/bob/remove");
        assert_eq!(people[0].post_form(&format!("/rooms/{code}"), &path, &[]).await.status, 303);
        assert_eq!(bob.closed(WAIT).await.as_deref(), Some("4404\nremoved"));
    }

    async fn shutting_down_ends_the_events_with_1012(app: TestApp) {
        let (people, code) = room_with(&app, &["ada"]).await;
        let mut ada = events(&people[0], &code, Some("0"), &[]).await;
        let stopping = tokio::spawn(app.stop());
        assert_eq!(ada.closed(WAIT).await.as_deref(), Some("1012"));
        assert!(stopping.await.unwrap().is_ok());
    }
}

both! {
    #[settings(NATTER_REFUSE_WEBSOCKETS = "1")]
    async fn refusing_websockets_leaves_the_events(app: TestApp) {
        let (people, code) = room_with(&app, &["ada"]).await;
        assert_eq!(people[0].socket(&code, Some(0)).await.err(), Some(SocketRefused(403)));
        let mut ada = events(&people[0], &code, Some("0"), &[]).await;
        let seq = people[0].say(&code, "still live").await;
        assert_exactly(&ada.seqs_until(1, WAIT).await, seq, seq);
    }
}
