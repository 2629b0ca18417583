//! The socket's frames as bytes on the wire: natter writes each shared frame's WebSocket form
//! (encoded once for every socket) straight to the connection. Read here by a real WebSocket
//! client, which refuses a wrong header, length, opcode or continuation: whole messages,
//! fragmented ones (split inside multi-byte characters), bursts and replays arrive intact and
//! in order, and a socket that stops reading is still closed after 10 s.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::both;
use crate::common::{Browser, TestApp, assert_exactly, eventually, hostile_inputs, metric};

const WAIT: Duration = Duration::from_secs(20);

/// Two people in one room: (poster, reader), the room's code.
async fn two_in_a_room(app: &TestApp) -> (Browser, Browser, String) {
    let ada = app.signed_in("frames-ada@example.org", "framesada").await;
    let bob = app.signed_in("frames-bob@example.org", "framesbob").await;
    let code = app.create_room(&ada, "Frames").await;
    let joined = bob
        .post_form("/home", "/rooms/join", &[("code", &code)])
        .await;
    assert_eq!(joined.status, 303);
    (ada, bob, code)
}

/// Posts every body at once (a burst); returns how many natter took (303) and checks that
/// it refused the others as a form would be (422), not with an error.
async fn post_all(b: &Browser, code: &str, bodies: &[String]) -> usize {
    let csrf = b.csrf_from(&format!("/rooms/{code}")).await;
    let path = format!("/rooms/{code}/messages");
    let answers = join_all(bodies.iter().enumerate().map(|(i, body)| {
        let (csrf, path) = (csrf.clone(), path.clone());
        async move {
            let id = format!("frames-{i}-{}", rand::random::<u32>());
            let r = b
                .post(
                    &path,
                    &[("body", body), ("client_id", &id), ("csrf", &csrf)],
                )
                .await;
            (r.status, body.chars().take(40).collect::<String>())
        }
    }))
    .await;
    let mut taken = 0;
    for (status, body) in answers {
        assert!(status == 303 || status == 422, "{status} for {body:?}");
        taken += usize::from(status == 303);
    }
    taken
}

/// `text` as natter escapes it in a message body.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

both! {
    #[settings(NATTER_LIMIT_POSTS = "100000/1s")]
    async fn shared_frames_arrive_intact_in_order_whole_fragmented_batched_and_replayed(app: TestApp) {
        let (ada, bob, code) = two_in_a_room(&app).await;
        let mut live = bob.socket(&code, Some(0)).await.expect("socket");
        assert!(live.wait_for("id=\"members\"", WAIT).await);

        // Fragmented: 16,000 bytes of escapes, and 6,000 bytes of two-byte characters cut
        // inside a character at every 4,096-byte fragment boundary.
        let big = "<".repeat(4000);
        let wide = "é".repeat(3000);
        let mut bodies = hostile_inputs();
        bodies.extend([big.clone(), wide.clone()]);
        bodies.extend((0..60).map(|i| format!("frames burst {i}")));
        let taken = post_all(&ada, &code, &bodies).await;
        assert!(taken > 60, "only {taken} of {} taken", bodies.len());

        let seqs = live.seqs_until(taken, WAIT).await;
        assert_exactly(&seqs, 1, taken as i64);
        let joined = live.frames.concat();
        assert!(joined.contains(&escaped(&big)), "the fragmented message arrived whole");
        assert!(joined.contains(&wide), "the split characters arrived whole");
        for i in 0..60 {
            assert!(joined.contains(&format!(">frames burst {i}<")), "burst {i}");
        }
        for frame in &live.frames[1..] {
            assert!(frame.starts_with('<') && frame.ends_with('>'), "{frame:.80}");
        }

        // The same messages replayed (frames of many messages, fragmented) to a new socket,
        // then one more live: once each, in order.
        let mut again = bob.socket(&code, Some(0)).await.expect("socket");
        assert_exactly(&again.seqs_until(taken, WAIT).await, 1, taken as i64);
        let replayed = again.frames.concat();
        assert!(replayed.contains(&escaped(&big)) && replayed.contains(&wide));
        let next = ada.say(&code, "frames after the replay").await;
        assert_eq!(next, taken as i64 + 1);
        assert_exactly(&again.seqs_until(taken + 1, WAIT).await, 1, next);
        assert_exactly(&live.seqs_until(taken + 1, WAIT).await, 1, next);
    }

    #[settings(NATTER_LIMIT_POSTS = "100000/1s")]
    async fn a_socket_that_stops_reading_is_closed_while_the_others_get_everything(app: TestApp) {
        let (ada, bob, code) = two_in_a_room(&app).await;
        let mut reader = ada.socket(&code, Some(0)).await.expect("socket");
        assert!(reader.wait_for("id=\"members\"", WAIT).await);

        // Bob's socket on a TCP connection with a small receive buffer, never read: natter's
        // writes to it stall once the kernel's buffers are full.
        let tcp = tokio::net::TcpSocket::new_v4().unwrap();
        tcp.set_recv_buffer_size(4096).unwrap();
        let stream = tcp.connect(app.addr).await.expect("connect");
        let ws_base = bob.base.replacen("http", "ws", 1);
        let mut request = format!("{ws_base}/rooms/{code}/ws?after=0")
            .into_client_request()
            .unwrap();
        let headers = request.headers_mut();
        headers.insert("cookie", bob.cookie_header().parse().unwrap());
        headers.insert("origin", bob.base.parse().unwrap());
        let (_stalled, _) = tokio_tungstenite::client_async(request, stream)
            .await
            .expect("upgrade");
        let open = || async { metric(&app.base, "natter_sockets_open").await };
        assert!(eventually(WAIT, || async { open().await == Some(2.0) }).await);

        // 400 messages of 16 KB each (6.4 MB): more than the stalled connection's buffers hold
        // (loopback lets a send buffer grow to 4 MiB), fewer than the 500 a socket may be behind.
        let bodies: Vec<String> = (0..400).map(|i| format!("{i:03}{}", "<".repeat(3990))).collect();
        let taken = post_all(&ada, &code, &bodies).await;
        assert_eq!(taken, 400);
        let posted = Instant::now();
        assert_exactly(&reader.seqs_until(taken, WAIT).await, 1, taken as i64);

        // natter gives a stalled socket 10 s to take a frame, then closes it.
        let closed = eventually(Duration::from_secs(30), || async {
            open().await == Some(1.0)
        })
        .await;
        assert!(closed, "the stalled socket is still open {:?} after the posts", posted.elapsed());
        eprintln!("stalled socket closed {:?} after the posts", posted.elapsed());
        // The reader was not held back, and still is not.
        let next = ada.say(&code, "frames still live").await;
        assert_exactly(&reader.seqs_until(taken + 1, WAIT).await, 1, next);
    }
}
