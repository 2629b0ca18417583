//! Simulated people: signed in through development sign-in, posting through the real form
//! path, holding real WebSockets with small buffers.

use std::{
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest, protocol::WebSocketConfig},
};

/// When the run started: posts carry `t=<µs since then>` so receivers can measure latency
/// without clocks of their own.
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

pub fn now_us() -> u64 {
    epoch().elapsed().as_micros() as u64
}

/// A signed-in person: their cookie and a CSRF token valid for any of their forms.
#[derive(Clone)]
pub struct Person {
    pub cookie: String,
    pub csrf: String,
}

fn extract<'a>(body: &'a str, marker: &str) -> Option<&'a str> {
    let start = body.find(marker)? + marker.len();
    let len = body[start..].find('"')?;
    Some(&body[start..start + len])
}

/// Cookie pairs from `Set-Cookie` headers.
fn cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(str::to_string)
        .collect()
}

/// An HTTP client that never follows redirects.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// Signs a new person up: development sign-in with `email`, then `username`.
pub async fn sign_up(
    http: &reqwest::Client,
    base: &str,
    email: &str,
    username: &str,
) -> Result<Person, String> {
    let landing = http
        .get(format!("{base}/"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let pre = cookies(&landing).join("; ");
    let body = landing.text().await.map_err(|e| e.to_string())?;
    let csrf = extract(&body, "name=\"csrf\" value=\"")
        .ok_or("no csrf on the landing page (is dev sign-in on?)")?
        .to_string();
    let signed = http
        .post(format!("{base}/auth/dev"))
        .header("cookie", &pre)
        .header("origin", base)
        .form(&[("email", email), ("csrf", &csrf)])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if signed.status() != 303 {
        return Err(format!("dev sign-in answered {}", signed.status()));
    }
    let cookie = cookies(&signed)
        .into_iter()
        .find(|c| c.contains("natter_session"))
        .ok_or("no session cookie")?;
    let form = http
        .get(format!("{base}/username"))
        .header("cookie", &cookie)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body = form.text().await.map_err(|e| e.to_string())?;
    let csrf = extract(&body, "name=\"csrf\" value=\"")
        .ok_or("no csrf on /username")?
        .to_string();
    let chosen = http
        .post(format!("{base}/username"))
        .header("cookie", &cookie)
        .header("origin", base)
        .form(&[("username", username), ("csrf", &csrf)])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if chosen.status() != 303 {
        return Err(format!("choosing a username answered {}", chosen.status()));
    }
    Ok(Person { cookie, csrf })
}

impl Person {
    pub async fn create_room(
        &self,
        http: &reqwest::Client,
        base: &str,
        name: &str,
    ) -> Result<String, String> {
        let r = self.post(http, base, "/rooms", &[("name", name)]).await?;
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or("no location")?;
        Ok(location.rsplit('/').next().unwrap_or_default().to_string())
    }

    pub async fn join(&self, http: &reqwest::Client, base: &str, code: &str) -> Result<(), String> {
        let r = self
            .post(http, base, "/rooms/join", &[("code", code)])
            .await?;
        if r.status() != 303 {
            return Err(format!("join answered {}", r.status()));
        }
        Ok(())
    }

    /// Posts through the form path (no JS): 303 on success.
    pub async fn say(
        &self,
        http: &reqwest::Client,
        base: &str,
        code: &str,
        body: &str,
    ) -> Result<(), String> {
        let client_id = format!("{:016x}", rand::random::<u64>());
        let r = self
            .post(
                http,
                base,
                &format!("/rooms/{code}/messages"),
                &[("body", body), ("client_id", &client_id)],
            )
            .await?;
        if r.status() != 303 {
            return Err(format!("post answered {}", r.status()));
        }
        Ok(())
    }

    async fn post(
        &self,
        http: &reqwest::Client,
        base: &str,
        path: &str,
        fields: &[(&str, &str)],
    ) -> Result<reqwest::Response, String> {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf", &self.csrf));
        http.post(format!("{base}{path}"))
            .header("cookie", &self.cookie)
            .header("origin", base)
            .form(&form)
            .send()
            .await
            .map_err(|e| e.to_string())
    }
}

pub type Ws = WebSocketStream<TcpStream>;

/// Small buffers, as the server uses: thousands of sockets in one process.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(16 << 20))
}

/// Opens a room's live socket as `person`.
pub async fn connect(base: &str, person: &Person, code: &str, after: i64) -> Result<Ws, String> {
    let addr = base.trim_start_matches("http://");
    let url = format!("ws://{addr}/rooms/{code}/ws?after={after}");
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    request
        .headers_mut()
        .insert("cookie", person.cookie.parse().map_err(|_| "cookie")?);
    request
        .headers_mut()
        .insert("origin", base.parse().map_err(|_| "origin")?);
    let stream = tcp_connect(addr).await?;
    let _ = stream.set_nodelay(true);
    let (ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config()))
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// Connects to `addr`. To a loopback server, each connection leaves from one of 64 loopback
/// addresses in turn: with thousands of connections to one address and port, Linux's search
/// for a free local port in `connect` scans the ephemeral range each time (it was half of
/// the generator's CPU at 19,000 sockets), and each source address has a port range of its own.
/// To natter in a namespace (`--net veth`) they leave from the veth's 64 addresses likewise.
pub async fn tcp_connect(addr: &str) -> Result<TcpStream, String> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let target: std::net::SocketAddr = match addr.parse() {
        Ok(target) => target,
        Err(_) => return TcpStream::connect(addr).await.map_err(|e| e.to_string()),
    };
    let std::net::SocketAddr::V4(v4) = target else {
        return TcpStream::connect(target).await.map_err(|e| e.to_string());
    };
    let n = NEXT.fetch_add(1, Relaxed);
    let source = if let Some(source) = crate::net::source_for(*v4.ip(), n) {
        source
    } else if v4.ip().is_loopback() {
        std::net::Ipv4Addr::new(127, 0, 1, 1 + (n % 64) as u8)
    } else {
        return TcpStream::connect(target).await.map_err(|e| e.to_string());
    };
    let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind((source, 0).into())
        .map_err(|e| format!("bind {source}: {e}"))?;
    socket.connect(target).await.map_err(|e| e.to_string())
}

