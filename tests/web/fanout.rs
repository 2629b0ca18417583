//! A room's writer (`chat::fanout`): caught-up sockets get the room's frames from one writer
//! per room, without their own task waking, and go back to their task whenever the writer
//! cannot serve them at once. Every guarantee holds across the hand-overs: each message once and
//! in order, slow sockets closed after 10 s, kicks and 1012 on shutdown. `/metrics` counts the
//! writer's writes and hand-backs, so each test also shows the writer was the one sending.

use std::time::Duration;

use futures_util::future::join_all;
use tokio_tungstenite::{MaybeTlsStream, tungstenite::client::IntoClientRequest};

use crate::both;
use crate::common::{Browser, Closed, Socket, TestApp, assert_exactly, eventually, metric};

const WAIT: Duration = Duration::from_secs(20);

async fn writes(app: &TestApp) -> f64 {
    metric(&app.base, "natter_fanout_writes_total")
        .await
        .unwrap_or(0.0)
}

async fn handbacks(app: &TestApp) -> f64 {
    metric(&app.base, "natter_fanout_handbacks_total")
        .await
        .unwrap_or(0.0)
}

/// `names` signed in, all members of one room (the first made it); the room's code.
async fn room_of(app: &TestApp, names: &[&str]) -> (Vec<Browser>, String) {
    let mut people = Vec::new();
    for name in names {
        people.push(
            app.signed_in(
                &format!("shards-{name}@example.org"),
                &format!("shards{name}"),
            )
            .await,
        );
    }
    let code = app.create_room(&people[0], "Fan-out").await;
    for person in &people[1..] {
        let joined = person
            .post_form("/home", "/rooms/join", &[("code", &code)])
            .await;
        assert_eq!(joined.status, 303);
    }
    (people, code)
}

/// Posts `count` messages one after the other; returns their seqs.
async fn post_in_turn(b: &Browser, code: &str, from: usize, count: usize) -> Vec<i64> {
    let mut seqs = Vec::new();
    for i in from..from + count {
        seqs.push(b.say(code, &format!("shards {i}")).await);
    }
    seqs
}

/// Posts 300 messages of `body` (16 KB once escaped), four posters at a time.
async fn post_big(b: &Browser, code: &str, round: usize, body: &str) {
    join_all((0..4).map(|part| async move {
        for i in 0..75 {
            b.say(code, &format!("{round}{part}{i:02}{body}")).await;
        }
    }))
    .await;
}

/// A socket of `b` on a connection with a small receive buffer, which the test reads only when
/// it wants to: natter's writes to it stall once the kernel's buffers are full.
async fn small_buffered_socket(app: &TestApp, b: &Browser, code: &str) -> Socket {
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.set_recv_buffer_size(4096).unwrap();
    let stream = tcp.connect(app.addr).await.expect("connect");
    let ws_base = b.base.replacen("http", "ws", 1);
    let mut request = format!("{ws_base}/rooms/{code}/ws?after=0")
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    headers.insert("cookie", b.cookie_header().parse().unwrap());
    headers.insert("origin", b.base.parse().unwrap());
    let (ws, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream))
        .await
        .expect("upgrade");
    Socket {
        ws,
        frames: Vec::new(),
        close_reason: None,
    }
}

/// Waits until the room's writer has written at least `n` frames more than `before`.
async fn writer_wrote(app: &TestApp, before: f64, n: f64) -> bool {
    eventually(WAIT, || async { writes(app).await >= before + n }).await
}

