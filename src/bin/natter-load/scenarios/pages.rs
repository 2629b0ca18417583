//! Pages: room pages per second for one room of 5 members and 50 messages, then home pages
//! per second for a person in 200 rooms with unread messages in each (their counts, one
//! statement), each over `--concurrency` connections (32) for `--duration` (10 s), measured
//! with wrk (one thread; its CPU counts as the generator's) when it is installed, else with a
//! built-in client.
//!
//! Targets: ≥ 10,000 room pages/s and p99 ≤ 10 ms; a miss is a `MISSED` row. The home page
//! has none. No check here fails the run.

use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::populate;
use crate::{
    Options, client,
    report::{Report, percentile},
    server::{Meter, Server},
};

pub(super) async fn pages(o: &Options) -> Result<Report, String> {
    let server = Server::start(o).await?;
    let mut report = Report::new("pages", &o.db);
    let world = populate(&server, 5, 1, true).await?;
    let http = client::http();
    for i in 0..50 {
        world.people[i % 5]
            .say(
                &http,
                &server.base,
                &world.rooms[0],
                &format!("message number {i} with a little text in it"),
            )
            .await?;
    }
    let url = format!("{}/rooms/{}", server.base, world.rooms[0]);
    let cookie = world.people[0].cookie.clone();
    let meter = Meter::start(&server);
    let (rate, p99, secs) = measure(o, &mut report, &url, &cookie).await;
    let cpu = meter.read();
    report.at_least(
        "room pages per second (5 members, 50 messages)",
        rate,
        "/s",
        Some(10_000.0),
    );
    report.at_most("p99 page latency", p99, "ms", Some(10.0));
    let pages = (rate * secs).round() as u64;
    report.cpu("pages", &cpu, Some((pages, "page")));

    // Home for someone in 200 rooms, each with 3 unread messages and one with 150 (its count
    // stops at 100).
    let world = populate(&server, 2, HOME_ROOMS, true).await?;
    for (r, code) in world.rooms.iter().enumerate() {
        let n = if r == 0 { 150 } else { 3 };
        for i in 0..n {
            world.people[1]
                .say(
                    &http,
                    &server.base,
                    code,
                    &format!("unread {i} in room {r}"),
                )
                .await?;
        }
    }
    let url = format!("{}/home", server.base);
    let cookie = world.people[0].cookie.clone();
    let meter = Meter::start(&server);
    let (rate, p99, secs) = measure(o, &mut report, &url, &cookie).await;
    let cpu = meter.read();
    report.at_least(
        "home pages per second (200 rooms, unread counts)",
        rate,
        "/s",
        None,
    );
    report.at_most("p99 home page latency", p99, "ms", None);
    let pages = (rate * secs).round() as u64;
    report.cpu("home", &cpu, Some((pages, "page")));
    Ok(report)
}

/// The rooms of the person whose home page is measured.
const HOME_ROOMS: usize = 200;

/// Pages per second, p99 (ms) and the seconds measured for `url` asked with `cookie`.
async fn measure(o: &Options, report: &mut Report, url: &str, cookie: &str) -> (f64, f64, f64) {
    let connections = o.concurrency.unwrap_or(32);
    let duration = o.duration.unwrap_or(Duration::from_secs(10));
    let wrk = std::process::Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{}s", duration.as_secs().max(1)),
            "--latency",
        ])
        .args(["-H", &format!("Cookie: {cookie}"), url])
        .output();
    match wrk {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            report.note("measured with wrk (1 thread; its CPU counts as the generator's)");
            let secs = duration.as_secs().max(1) as f64;
            (wrk_rate(&text), wrk_p99(&text), secs)
        }
        _ => {
            report.note("wrk not found: measured with the built-in client".to_string());
            let (rate, p99) = builtin_pages(url, cookie, connections, duration).await;
            (rate, p99, duration.as_secs_f64())
        }
    }
}

fn wrk_rate(text: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn wrk_p99(text: &str) -> f64 {
    let Some(line) = text.lines().find(|l| l.trim_start().starts_with("99%")) else {
        return f64::NAN;
    };
    let value = line.split_whitespace().nth(1).unwrap_or("");
    let (number, unit) = value.split_at(
        value
            .find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(value.len()),
    );
    let n: f64 = number.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        _ => n,
    }
}

async fn builtin_pages(
    url: &str,
    cookie: &str,
    connections: usize,
    duration: Duration,
) -> (f64, f64) {
    let http = client::http();
    let deadline = Instant::now() + duration;
    let mut set = JoinSet::new();
    for _ in 0..connections {
        let (http, url, cookie) = (http.clone(), url.to_string(), cookie.to_string());
        set.spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                if let Ok(r) = http.get(&url).header("cookie", &cookie).send().await {
                    let _ = r.bytes().await;
                }
                lat.push(t.elapsed().as_micros() as u32);
            }
            lat
        });
    }
    let mut all = Vec::new();
    while let Some(Ok(lat)) = set.join_next().await {
        all.extend(lat);
    }
    all.sort_unstable();
    (
        all.len() as f64 / duration.as_secs_f64(),
        percentile(&all, 0.99) / 1000.0,
    )
}