/// What every receiving socket adds to.
#[derive(Default)]
pub struct Tally {
    pub deliveries: AtomicU64,
    pub closes: AtomicU64,
    /// Post→receive latencies in µs (sampled: every frame while `recording`).
    pub latencies: parking_lot::Mutex<Vec<u32>>,
    pub recording: std::sync::atomic::AtomicBool,
}

impl Tally {
    pub fn take_latencies(&self) -> Vec<u32> {
        std::mem::take(&mut *self.latencies.lock())
    }
}

/// The marker before a post's send time in its body.
pub const STAMP: &str = "bench t=";

/// The seq and (when present) the send stamp of each message in a frame.
///
/// Every delivery passes through here on the generator's one core, so the frame is crossed
/// once, jumping (memchr) between bytes that are rare in natter's markup: the `q` of each
/// message's `data-seq="N"`, and the `b` of a stamp before the next message's `data-seq`.
/// (A substring search per marker per article was 7% of the generator's CPU in fan-out.)
pub fn parse_frame(frame: &str, mut each: impl FnMut(i64, Option<u64>)) {
    const SEQ: &[u8; 10] = b"data-seq=\"";
    const _: () = assert!(STAMP.len() == 8 && STAMP.as_bytes()[0] == b'b');
    let bytes = frame.as_bytes();
    let mut next = find_marker(frame, 0, SEQ, 7);
    while let Some(at) = next {
        let (seq, len) = digits(&bytes[at + SEQ.len()..]);
        let body = at + SEQ.len() + len;
        next = find_marker(frame, body, SEQ, 7);
        let end = next.unwrap_or(frame.len());
        let stamp = find_marker(&frame[..end], body, STAMP_BYTES, 0)
            .and_then(|s| digits(&bytes[s + STAMP_BYTES.len()..end]).0);
        if let Some(seq) = seq.and_then(|s| i64::try_from(s).ok()) {
            each(seq, stamp);
        }
    }
}

const STAMP_BYTES: &[u8; 8] = b"bench t=";

/// Where `marker` starts at or after `from` (a char boundary), found by its ASCII byte at
/// `key` with `str::find(char)`, which is std's memchr.
fn find_marker<const N: usize>(
    text: &str,
    from: usize,
    marker: &[u8; N],
    key: usize,
) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = from;
    loop {
        let found = i + text[i..].find(marker[key] as char)?;
        if let Some(start) = found.checked_sub(key).filter(|s| *s >= from)
            && bytes.get(start..start + N) == Some(&marker[..])
        {
            return Some(start);
        }
        // Just past an ASCII byte: still a char boundary.
        i = found + 1;
    }
}

