//! The room's live socket as a test reads it: opened with a browser's cookies and origin, read
//! frame by frame with deadlines, and the checks on what arrived (every seq exactly once, in
//! order).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

use super::browser::{Browser, extract_attr};

/// Opening sockets: a browser's, so the upgrade carries its session cookie.
impl Browser {
    /// Opens the room's live socket as the page would (same origin, this browser's cookies).
    pub async fn socket(&self, code: &str, after: Option<i64>) -> Result<Socket, SocketRefused> {
        let origin = self.base.clone();
        self.socket_with(code, after.map(|a| a.to_string()).as_deref(), Some(&origin))
            .await
    }

    /// Opens a socket with an explicit `after` text and `Origin`.
    pub async fn socket_with(
        &self,
        code: &str,
        after: Option<&str>,
        origin: Option<&str>,
    ) -> Result<Socket, SocketRefused> {
        let ws_base = self.base.replacen("http", "ws", 1);
        let url = match after {
            Some(a) => format!("{ws_base}/rooms/{code}/ws?after={a}"),
            None => format!("{ws_base}/rooms/{code}/ws"),
        };
        let mut request = url.into_client_request().expect("ws request");
        let cookie = self.cookie_header();
        if !cookie.is_empty() {
            request
                .headers_mut()
                .insert("cookie", cookie.parse().expect("cookie"));
        }
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().expect("origin"));
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => Ok(Socket {
                ws,
                frames: Vec::new(),
                close_reason: None,
            }),
            Err(tungstenite::Error::Http(response)) => {
                Err(SocketRefused(response.status().as_u16()))
            }
            Err(e) => panic!("socket failed: {e}"),
        }
    }
}

/// A socket upgrade natter refused, with its HTTP status.
#[derive(Debug, PartialEq, Eq)]
pub struct SocketRefused(pub u16);

/// A live socket, as a test reads it.
pub struct Socket {
    pub ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    /// Every text frame received so far.
    pub frames: Vec<String>,
    /// The reason of the server's close frame, once it came.
    pub close_reason: Option<String>,
}

/// What a socket did next.
#[derive(Debug)]
pub enum Next {
    Text(String),
    Closed(Closed),
    /// Nothing arrived in time.
    Quiet,
}

/// How the server ended a socket.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    Code(u16),
    /// The connection ended without a close frame.
    Abruptly,
}

impl Socket {
    /// The next text frame, or `None` at close/timeout.
    pub async fn next_text(&mut self, within: Duration) -> Option<String> {
        match self.next_event(within).await {
            Next::Text(t) => Some(t),
            _ => None,
        }
    }

    /// The next text frame, the close, or `Quiet` after `within`.
    pub async fn next_event(&mut self, within: Duration) -> Next {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Ok(Some(Ok(tungstenite::Message::Text(t)))) => {
                    self.frames.push(t.to_string());
                    return Next::Text(t.to_string());
                }
                Ok(Some(Ok(tungstenite::Message::Close(frame)))) => {
                    self.close_reason = frame.as_ref().map(|f| f.reason.to_string());
                    return Next::Closed(
                        frame.map_or(Closed::Code(1005), |f| Closed::Code(f.code.into())),
                    );
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_))) | Ok(None) => return Next::Closed(Closed::Abruptly),
                Err(_) => return Next::Quiet,
            }
        }
    }

    /// Reads frames until `n` messages (by `data-seq`) have arrived in total; returns the seqs
    /// of all message articles received so far, in arrival order.
    pub async fn seqs_until(&mut self, n: usize, within: Duration) -> Vec<i64> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let seqs = self.seqs();
            if seqs.len() >= n {
                return seqs;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() || self.next_text(left).await.is_none() {
                return self.seqs();
            }
        }
    }

    /// The seqs of all message articles received so far, in arrival order.
    pub fn seqs(&self) -> Vec<i64> {
        self.frames.iter().flat_map(|f| seqs_in(f)).collect()
    }

    /// Waits for a frame containing `needle` (one received earlier counts).
    pub async fn wait_for(&mut self, needle: &str, within: Duration) -> bool {
        if self.frames.iter().any(|f| f.contains(needle)) {
            return true;
        }
        self.wait_for_new(needle, within).await
    }

    /// Waits for a frame containing `needle` among those arriving from now on (for states that
    /// come and go, like presence counts).
    pub async fn wait_for_new(&mut self, needle: &str, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_text(left).await {
                Some(f) if f.contains(needle) => return true,
                Some(_) => continue,
                None => return false,
            }
        }
    }

    /// Reads until the server closes; returns how.
    pub async fn closed(&mut self, within: Duration) -> Closed {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_event(left).await {
                Next::Closed(how) => return how,
                Next::Text(_) => continue,
                Next::Quiet => panic!("socket still open after {within:?}"),
            }
        }
    }

    /// Sends `text` up the socket, as the page's ws extension does.
    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(tungstenite::Message::Text(text.into()))
            .await
            .expect("the socket takes a frame");
    }

    pub async fn close(mut self) {
        let _ = self.ws.send(tungstenite::Message::Close(None)).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while self.ws.next().await.is_some() {}
        })
        .await;
    }
}

/// The `data-seq` values of message articles in a fragment, in order (a change to a message,
/// an article without `data-seq`, is not one).
pub fn seqs_in(html: &str) -> Vec<i64> {
    html.match_indices("<article")
        .filter_map(|(i, _)| {
            let tag = &html[i..i + html[i..].find('>')?];
            extract_attr(tag, "data-seq=\"")
        })
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Asserts `seqs` is exactly `from..=to` in order (nothing lost, duplicated or reordered).
#[track_caller]
pub fn assert_exactly(seqs: &[i64], from: i64, to: i64) {
    let expected: Vec<i64> = (from..=to).collect();
    assert_eq!(
        seqs,
        expected.as_slice(),
        "expected every seq {from}..={to} exactly once, in order"
    );
}
