//! A frame of HTML as the live transports send it, and, for one that many sockets share, its
//! WebSocket wire form encoded once.
//!
//! A server's WebSocket frames are not masked, so the bytes a frame puts on the wire (header
//! and payload) are the same for every socket. A frame the hub broadcasts to every socket of a
//! room is encoded once, where it is made; each socket writes those shared bytes as they are,
//! instead of tungstenite building the header and copying the payload into a buffer of its
//! own for every socket (`web::live::ws`).

use bytes::Bytes;
use tokio_tungstenite::tungstenite::{
    Utf8Bytes,
    protocol::frame::{
        Frame as WsFrame,
        coding::{Data, OpCode},
    },
};

/// The largest WebSocket frame sent; longer messages go out in fragments of this size (clients
/// hold at most one fragment's worth of a message being received, whatever its size).
pub const MAX_FRAGMENT: usize = 4096;

/// A frame of HTML, shared (reference-counted) by every feed that sends it.
#[derive(Clone, Debug)]
pub struct Frame {
    html: Utf8Bytes,
    /// The WebSocket wire form, when encoded ahead (`Frame::shared`).
    wire: Option<Bytes>,
}

impl Frame {
    /// A frame that many sockets send (a room's message, member-list change, typing line):
    /// its WebSocket form is encoded now, once.
    pub fn shared(html: Utf8Bytes) -> Self {
        let wire = Some(encode(&html));
        Frame { html, wire }
    }

    /// The HTML the frame carries.
    pub fn html(&self) -> &Utf8Bytes {
        &self.html
    }

    /// The bytes a server's WebSocket writes for the frame: a text message, whole up to
    /// `MAX_FRAGMENT` bytes, in fragments of that size beyond. Shared if encoded ahead,
    /// encoded now otherwise.
    pub fn wire(&self) -> Bytes {
        match &self.wire {
            Some(wire) => wire.clone(),
            None => encode(&self.html),
        }
    }
}

/// A frame one feed sends on its own (a replay, a notice): encoded, if at all, by the socket
/// that sends it.
impl From<Utf8Bytes> for Frame {
    fn from(html: Utf8Bytes) -> Self {
        Frame { html, wire: None }
    }
}

impl From<String> for Frame {
    fn from(html: String) -> Self {
        Frame::from(Utf8Bytes::from(html))
    }
}

/// `html` as a server's WebSocket puts it on the wire (unmasked), one text frame or a text
/// frame and continuations of `MAX_FRAGMENT` bytes each; tungstenite formats each header.
fn encode(html: &Utf8Bytes) -> Bytes {
    let payload = Bytes::from(html.clone());
    let fragments = payload.len().div_ceil(MAX_FRAGMENT).max(1);
    // A header is at most 4 bytes for a fragment (2 + a 16-bit length), 10 for a whole frame.
    let mut wire = Vec::with_capacity(payload.len() + 10 * fragments);
    if payload.len() <= MAX_FRAGMENT {
        let frame = WsFrame::message(payload, OpCode::Data(Data::Text), true);
        frame
            .format(&mut wire)
            .expect("writing to a Vec cannot fail");
        return Bytes::from(wire);
    }
    let mut start = 0;
    while start < payload.len() {
        let end = (start + MAX_FRAGMENT).min(payload.len());
        let opcode = if start == 0 {
            OpCode::Data(Data::Text)
        } else {
            OpCode::Data(Data::Continue)
        };
        let part = WsFrame::message(payload.slice(start..end), opcode, end == payload.len());
        part.format(&mut wire)
            .expect("writing to a Vec cannot fail");
        start = end;
    }
    Bytes::from(wire)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `wire` back as a client would: (opcode, final, payload) per frame.
    fn frames(mut wire: &[u8]) -> Vec<(u8, bool, Vec<u8>)> {
        let mut out = Vec::new();
        while !wire.is_empty() {
            let (fin, opcode, mask) = (wire[0] & 0x80 != 0, wire[0] & 0x0f, wire[1] & 0x80);
            assert_eq!(wire[0] & 0x70, 0, "no reserved bits");
            assert_eq!(mask, 0, "a server does not mask");
            let (len, at) = match wire[1] & 0x7f {
                126 => (u16::from_be_bytes([wire[2], wire[3]]) as usize, 4),
                127 => (
                    u64::from_be_bytes(wire[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                n => (n as usize, 2),
            };
            out.push((opcode, fin, wire[at..at + len].to_vec()));
            wire = &wire[at + len..];
        }
        out
    }

    #[test]
    fn a_small_frame_is_one_final_text_frame() {
        let sizes = [0, 9, 125, 126, 65_535 / 16, MAX_FRAGMENT];
        for html in sizes.map(|n| "x".repeat(n)) {
            let frame = Frame::shared(Utf8Bytes::from(html.clone()));
            assert_eq!(
                frames(&frame.wire()),
                vec![(1, true, html.as_bytes().to_vec())]
            );
            assert_eq!(frame.html().as_str(), html);
            assert_eq!(frame.wire(), Frame::from(html).wire());
        }
    }

    #[test]
    fn a_whole_frame_is_what_tungstenite_writes_for_a_text_message() {
        use tokio_tungstenite::tungstenite::{
            Message, WebSocket,
            protocol::{Role, WebSocketConfig},
        };
        for n in [0, 125, 126, 1000, MAX_FRAGMENT] {
            let html = "é".repeat(n / 2);
            let config = WebSocketConfig::default().write_buffer_size(0);
            let mut ws = WebSocket::from_raw_socket(
                std::io::Cursor::new(Vec::new()),
                Role::Server,
                Some(config),
            );
            ws.send(Message::text(html.clone())).unwrap();
            let written = ws.get_ref().get_ref().clone();
            assert_eq!(Frame::from(html).wire(), written);
        }
    }

    #[test]
    fn a_large_frame_goes_out_in_fragments_that_join_back() {
        let html: String = (0..3000).map(|i| format!("<i>{i}</i>é")).collect();
        let frame = Frame::from(html.clone());
        let parts = frames(&frame.wire());
        assert_eq!(parts.len(), html.len().div_ceil(MAX_FRAGMENT));
        assert_eq!(parts[0].0, 1);
        for (i, (opcode, fin, payload)) in parts.iter().enumerate() {
            assert_eq!(*fin, i == parts.len() - 1);
            assert!(payload.len() <= MAX_FRAGMENT);
            if i > 0 {
                assert_eq!(*opcode, 0);
            }
        }
        let joined: Vec<u8> = parts.into_iter().flat_map(|(_, _, p)| p).collect();
        assert_eq!(joined, html.as_bytes());
        // Encoded ahead or by the socket: the same bytes.
        assert_eq!(Frame::shared(Utf8Bytes::from(html)).wire(), frame.wire());
    }
}
