//! Slow and greedy clients (issue 13): connections that send half a request or nothing, bodies
//! that trickle, idle keep-alive, and one person opening socket after socket. Raw TCP clients
//! with short configured timeouts and bounded waits: each test fails by waiting out its bound
//! when natter holds a connection it should have closed.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::both;
use crate::common::{Browser, SocketRefused, TestApp};

/// Far more than any timeout configured here: a connection still open after this was held.
const BOUND: Duration = Duration::from_secs(8);

/// What the server sends until it closes the connection; `None` if it is still open after
/// `BOUND`.
async fn read_until_closed(tcp: &mut TcpStream) -> Option<String> {
    let mut got = Vec::new();
    match tokio::time::timeout(BOUND, tcp.read_to_end(&mut got)).await {
        Ok(_) => Some(String::from_utf8_lossy(&got).into_owned()),
        Err(_) => None,
    }
}

/// One whole response on a keep-alive connection (`Content-Length` bodies only).
async fn read_response(tcp: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
        let n = tokio::time::timeout(BOUND, tcp.read(&mut buf))
            .await
            .expect("a response in time")
            .expect("read");
        assert!(n > 0, "closed mid-response: {text}");
        got.extend_from_slice(&buf[..n]);
    }
}

/// A new API token of `browser`'s, made on the profile page as a person would.
async fn api_token(browser: &Browser) -> String {
    let page = browser
        .post_form("/profile", "/profile/tokens", &[("name", "slow")])
        .await;
    assert_eq!(page.status, 201, "{}", page.body);
    let (_, rest) = page
        .body
        .split_once("id=\"new-token\">")
        .expect("the token is shown");
    rest.split('<').next().unwrap().to_string()
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.addr).await.expect("connect")
}

both! {
    #[settings(NATTER_HEADER_TIMEOUT = "500ms", NATTER_IDLE_TIMEOUT = "1500ms")]
    async fn connections_that_never_finish_a_request_head_are_closed(app: TestApp) {
        // Nothing at all.
        let mut silent = connect(&app).await;
        // Half a head, then a byte every 200 ms: each byte is activity, none finishes it.
        let mut trickling = connect(&app).await;
        trickling.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let trickle = tokio::spawn(async move {
            for _ in 0..30 {
                if trickling.write_all(b"X").await.is_err() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let mut rest = Vec::new();
            tokio::time::timeout(BOUND, trickling.read_to_end(&mut rest)).await.is_ok()
        });
        assert!(read_until_closed(&mut silent).await.is_some(), "a silent connection was held");
        assert!(trickle.await.unwrap(), "a trickled request head was held");
        // Meanwhile everyone else is served.
        let mut fine = connect(&app).await;
        fine.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        assert!(read_response(&mut fine).await.starts_with("HTTP/1.1 200"));
    }

    #[settings(NATTER_HEADER_TIMEOUT = "500ms", NATTER_IDLE_TIMEOUT = "1500ms")]
    async fn keep_alive_waits_the_idle_timeout_not_the_head_timeout(app: TestApp) {
        let mut tcp = connect(&app).await;
        for _ in 0..3 {
            tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
            assert!(read_response(&mut tcp).await.starts_with("HTTP/1.1 200"));
            // Longer than a head may take, shorter than idling may: still open.
            tokio::time::sleep(Duration::from_millis(900)).await;
        }
        // Then idle past the idle timeout: closed, with nothing more sent.
        assert_eq!(read_until_closed(&mut tcp).await.as_deref(), Some(""));
    }

    #[settings(NATTER_BODY_TIMEOUT = "500ms")]
    async fn a_body_that_trickles_is_answered_408_on_forms_and_the_api(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Slow").await;
        let csrf = ada.csrf_from(&format!("/rooms/{code}")).await;
        let token = api_token(&ada).await;
        let form = format!(
            "POST /rooms/{code}/messages HTTP/1.1\r\nHost: x\r\nOrigin: {}\r\nCookie: {}\r\n\
             X-CSRF-Token: {csrf}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: 1000\r\n\r\nbody=trickled-7f3e",
            app.base,
            ada.cookie_header()
        );
        let api = format!(
            "POST /api/v1/rooms/{code}/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"body\""
        );
        for (request, kind) in [(form, "text/html"), (api, "application/problem+json")] {
            let mut tcp = connect(&app).await;
            tcp.write_all(request.as_bytes()).await.unwrap();
            let answer = read_response(&mut tcp).await;
            assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
            assert!(answer.to_ascii_lowercase().contains(&format!("content-type: {kind}")), "{answer}");
        }
        // Nothing was posted.
        let page = ada.get(&format!("/rooms/{code}")).await;
        assert!(!page.body.contains("trickled-7f3e"));
    }

    #[settings(NATTER_HEADER_TIMEOUT = "300ms", NATTER_IDLE_TIMEOUT = "600ms")]
    async fn a_live_socket_outlives_the_connection_timeouts(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = app.create_room(&ada, "Long").await;
        let mut socket = ada.socket(&code, Some(0)).await.expect("socket");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        ada.say(&code, "still here").await;
        assert!(socket.wait_for("still here", BOUND).await);
    }

    #[settings(NATTER_SOCKETS_PER_USER = "3")]
    async fn one_person_may_hold_only_so_many_sockets(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let bob = app.signed_in("bob@example.org", "bob").await;
        let code = app.create_room(&ada, "Tabs").await;
        bob.join(&code).await;
        let mut open = Vec::new();
        for _ in 0..3 {
            open.push(ada.socket(&code, None).await.expect("under the cap"));
        }
        let Err(SocketRefused(429)) = ada.socket(&code, None).await else {
            panic!("a fourth socket was accepted");
        };
        // The same address without an upgrade says so too (the page asks it), with a wait.
        let asked = ada.get(&format!("/rooms/{code}/ws")).await;
        assert_eq!(asked.status, 429, "{}", asked.body);
        assert!(asked.header("retry-after").is_some_and(|s| s.parse::<u64>().is_ok_and(|s| s > 0)));
        // Another person has their own allowance.
        let _bob = bob.socket(&code, None).await.expect("bob's socket");
        // A closed socket gives its place back.
        open.pop().unwrap().close().await;
        let mut again = None;
        for _ in 0..50 {
            match ada.socket(&code, None).await {
                Ok(s) => {
                    again = Some(s);
                    break;
                }
                Err(SocketRefused(429)) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(other) => panic!("{other:?}"),
            }
        }
        assert!(again.is_some(), "the closed socket's place was not given back");
        let asked = ada.get(&format!("/rooms/{code}/ws")).await;
        assert_eq!(asked.status, 429);
        drop(open);
        drop(again);
    }
}
