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
async fn tcp_connect(addr: &str) -> Result<TcpStream, String> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let target: std::net::SocketAddr = match addr.parse() {
        Ok(target) => target,
        Err(_) => return TcpStream::connect(addr).await.map_err(|e| e.to_string()),
    };
    let std::net::SocketAddr::V4(v4) = target else {
        return TcpStream::connect(target).await.map_err(|e| e.to_string());
    };
    if !v4.ip().is_loopback() {
        return TcpStream::connect(target).await.map_err(|e| e.to_string());
    }
    let n = NEXT.fetch_add(1, Relaxed) % 64;
    let source = std::net::Ipv4Addr::new(127, 0, 1, 1 + n as u8);
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
    pub latencies: std::sync::Mutex<Vec<u32>>,
    pub recording: std::sync::atomic::AtomicBool,
}

impl Tally {
    pub fn take_latencies(&self) -> Vec<u32> {
        std::mem::take(&mut *self.latencies.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The marker before a post's send time in its body.
pub const STAMP: &str = "bench t=";

/// The seq and (when present) the send stamp of each message in a frame.
pub fn parse_frame(frame: &str, mut each: impl FnMut(i64, Option<u64>)) {
    for article in frame.split("<article").skip(1) {
        let Some(seq) = extract(article, "data-seq=\"").and_then(|s| s.parse().ok()) else {
            continue;
        };
        let stamp = article.find(STAMP).and_then(|i| {
            let digits = &article[i + STAMP.len()..];
            let end = digits
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(digits.len());
            digits[..end].parse().ok()
        });
        each(seq, stamp);
    }
}

/// Reads a socket until it ends, counting deliveries and (while recording) latencies. Keeps
/// the seqs seen when `seen` is given. Returns how it ended (close code).
pub async fn drain(mut ws: Ws, tally: Arc<Tally>, mut seen: Option<&mut Vec<i64>>) -> Option<u16> {
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(Message::Text(text)) => {
                let recording = tally.recording.load(Relaxed);
                let now = now_us();
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
                    tally
                        .latencies
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend(lat);
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
