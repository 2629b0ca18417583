//! "ada is typing…": a page's signal up its room socket shows a line to the room's other
//! sockets for a few seconds, or until the typer's message arrives; never stored.

use std::time::Duration;

use crate::both;
use crate::common::{Socket, TestApp};

/// What the ws extension sends for the page's hidden `#typing-signal` form.
const SIGNAL: &str =
    r#"{"typing":"1","HEADERS":{"HX-Request":"true","HX-Trigger":"typing-signal"}}"#;

/// The next typing line `socket` receives, within `within`.
async fn typing_line(socket: &mut Socket, within: Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame = socket.next_text(left).await?;
        if let Some(at) = frame.find("id=\"typing\"") {
            return Some(frame[at..].to_string());
        }
    }
}

/// Waits for a new socket's first frame, its member list, which is sent once the socket
/// listens on the room's hub: a signal sent before that could pass the socket by (on a loaded
/// machine the upgrade's answer can reach the client first).
async fn joined(socket: &mut Socket) {
    socket
        .next_text(Duration::from_secs(15))
        .await
        .expect("the socket's member list");
}

/// The id of the room's member `username`.
async fn id_of(app: &TestApp, code: &str, username: &str) -> i64 {
    let code = natter::domain::RoomCode::parse(code).unwrap();
    let room = app.state.store.room_by_code(code).await.unwrap().unwrap();
    let members = app.state.store.members(room.id).await.unwrap();
    members
        .iter()
        .find(|m| m.username == username)
        .expect(username)
        .user_id
}

fn names(line: &str, user_id: i64) -> bool {
    line.contains(&format!("data-user=\"{user_id}\""))
}

both! {
    async fn a_signal_shows_the_typer_to_the_room_until_it_runs_out(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Typing").await;
        let bob = app.signed_in("bob@example.org", "bob").await;
        bob.join(&code).await;
        let ada_id = id_of(&app, &code, "ada").await;
        let mut ada_socket = ada.socket(&code, None).await.expect("socket");
        let mut bob_socket = bob.socket(&code, None).await.expect("socket");
        joined(&mut ada_socket).await;
        joined(&mut bob_socket).await;

        ada_socket.send_text(SIGNAL).await;
        let line = typing_line(&mut bob_socket, Duration::from_secs(5)).await.expect("a typing line");
        assert!(names(&line, ada_id) && line.contains("<bdi>ada</bdi></b> is typing…"), "{line}");
        // Ada's own page gets the line too (one render for everyone); her me.css hides her.
        assert!(typing_line(&mut ada_socket, Duration::from_secs(5)).await.is_some_and(|l| names(&l, ada_id)));
        let me_css = ada.get("/me.css").await.body;
        assert!(me_css.contains(&format!(".typer[data-user=\"{ada_id}\"]{{display:none}}")), "{me_css}");

        // More signals while she types change nothing for the others.
        ada_socket.send_text(SIGNAL).await;
        // Without another signal the line runs out after 6 s.
        let line = typing_line(&mut bob_socket, Duration::from_secs(10)).await.expect("the line ends");
        assert!(!names(&line, ada_id), "{line}");
        // Nothing was stored: the room has no message.
        let room = app.state.store.room_by_code(natter::domain::RoomCode::parse(&code).unwrap()).await.unwrap().unwrap();
        assert_eq!(room.last_seq, 0);
    }

    async fn the_typers_message_ends_their_line_right_after_it(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Typing").await;
        let bob = app.signed_in("bob@example.org", "bob").await;
        bob.join(&code).await;
        let ada_id = id_of(&app, &code, "ada").await;
        let mut ada_socket = ada.socket(&code, None).await.expect("socket");
        let mut bob_socket = bob.socket(&code, None).await.expect("socket");
        joined(&mut ada_socket).await;
        joined(&mut bob_socket).await;
        ada_socket.send_text(SIGNAL).await;
        assert!(typing_line(&mut bob_socket, Duration::from_secs(5)).await.is_some_and(|l| names(&l, ada_id)));

        let seq = ada.say(&code, "here it is").await;
        let started = tokio::time::Instant::now();
        let line = typing_line(&mut bob_socket, Duration::from_secs(5)).await.expect("the line ends");
        assert!(!names(&line, ada_id), "{line}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // In that order: the message, then the line without her.
        let message = bob_socket.frames.iter().position(|f| f.contains(&format!("data-seq=\"{seq}\""))).expect("the message");
        let ended = bob_socket.frames.iter().rposition(|f| f.contains("id=\"typing\"")).unwrap();
        assert!(message < ended);
    }

    async fn signals_need_a_member_s_socket_and_anything_else_sent_is_ignored(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Typing").await;
        let bob = app.signed_in("bob@example.org", "bob").await;
        bob.join(&code).await;
        let mut ada_socket = ada.socket(&code, None).await.expect("socket");
        let mut bob_socket = bob.socket(&code, None).await.expect("socket");
        joined(&mut ada_socket).await;
        joined(&mut bob_socket).await;
        // Not a signal: nothing shows, and the socket stays open and live.
        for junk in ["typing", "{}", "[\"typing\"]", "{\"typing\"", "{\"HEADERS\":{}}", &"x".repeat(3000)] {
            ada_socket.send_text(junk).await;
        }
        assert!(typing_line(&mut bob_socket, Duration::from_secs(1)).await.is_none());
        let seq = ada.say(&code, "still here").await;
        assert_eq!(ada_socket.seqs_until(1, Duration::from_secs(5)).await, vec![seq]);
        // A socket is only ever its own member's: Bob's signal names Bob, never anyone else.
        bob_socket.send_text(SIGNAL).await;
        let bob_id = id_of(&app, &code, "bob").await;
        let line = typing_line(&mut ada_socket, Duration::from_secs(5)).await.expect("a line");
        assert!(names(&line, bob_id) && !line.contains("ada"), "{line}");
    }
}
