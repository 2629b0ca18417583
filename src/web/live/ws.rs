//! The WebSocket transport of a live feed: frames as text messages (fragmented when large),
//! pings every 30 s, and a close frame with natter's code at the end.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        Message as WsMessage, Utf8Bytes,
        protocol::{
            CloseFrame,
            frame::{
                Frame,
                coding::{CloseCode, Data, OpCode},
            },
        },
    },
};

use super::{
    batch::MAX_FRAGMENT,
    feed::{End, Heard, Transport},
};

/// A client that cannot take a frame for this long is closed (it reconnects and resumes).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// A client silent (no pong, no frame) for this long is gone.
const SILENT_LIMIT: Duration = Duration::from_secs(60);

/// The upgraded connection.
pub(super) type Ws = WebSocketStream<poem::Upgraded>;

/// A room page's live socket.
pub(super) struct Socket {
    ws: Ws,
    /// When the client was last heard from.
    heard: Instant,
}

impl Socket {
    pub(super) fn new(ws: Ws) -> Self {
        Socket {
            ws,
            heard: Instant::now(),
        }
    }

    async fn send_message(&mut self, message: WsMessage) -> Result<(), End> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.ws.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Gone),
            Err(_) => {
                tracing::debug!("socket could not take a frame for 10 s; closing");
                Err(End::Gone)
            }
        }
    }
}

impl Transport for Socket {
    const IN_PLACE: bool = true;
    const PRESENCE: bool = true;
    const KEEP_ALIVE: Duration = Duration::from_secs(30);

    /// Sends one HTML frame: whole when small, otherwise as a fragmented message (same bytes,
    /// shared, cut into `MAX_FRAGMENT` pieces). tungstenite's write buffer keeps the capacity
    /// of the largest frame it ever wrote for the socket's lifetime; a 200-member list or a
    /// replay of a hundred messages would otherwise pin tens of KiB to every idle socket.
    async fn send(&mut self, frame: Utf8Bytes, _seq: i64) -> Result<(), End> {
        if frame.len() <= MAX_FRAGMENT {
            return self.send_message(WsMessage::Text(frame)).await;
        }
        let bytes = Bytes::from(frame);
        let mut start = 0;
        while start < bytes.len() {
            let end = (start + MAX_FRAGMENT).min(bytes.len());
            let opcode = if start == 0 {
                OpCode::Data(Data::Text)
            } else {
                OpCode::Data(Data::Continue)
            };
            let part = Frame::message(bytes.slice(start..end), opcode, end == bytes.len());
            self.send_message(WsMessage::Frame(part)).await?;
            start = end;
        }
        Ok(())
    }

    async fn heard(&mut self) -> Result<Heard, End> {
        match self.ws.next().await {
            Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => Err(End::Gone),
            Some(Ok(message)) => {
                self.heard = Instant::now();
                Ok(match message {
                    WsMessage::Text(text) if is_typing(&text) => Heard::Typing,
                    _ => Heard::Alive,
                })
            }
        }
    }

    /// Pings the client, unless it has been silent too long.
    async fn keep_alive(&mut self) -> Result<(), End> {
        if self.heard.elapsed() > SILENT_LIMIT {
            return Err(End::Gone);
        }
        self.send_message(WsMessage::Ping(Default::default())).await
    }

    async fn close(mut self, end: End) {
        if let End::Close(code, reason) = end {
            close(&mut self.ws, code, reason).await;
        }
    }
}

/// What the page's typing signal carries: the ws extension sends its hidden form's values
/// (and the request headers) as one JSON object, `{"typing":"1","HEADERS":{…}}`; anything else
/// a client sends only says it is alive. Messages are at most 4 KiB (`super::config`).
fn is_typing(text: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Signal {
        typing: Option<serde::de::IgnoredAny>,
    }
    // An object only (serde would take a struct from an array too).
    text.starts_with('{')
        && serde_json::from_str::<Signal>(text).is_ok_and(|signal| signal.typing.is_some())
}

/// Says goodbye with `code`, and waits (briefly) for the client's answering close so the TCP
/// connection ends cleanly.
pub(super) async fn close(ws: &mut Ws, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        if ws.send(WsMessage::Close(Some(frame))).await.is_ok() {
            while let Some(Ok(message)) = ws.next().await {
                if message.is_close() {
                    break;
                }
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_json_object_with_typing_is_a_typing_signal() {
        use super::is_typing;
        assert!(is_typing(
            r#"{"typing":"1","HEADERS":{"HX-Request":"true"}}"#
        ));
        for other in [
            "",
            "typing",
            "{}",
            r#"{"HEADERS":{}}"#,
            "[\"typing\"]",
            r#"{"typing""#,
        ] {
            assert!(!is_typing(other), "{other}");
        }
    }
}
