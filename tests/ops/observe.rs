//! What an operator watches: `/metrics` and the logs.

use crate::common::metric;
use crate::common::{Backend, Browser, TestApp, assert_exactly, eventually};
use crate::multi::WAIT;
use crate::procs::Natter;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_sockets_posts_deliveries_latency_and_responses_by_status() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let ada = app.signed_in("ada@example.org", "ada").await;
    let code = ada.create_room("Watched").await;
    let mut socket = ada.socket(&code, Some(0)).await.unwrap();
    for i in 0..3 {
        ada.say(&code, &format!("counted {i}")).await;
    }
    assert_exactly(&socket.seqs_until(3, WAIT).await, 1, 3);
    assert_eq!(ada.get("/rooms/ZZZZ-ZZZZ").await.status, 404);
    let m = |series: &'static str| metric(&app.base, series);
    assert_eq!(m("natter_sockets_open").await, Some(1.0));
    assert_eq!(m("natter_socket_upgrades_total").await, Some(1.0));
    assert_eq!(m("natter_messages_posted_total").await, Some(3.0));
    // A frame is counted as it leaves; the socket may read it a moment before.
    for series in [
        "natter_deliveries_total",
        "natter_delivery_latency_seconds_count",
        "natter_delivery_latency_seconds_bucket{le=\"+Inf\"}",
    ] {
        assert!(
            eventually(WAIT, || async { m(series).await == Some(3.0) }).await,
            "{series}: {:?}",
            m(series).await
        );
    }
    assert!(m("natter_delivery_latency_seconds_sum").await > Some(0.0));
    // Each post committed in a batch of its own (each was answered before the next).
    assert_eq!(m("natter_store_commit_seconds_count").await, Some(3.0));
    assert!(m("natter_store_commit_seconds_sum").await > Some(0.0));
    assert!(m("natter_resyncs_total").await.is_some());
    for (status, at_least) in [("101", 1.0), ("200", 1.0), ("303", 3.0), ("404", 1.0)] {
        let series = format!("natter_http_responses_total{{status=\"{status}\"}}");
        let n = metric(&app.base, &series).await;
        assert!(n >= Some(at_least), "{series}: {n:?}");
    }
}

/// The log's JSON lines that carry request id `id`.
fn lines_of(log: &str, id: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["span"]["id"] == id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_request_id_on_every_line_a_request_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/natter.db", dir.path().display());
    let log = dir.path().join("natter.log");
    let port = crate::procs::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _natter = Natter::start_logging(port, &db, &base, log.clone()).await;
    let ada = Browser::signed_in(&base, "ada@example.org", "ada").await;
    let created = ada
        .post_form("/home", "/rooms", &[("name", "Logged")])
        .await;
    assert_eq!(created.status, 303);
    let code = created.location().trim_start_matches("/rooms/").to_string();
    let id = created.header("x-request-id").unwrap().to_string();
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        eventually(WAIT, || async {
            let lines = lines_of(&read(), &id);
            let said = |m: &str| lines.iter().any(|l| l["message"] == m);
            said("room created") && said("request")
        })
        .await,
        "the handler's line and the request line both carry {id}:\n{}",
        read()
    );
    let everything = read();
    let not_json: Vec<&str> = everything
        .lines()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_err())
        .collect();
    assert!(not_json.is_empty(), "every line is JSON: {not_json:?}");

    // A post the database refuses: the writer's report of it is in the poster's request.
    crate::writer::poison(&db).await;
    let csrf = ada.csrf_from(&format!("/rooms/{code}")).await;
    let refused = ada
        .post(
            &format!("/rooms/{code}/messages"),
            &[("body", "poison"), ("client_id", "poison"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(refused.status, 503);
    assert!(
        refused.body.contains("poison"),
        "the text stays in the composer"
    );
    let id = refused.header("x-request-id").unwrap().to_string();
    assert!(
        eventually(WAIT, || async {
            lines_of(&read(), &id)
                .iter()
                .any(|l| l["message"] == "post not stored" && l["level"] == "ERROR")
        })
        .await,
        "the writer's error carries {id}:\n{}",
        read()
    );
}

/// `natter-load --net veth` (README: Benchmarks, a remote client) runs natter in a network
/// namespace of its own, reached over a veth pair, and removes both when it ends. Needs root
/// and `ip`; skipped otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn natter_load_reaches_natter_over_a_veth_pair_and_cleans_up() {
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    });
    let has_ip = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !root || !has_ip {
        eprintln!("skipping: a network namespace needs root and `ip` (iproute2)");
        return;
    }
    let run = tokio::task::spawn_blocking(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_natter-load"))
            .args([
                "bigroom",
                "--net",
                "veth",
                "--members",
                "20",
                "--posts",
                "2",
            ])
            .args(["--no-pin"])
            .output()
    })
    .await
    .unwrap()
    .expect("natter-load runs");
    let output = String::from_utf8_lossy(&run.stdout) + String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{output}");
    // Every post reached all 20 members over the pair (the run fails otherwise).
    let ns = output
        .split_whitespace()
        .find(|w| w.starts_with("natter-load-"))
        .unwrap_or_else(|| panic!("no namespace named: {output}"))
        .to_string();
    let left = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip");
    assert!(
        !String::from_utf8_lossy(&left.stdout).contains(&ns),
        "{ns} removed"
    );
    // The kernel removes the outer end of the pair after the namespace, in the background.
    let outer = format!("nlh{}", ns.trim_start_matches("natter-load-"));
    let pair_left = || {
        let links = std::process::Command::new("ip")
            .args(["-o", "link"])
            .output()
            .expect("ip");
        String::from_utf8_lossy(&links.stdout)
            .split_whitespace()
            .any(|w| {
                w.strip_prefix(outer.as_str())
                    .is_some_and(|rest| rest.starts_with(['@', ':']))
            })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pair_left() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(!pair_left(), "the pair removed");
}
