//! The WebSocket transport of a live feed: frames as text messages (fragmented when large),
//! pings every 30 s, and a close frame with natter's code at the end.

use std::{
    pin::pin,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        Message as WsMessage,
        protocol::{CloseFrame, frame::coding::CloseCode},
    },
};

use super::feed::{End, Heard, Transport};
use crate::chat::{FastSocket, Frame};

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
    /// Whether tungstenite may hold a frame of its own not yet written (a pong or a close
    /// answered while reading): flushed before a frame is written around it.
    control_pending: bool,
    /// The socket's place with its room's writer (`chat::fanout`), when natter's own server
    /// accepted it (it hands each request its raw connection).
    fast: Option<Arc<FastSocket>>,
}

impl Socket {
    pub(super) fn new(ws: Ws, fast: Option<Arc<FastSocket>>) -> Self {
        Socket {
            ws,
            heard: Instant::now(),
            control_pending: false,
            fast,
        }
    }

    /// Writes bytes in wire form as they are, in one write when the kernel takes them. A
    /// write that completes at once (the usual case) arms no timer.
    async fn write_wire(&mut self, wire: Bytes) -> Result<(), End> {
        let stream = self.ws.get_mut();
        let mut write = pin!(async move {
            stream.write_all(&wire).await?;
            stream.flush().await
        });
        let written = match write.as_mut().now_or_never() {
            Some(written) => written,
            None => match tokio::time::timeout(WRITE_TIMEOUT, write).await {
                Ok(written) => written,
                Err(_) => return Err(timed_out()),
            },
        };
        written.map_err(|_| End::Gone)
    }

    async fn send_message(&mut self, message: WsMessage) -> Result<(), End> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.ws.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Gone),
            Err(_) => Err(timed_out()),
        }
    }
}

fn timed_out() -> End {
    tracing::debug!("socket could not take a frame for 10 s; closing");
    End::Gone
}

impl Transport for Socket {
    const IN_PLACE: bool = true;
    const PRESENCE: bool = true;
    const KEEP_ALIVE: Duration = Duration::from_secs(30);

    /// Sends one HTML frame: its wire bytes (one text frame, or fragments of `MAX_FRAGMENT`),
    /// encoded once for every socket when the hub made the frame, written as they are to the
    /// connection, in one write when the kernel takes them. tungstenite keeps reading,
    /// pinging, answering pings and closing; what it may still hold of its own (a pong it
    /// could not write while reading) goes out first, so frames never interleave.
    async fn send(&mut self, frame: Frame, _seq: i64) -> Result<(), End> {
        self.flush_control().await?;
        self.write_wire(frame.wire()).await
    }

    fn fast(&self) -> Option<Arc<FastSocket>> {
        self.fast.clone()
    }

    async fn send_wire(&mut self, wire: Bytes) -> Result<(), End> {
        self.write_wire(wire).await
    }

    async fn flush_control(&mut self) -> Result<(), End> {
        if self.control_pending {
            match tokio::time::timeout(WRITE_TIMEOUT, self.ws.flush()).await {
                Ok(Ok(())) => self.control_pending = false,
                Ok(Err(_)) => return Err(End::Gone),
                Err(_) => return Err(timed_out()),
            }
        }
        Ok(())
    }

    async fn heard(&mut self) -> Result<Heard, End> {
        match self.ws.next().await {
            Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => Err(End::Gone),
            Some(Ok(message)) => {
                // tungstenite answers a ping when it reads one (and hands it over): it may be
                // left holding the pong if the connection did not take it at once.
                self.control_pending = true;
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
        // The writer stops; the rest of a frame it left goes out before the close frame.
        let pending = self.fast.as_ref().and_then(|fast| fast.close());
        if let Some(wire) = pending
            && self.write_wire(wire).await.is_err()
        {
            return;
        }
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