/// The number at the start of `bytes` (None when there is none) and how many digits it has.
fn digits(bytes: &[u8]) -> (Option<u64>, usize) {
    let len = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    let mut n: u64 = 0;
    for b in &bytes[..len] {
        n = match n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
        {
            Some(n) => n,
            None => return (None, len),
        };
    }
    ((len > 0).then_some(n), len)
}

/// Reads a socket until it ends, counting deliveries and (while recording) latencies. Keeps
/// the seqs seen when `seen` is given. Returns how it ended (close code).
pub async fn drain(mut ws: Ws, tally: Arc<Tally>, mut seen: Option<&mut Vec<i64>>) -> Option<u16> {
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(Message::Text(text)) => {
                let recording = tally.recording.load(Relaxed);
                let now = if recording { now_us() } else { 0 };
                let mut lat = Vec::new();
                parse_frame(&text, |seq, stamp| {
                    tally.deliveries.fetch_add(1, Relaxed);
                    if let Some(seen) = seen.as_deref_mut() {
                        seen.push(seq);
                    }
                    if recording && let Some(t) = stamp {
                        lat.push(now.saturating_sub(t).min(u32::MAX as u64) as u32);
                    }
                });
                if !lat.is_empty() {
                    tally.latencies.lock().extend(lat);
                }
            }
            Ok(Message::Close(frame)) => {
                tally.closes.fetch_add(1, Relaxed);
                return frame.map(|f| f.code.into());
            }
            Ok(_) => {}
            Err(_) => {
                tally.closes.fetch_add(1, Relaxed);
                return None;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    use natter::{
        store::{Member, Message},
        views::{members, messages::messages_append},
    };

    fn message(seq: i64, at: i64, body: &str) -> Message {
        Message {
            room_id: 1,
            seq,
            user_id: 7,
            author: "p6_a1b2c3".into(),
            body: body.into(),
            created_at: at,
            edited_at: None,
            deleted_at: None,
            event: seq,
            action: None,
            mentions: Default::default(),
            attachments: Default::default(),
        }
    }

    /// Two messages as a socket sends them when it is behind: one frame, rendered by natter's
    /// own views (a day divider, then the second message `continued` under the first), so
    /// the parser is tested against what natter really sends and cannot drift from it.
    fn frame() -> String {
        let at = 1_796_032_800_000; // 2026-11-30 10:00 UTC
        let batch = [
            message(41, at, "bench t=123456"),
            message(42, at + 1000, "a = b, no stamp here"),
        ];
        messages_append("ABCD-EFGH", None, &batch).into_string()
    }

    fn parsed(frame: &str) -> Vec<(i64, Option<u64>)> {
        let mut found = Vec::new();
        parse_frame(frame, |seq, stamp| found.push((seq, stamp)));
        found
    }

    #[test]
    fn each_message_of_a_frame_is_found_with_its_own_stamp() {
        let frame = frame();
        assert!(
            frame.contains("continued"),
            "the second is grouped: {frame}"
        );
        assert_eq!(parsed(&frame), [(41, Some(123456)), (42, None)]);
    }

    #[test]
    fn a_frame_without_messages_yields_nothing() {
        let member = Member {
            user_id: 3,
            username: "bench t=9".into(),
            joined_at: 0,
        };
        let counts = members::Counts {
            online: 1,
            members: 1,
        };
        let presence =
            members::changes_frame([members::Entry::Member(&member, true)], counts).into_string();
        assert_eq!(parsed(&presence), []);
        let list = members::list_frame(std::slice::from_ref(&member), |_| true, counts);
        assert_eq!(parsed(&list.into_string()), []);
        assert_eq!(parsed(""), []);
        assert_eq!(parsed("data-seq="), []);
    }

    #[test]
    fn text_around_the_markers_may_hold_any_characters() {
        let frame = r#"<article data-seq="7">é queue ☃ by bob bench t=88 b</article><article data-seq="8">qqé bench t=x</article>"#;
        assert_eq!(parsed(frame), [(7, Some(88)), (8, None)]);
    }

    #[test]
    fn a_stamp_before_any_message_belongs_to_none() {
        assert_eq!(
            parsed(r#"bench t=5 <article data-seq="3">x</article>"#),
            [(3, None)]
        );
    }
}
