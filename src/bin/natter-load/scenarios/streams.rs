//! Streams: holds `--sockets` (2,000) streamed rooms open, the conversation of pages without
//! JavaScript (`/rooms/{code}/live`), four per person (a session's limit) across `--rooms`
//! (10) rooms, for `--duration` (10 s), then posts `--posts` (20) messages one at a time into
//! the first room and times each one's arrival on that room's streams. Measures the server's
//! RSS per idle stream (target ≤ 16 KiB, a socket's order) and the delivery latency p50/p99.
//!
//! A stream that ends while held, or a message that misses a stream, fails the run.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use futures_util::{StreamExt, stream};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::watch,
};

use super::{Held, populate, settle};
use crate::{
    Options,
    client::{self, Person},
    report::Report,
    server::{Meter, Server},
};

/// When each of the timed room's streams showed the awaited text.
type Arrivals = Arc<parking_lot::Mutex<Vec<Instant>>>;

/// Streams one session may hold (natter's `STREAMS_PER_SESSION`).
const PER_PERSON: usize = 4;

pub(super) async fn streams(o: &Options) -> Result<Report, String> {
    let wanted = o.sockets.unwrap_or(2_000);
    let rooms = o.rooms.unwrap_or(10).max(PER_PERSON);
    let hold = o.duration.unwrap_or(Duration::from_secs(10));
    let posts = o.posts.unwrap_or(20);
    let server = Server::start(o).await?;
    let mut report = Report::new("streams", &o.db);
    let people = wanted.div_ceil(PER_PERSON);
    let world = populate(&server, people, rooms, true).await?;
    settle().await;
    let before = server.rss();
    // Person p streams rooms p, p+1, p+2, p+3 (mod rooms).
    let pairs: Vec<(usize, usize)> = (0..people)
        .flat_map(|p| (0..PER_PERSON).map(move |i| (p, (p + i) % rooms)))
        .take(wanted)
        .collect();
    let meter = Meter::start(&server);
    let started = Instant::now();
    let addr = server.base.trim_start_matches("http://").to_string();
    let opened: Vec<(usize, TcpStream)> = stream::iter(pairs.iter().copied())
        .map(|(p, r)| {
            let (addr, person, code) = (
                addr.clone(),
                world.people[p].clone(),
                world.rooms[r].clone(),
            );
            async move { open(&addr, &person, &code).await.map(|s| (r, s)) }
        })
        .buffer_unordered(o.concurrency.unwrap_or(64))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let took = started.elapsed();
    let opening = meter.read();
    let held = opened.len();
    // Each stream is read by a task of its own, which notes when a message it waits for shows.
    let closes = Arc::new(AtomicU64::new(0));
    let (want_tx, want_rx) = watch::channel(String::new());
    let arrivals: Arrivals = Arc::default();
    let mut first_room = 0;
    for (r, s) in opened {
        let watching = (r == 0).then(|| (want_rx.clone(), arrivals.clone()));
        first_room += usize::from(r == 0);
        tokio::spawn(read_stream(s, closes.clone(), watching));
    }
    settle().await;
    let after = server.rss();
    let meter = Meter::start(&server);
    tokio::time::sleep(hold).await;
    let holding = meter.read();
    report.at_least("streams held", held as f64, "streams", Some(wanted as f64));
    Held {
        unit: "idle stream",
        held,
        rss: (before, after),
        target: 16.0,
        opening,
        holding,
        hold,
    }
    .report(&mut report);
    report.note(format!("opened in {:.1} s", took.as_secs_f64()));

    // Latency: one post at a time into room 0, timed to its arrival on each of its streams.
    let http = client::http();
    let poster = &world.people[0];
    let mut latencies = Vec::new();
    let mut missed = 0;
    for i in 0..posts {
        let text = format!("stream-probe-{i}-{:08x}", rand::random::<u32>());
        arrivals.lock().clear();
        want_tx.send_replace(text.clone());
        let sent = Instant::now();
        poster
            .say(&http, &server.base, &world.rooms[0], &text)
            .await?;
        let deadline = sent + Duration::from_secs(5);
        while arrivals.lock().len() < first_room && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let got = arrivals.lock().clone();
        missed += first_room - got.len().min(first_room);
        latencies.extend(got.iter().map(|at| at.duration_since(sent)));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    latencies.sort();
    let pct = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    report.at_most(
        "delivery p50 (post sent → on the stream)",
        pct(0.5),
        "ms",
        None,
    );
    report.at_most("delivery p99", pct(0.99), "ms", None);
    report.note(format!(
        "{posts} posts into a room with {first_room} streams: {} arrivals",
        latencies.len()
    ));
    report.check(missed == 0, format!("{missed} arrivals missed"));
    let closed = closes.load(Relaxed);
    report.check(
        closed == 0,
        format!("{closed} of {held} streams ended while held"),
    );
    Ok(report)
}

/// Opens `code`'s stream as `person` and reads until its newest page has arrived.
async fn open(addr: &str, person: &Person, code: &str) -> Result<TcpStream, String> {
    let mut s = client::tcp_connect(addr).await?;
    let request = format!(
        "GET /rooms/{code}/live HTTP/1.1\r\nHost: {addr}\r\nCookie: {}\r\n\r\n",
        person.cookie
    );
    s.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !contains(&seen, b"role=\"log\"") {
        let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!(
                "a stream ended at once: {}",
                String::from_utf8_lossy(&seen)
            ));
        }
        seen.extend_from_slice(&buf[..n]);
    }
    if !seen.starts_with(b"HTTP/1.1 200") {
        return Err(format!(
            "a stream answered {}",
            String::from_utf8_lossy(&seen[..40.min(seen.len())])
        ));
    }
    Ok(s)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Reads a held stream until it ends (counted in `closes`); streams of the timed room note
/// when the awaited text shows.
async fn read_stream(
    mut s: TcpStream,
    closes: Arc<AtomicU64>,
    watching: Option<(watch::Receiver<String>, Arrivals)>,
) {
    let mut buf = vec![0u8; 8192];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => {
                closes.fetch_add(1, Relaxed);
                return;
            }
            Ok(n) => {
                if let Some((want, arrivals)) = &watching {
                    let want = want.borrow().clone();
                    if !want.is_empty() && contains(&buf[..n], want.as_bytes()) {
                        arrivals.lock().push(Instant::now());
                    }
                }
            }
        }
    }
}
