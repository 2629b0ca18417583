//! Slow clients against the real binary under a real open-file limit (issue 13): natter raises
//! its soft limit to the hard one, and when even that is exhausted by connections that never
//! finish a request, their deadline gives the descriptors back, so everyone else is served
//! again.

use std::time::{Duration, Instant};

use tokio::{io::AsyncWriteExt, net::TcpStream};

use crate::procs::{Natter, free_port};

/// The JSON log lines whose message is `message`.
fn logged(log: &std::path::Path, message: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["message"] == message)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn natter_raises_its_open_file_limit_to_the_hard_limit() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/natter.db", dir.path().display());
    let log = dir.path().join("natter.log");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let natter =
        Natter::start_with_open_files(port, &db, &base, &[], log.clone(), (256, 4096)).await;
    let said = logged(&log, "open-file limit");
    assert_eq!(said.len(), 1, "{said:?}");
    assert_eq!(said[0]["limit"], 4096, "{said:?}");
    natter.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_past_the_open_file_limit_do_not_lock_everyone_out() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/natter.db", dir.path().display());
    let log = dir.path().join("natter.log");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    // 128 descriptors and no room to raise them: 300 half-sent requests are more than natter
    // can hold at once.
    let settings = [("NATTER_HEADER_TIMEOUT", "1s")];
    let natter =
        Natter::start_with_open_files(port, &db, &base, &settings, log.clone(), (128, 128)).await;
    let mut held = Vec::new();
    for _ in 0..300 {
        // Past what natter holds and its listen queue, a connect waits for room: it gets
        // room in time only if natter lets go of the half-sent ones.
        let connect = TcpStream::connect(("127.0.0.1", port));
        let Ok(Ok(mut tcp)) = tokio::time::timeout(Duration::from_secs(10), connect).await else {
            break;
        };
        let _ = tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
        held.push(tcp);
    }
    // Natter ran out of descriptors; still, /healthz answers once the deadlines free them.
    let asked = Instant::now();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let answer = http.get(format!("{base}/healthz")).send().await;
    assert!(
        answer.is_ok_and(|r| r.status() == 200),
        "/healthz did not answer while 300 half-sent requests were open"
    );
    let waited = asked.elapsed();
    // Running out was logged, and not once per failed accept.
    let out = logged(
        &log,
        "cannot accept connections (out of file descriptors?); retrying",
    );
    assert!(!out.is_empty(), "running out of descriptors was not logged");
    assert!(
        out.len() as u64 <= waited.as_secs() / 10 + 2,
        "{} lines in {waited:?}",
        out.len()
    );
    drop(held);
    natter.terminate();
}