both! {
    #[settings(NATTER_LIMIT_POSTS = "100000/1s")]
    async fn caught_up_sockets_get_every_message_once_in_order_from_the_rooms_writer(app: TestApp) {
        let (people, code) = room_of(&app, &["ada", "bob", "cyd"]).await;
        let mut readers = Vec::new();
        for person in &people {
            let mut socket = person.socket(&code, Some(0)).await.expect("socket");
            assert!(socket.wait_for("id=\"members\"", WAIT).await);
            readers.push(socket);
        }
        let before = writes(&app).await;
        // 1,000 posts from three people at once, read by three sockets as they come.
        let posting = join_all(people.iter().enumerate().map(|(i, person)| {
            let count = if i == 0 { 334 } else { 333 };
            post_in_turn(person, &code, i * 1000, count)
        }));
        let reading = join_all(readers.iter_mut().map(|socket| socket.seqs_until(1000, WAIT * 3)));
        let (posted, read) = tokio::join!(posting, reading);
        assert_eq!(posted.iter().map(Vec::len).sum::<usize>(), 1000);
        for seqs in read {
            assert_exactly(&seqs, 1, 1000);
        }
        // Most frames came from the writer (a socket that falls behind a burst catches up on
        // its own, batched, and comes back).
        let written = writes(&app).await - before;
        eprintln!("the writer wrote {written} of 3,000 deliveries");
        assert!(written >= 300.0, "the writer wrote only {written} frames");
    }

    #[settings(NATTER_LIMIT_POSTS = "100000/1s")]
    async fn a_socket_that_stops_reading_is_handed_back_and_closed_while_the_others_get_everything(app: TestApp) {
        let (people, code) = room_of(&app, &["dan", "eve"]).await;
        let mut reader = people[0].socket(&code, Some(0)).await.expect("socket");
        assert!(reader.wait_for("id=\"members\"", WAIT).await);
        let mut stalled = small_buffered_socket(&app, &people[1], &code).await;
        assert!(stalled.wait_for("id=\"members\"", WAIT).await);
        // Both on the writer: one message reaches both through it.
        let before = writes(&app).await;
        let first = people[0].say(&code, "shards first").await;
        assert!(stalled.wait_for("id=\"msg-1\"", WAIT).await);
        assert_exactly(&reader.seqs_until(1, WAIT).await, 1, first);
        assert!(writer_wrote(&app, before, 2.0).await, "both sockets were on the writer");

        // 600 messages of 16 KB: more than the stalled connection's buffers hold. The writer
        // hands it back to its task, which closes it after 10 s; the reader gets everything.
        let handed = handbacks(&app).await;
        let body = "<".repeat(3990);
        let posting = async {
            post_big(&people[0], &code, 0, &body).await;
            post_big(&people[0], &code, 1, &body).await;
        };
        let reading = reader.seqs_until(601, WAIT * 3);
        let (_, seqs) = tokio::join!(posting, reading);
        assert_exactly(&seqs, 1, 601);
        assert!(handbacks(&app).await > handed, "the writer handed the stalled socket back");
        let open = || async { metric(&app.base, "natter_sockets_open").await };
        assert!(eventually(Duration::from_secs(30), || async { open().await == Some(1.0) }).await, "the stalled socket was closed");
        // The reader is still served by the writer.
        let before = writes(&app).await;
        let next = people[1].say(&code, "shards still live").await;
        assert_exactly(&reader.seqs_until(602, WAIT).await, 1, next);
        assert!(writer_wrote(&app, before, 1.0).await);
        drop(stalled);
    }

    #[settings(NATTER_LIMIT_POSTS = "100000/1s")]
    async fn a_slow_reader_that_resumes_gets_everything_in_order_and_returns_to_the_writer(app: TestApp) {
        let (people, code) = room_of(&app, &["fay", "gus"]).await;
        let mut slow = small_buffered_socket(&app, &people[1], &code).await;
        assert!(slow.wait_for("id=\"members\"", WAIT).await);
        let body = "<".repeat(3990);
        let mut posted = 0;
        for round in 0..3 {
            // Not read while 300 messages of 16 KB (4.8 MB, more than a loopback send buffer
            // grows to) are posted: the connection takes some and then nothing, so the writer
            // hands the socket back to its task.
            let handed = handbacks(&app).await;
            post_big(&people[0], &code, round, &body).await;
            posted += 300;
            assert!(eventually(WAIT, || async { handbacks(&app).await > handed }).await, "round {round}: handed back");
            // Read again within the 10 s: everything arrives, once, in order.
            assert_exactly(&slow.seqs_until(posted, WAIT).await, 1, posted as i64);
            // Caught up, it is the writer's again: each of a few small messages comes from it.
            let before = writes(&app).await;
            for i in 0..5 {
                let seq = people[0].say(&code, &format!("shards small {round} {i}")).await;
                posted += 1;
                assert_eq!(seq, posted as i64);
                assert_exactly(&slow.seqs_until(posted, WAIT).await, 1, seq);
            }
            let written = writes(&app).await - before;
            assert!(written >= 4.0, "round {round}: back on the writer ({written} written)");
        }
    }

    async fn kicks_and_shutdown_close_sockets_on_the_writer(app: TestApp) {
        let (people, code) = room_of(&app, &["hal", "ivy", "jon"]).await;
        let mut sockets = Vec::new();
        for person in &people {
            let mut socket = person.socket(&code, Some(0)).await.expect("socket");
            assert!(socket.wait_for("id=\"members\"", WAIT).await);
            sockets.push(socket);
        }
        let before = writes(&app).await;
        let seq = people[0].say(&code, "shards before the kicks").await;
        for socket in &mut sockets {
            assert_exactly(&socket.seqs_until(1, WAIT).await, 1, seq);
        }
        assert!(writer_wrote(&app, before, 3.0).await, "all three on the writer");
        let mut jon = sockets.pop().unwrap();
        let mut ivy = sockets.pop().unwrap();
        let mut hal = sockets.pop().unwrap();
        people[1].post_form("/home", "/auth/logout", &[]).await;
        assert_eq!(ivy.closed(WAIT).await, Closed::Code(4401));
        people[2].post_form(&format!("/rooms/{code}"), &format!("/rooms/{code}/leave"), &[]).await;
        assert_eq!(jon.closed(WAIT).await, Closed::Code(4404));
        // The one left still gets messages from the writer, then the restart's 1012.
        let before = writes(&app).await;
        let seq = people[0].say(&code, "shards after the kicks").await;
        assert_eq!(hal.seqs_until(2, WAIT).await.last(), Some(&seq));
        assert!(writer_wrote(&app, before, 1.0).await);
        let stopping = tokio::spawn(app.stop());
        assert_eq!(hal.closed(WAIT).await, Closed::Code(1012));
        assert!(stopping.await.unwrap().is_ok());
    }
}
