//! Exporting one's data from the real binary: 100,000 messages stream out in bounded memory.
//! Measured on the natter process alone: the web suite's process runs many tests at once, so
//! its resident memory says nothing about one export.

use std::{
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use sqlx::{AssertSqlSafe, ConnectOptions, sqlite::SqliteConnectOptions};

use crate::common::Browser;
use crate::procs::{Natter, free_port};

/// The resident memory of process `pid`, in KiB (0 once it is gone).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// 100,000 messages (seeded with direct SQL, as fast as SQLite takes them) export as valid
/// JSON with every message, while the server's resident memory grows by far less than the
/// export's size: it holds one page of rows at a time. The client writes the body to a file as
/// it arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_of_100000_messages_streams_in_bounded_memory() {
    const N: i64 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/natter.db", dir.path().display());
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let natter = Natter::start_on(port, &db, &base, &[]).await;
    let ada = Browser::signed_in(&base, "acct-big@example.org", "ada").await;
    let code = ada.create_room("Big").await;

    let mut conn = SqliteConnectOptions::from_str(&db)
        .unwrap()
        .busy_timeout(Duration::from_secs(30))
        .connect()
        .await
        .expect("the database");
    let (ada_id, room_id): (i64, i64) = sqlx::query_as(
        "SELECT u.id, r.id FROM users u, rooms r WHERE u.username = 'ada' AND r.code = $1",
    )
    .bind(&code)
    .fetch_one(&mut conn)
    .await
    .expect("ada and her room");
    sqlx::query(AssertSqlSafe(format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {N}) \
         INSERT INTO messages (room_id, seq, user_id, body, created_at, kind) \
         SELECT {room_id}, i, {ada_id}, 'message ' || i || ' <&\"''>\\ \u{1F600}', 1700000000000 + i, 'text' FROM n"
    )))
    .execute(&mut conn)
    .await
    .expect("seed");
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE rooms SET last_seq = {N} WHERE id = {room_id}"
    )))
    .execute(&mut conn)
    .await
    .expect("seed");
    drop(conn);

    let pid = natter.child.id();
    let before = rss_kib(pid);
    let peak = Arc::new(AtomicU64::new(before));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    // Her cookies, without a limit on the whole answer: on a loaded machine a debug build
    // takes tens of seconds.
    let http = reqwest::Client::builder()
        .cookie_provider(ada.jar.clone())
        .timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let mut response = http
        .get(format!("{base}/profile/export"))
        .send()
        .await
        .expect("export");
    assert_eq!(response.status(), 200);
    let path = dir.path().join("export.json");
    let mut file = std::fs::File::create(&path).unwrap();
    let mut size = 0usize;
    while let Some(chunk) = response.chunk().await.expect("a chunk") {
        size += chunk.len();
        std::io::Write::write_all(&mut file, &chunk).unwrap();
    }
    sampling.store(false, Ordering::Relaxed);
    sampler.await.unwrap();
    let growth = peak.load(Ordering::Relaxed).saturating_sub(before);
    eprintln!(
        "export of {N} messages: {size} bytes in {:?}; server resident memory before {before} KiB, growth at peak {growth} KiB",
        started.elapsed()
    );

    let export: serde_json::Value =
        serde_json::from_reader(std::io::BufReader::new(std::fs::File::open(&path).unwrap()))
            .expect("valid JSON");
    let messages = export["messages"].as_array().unwrap();
    assert_eq!(messages.len() as i64, N, "every message is there");
    assert_eq!(messages[0]["body"], "message 1 <&\"'>\\ \u{1F600}");
    assert_eq!(messages[N as usize - 1]["seq"], N);
    // About 11 MiB of growth was measured for an 11 MB export, most of it the SQLite read
    // pool's page caches (2 MiB per connection), which do not grow with the export. A server
    // that held the export (its rows, then its text) would need well over twice its size.
    assert!(
        growth < 24 * 1024,
        "the server grew by {growth} KiB for an export of {size} bytes"
    );
}
