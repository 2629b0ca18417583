//! Big room: one room of `--members` (10,000), each with a socket, and `--posts` posts (10),
//! each after the previous post's deliveries have all arrived and a second of quiet. One
//! table line per post: how many received it, p50/p99/max delivery and both sides' CPU.
//!
//! The 100 ms target is read against the p99 of the median post and of all posts pooled; a
//! miss is a `MISSED` row. A post that does not reach every member within 10 s fails the
//! run. Server CPU per delivery is over all posts (CPU readings come from `/proc` in 10 ms
//! ticks).

use std::{
    sync::{Arc, atomic::Ordering::Relaxed},
    time::{Duration, Instant},
};

use super::{
    World,
    cross::{WRITES, counter},
    drain_all, grid, open_sockets, populate, settle,
};
use crate::{
    Options,
    client::{self, STAMP, Tally},
    report::{Cpu, Report, Table, percentile},
    server::{Meter, Server},
};

pub(super) async fn bigroom(o: &Options) -> Result<Report, String> {
    let members = o.members.unwrap_or(10_000);
    let posts = o.posts.unwrap_or(10);
    let server = Server::start(o).await?;
    let mut report = Report::new("bigroom", &o.db);
    let world = populate(&server, members, 1, true).await?;
    let pairs = grid(&world, members);
    let concurrency = o.concurrency.unwrap_or(64);
    let (sockets, took) = open_sockets(&server.base, &world, &pairs, concurrency).await?;
    report.note(format!(
        "{} sockets in one room, opened in {:.1} s; {posts} posts, each after the last one's \
         deliveries have all arrived and a second of quiet",
        sockets.len(),
        took.as_secs_f64()
    ));
    let tally = Arc::new(Tally::default());
    let _drains = drain_all(sockets, &tally);
    settle().await;
    let http = client::http();
    let written_before = counter(&http, &server.base, WRITES).await;
    let mut table = bigroom_table(members);
    let (mut all, mut p99s) = (Vec::new(), Vec::new());
    let mut total = Cpu {
        server: server.pid.map(|_| Duration::ZERO),
        generator: Some(Duration::ZERO),
        wall: Duration::ZERO,
    };
    for i in 0..posts {
        let (lat, cpu) = one_post(&server, &world, &tally, &http, i, members).await?;
        let received = lat.len() as u64;
        report.check(
            received >= members as u64,
            format!("post {i} reached {received} of {members} members within 10 s"),
        );
        let p99 = percentile(&lat, 0.99) / 1e3;
        p99s.push(p99);
        table.line(vec![
            i.into(),
            received.into(),
            (percentile(&lat, 0.5) / 1e3).into(),
            p99.into(),
            (percentile(&lat, 1.0) / 1e3).into(),
            cpu.server.map(|c| c.as_secs_f64() * 1e3).into(),
            cpu.server_us_per(received).into(),
            cpu.generator.map(|c| c.as_secs_f64() * 1e3).into(),
            cpu.generator_busy_pct().into(),
        ]);
        let add = |a: Option<Duration>, b: Option<Duration>| Some(a? + b?);
        total = Cpu {
            server: add(total.server, cpu.server),
            generator: add(total.generator, cpu.generator),
            wall: total.wall + cpu.wall,
        };
        all.extend(lat);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    report.tables.push(table);
    let written = counter(&http, &server.base, WRITES).await - written_before;
    report.figure(
        "deliveries written by the room's writer",
        100.0 * written / all.len().max(1) as f64,
        "%",
    );
    report_pooled(&mut report, members, posts, all, p99s, &total);
    Ok(report)
}

/// The big-room table: one line per post.
/// Issue 19's targets for a post to a room of 10,000: its deliveries' p99, and the server's CPU
/// per delivery (one frame per message, nothing to batch).
const BIG_ROOM_P99_MS: f64 = 60.0;
const BIG_ROOM_CPU_US: f64 = 6.0;

fn bigroom_table(members: usize) -> Table {
    Table::new(
        &format!("big room: each post to {members} members"),
        &[
            "post",
            "received",
            "p50 [ms]",
            "p99 [ms]",
            "max [ms]",
            "server CPU [ms]",
            "server [µs/delivery]",
            "generator CPU [ms]",
            "generator busy [%]",
        ],
    )
}

/// Sends post `i` and waits until every member has received it (10 s at most): its
/// deliveries' latencies, sorted, and both sides' CPU meanwhile.
async fn one_post(
    server: &Server,
    world: &World,
    tally: &Tally,
    http: &reqwest::Client,
    i: usize,
    members: usize,
) -> Result<(Vec<u32>, Cpu), String> {
    tally.take_latencies();
    tally.recording.store(true, Relaxed);
    let meter = Meter::start(server);
    let body = format!("{STAMP}{}", client::now_us());
    world.people[i % members]
        .say(http, &server.base, &world.rooms[0], &body)
        .await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while tally.latencies.lock().len() < members && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cpu = meter.read();
    tally.recording.store(false, Relaxed);
    let mut lat = tally.take_latencies();
    lat.sort_unstable();
    Ok((lat, cpu))
}

/// The targets' rows, read against the median post's p99 and all posts pooled, and the CPU
/// of all posts.
fn report_pooled(
    report: &mut Report,
    members: usize,
    posts: usize,
    mut all: Vec<u32>,
    mut p99s: Vec<f64>,
    total: &Cpu,
) {
    all.sort_unstable();
    p99s.sort_by(f64::total_cmp);
    let median_p99 = p99s.get(p99s.len() / 2).copied().unwrap_or(f64::NAN);
    report.at_most(
        &format!("p99 delivery of one post to {members}, median post"),
        median_p99,
        "ms",
        Some(BIG_ROOM_P99_MS),
    );
    report.at_most(
        &format!("p99 delivery, all {posts} posts pooled"),
        percentile(&all, 0.99) / 1e3,
        "ms",
        Some(BIG_ROOM_P99_MS),
    );
    report.figure(
        "p99 delivery, worst post",
        p99s.last().copied().unwrap_or(f64::NAN),
        "ms",
    );
    report.figure(
        "p50 delivery, all posts pooled",
        percentile(&all, 0.5) / 1e3,
        "ms",
    );
    report.figure("max delivery, all posts", percentile(&all, 1.0) / 1e3, "ms");
    report.cpu(
        &format!("{posts} posts"),
        total,
        Some((all.len() as u64, "delivery")),
    );
    if let Some(us) = total.server_us_per(all.len() as u64) {
        report.at_most(
            "server CPU per delivery (one frame per message)",
            us,
            "µs",
            Some(BIG_ROOM_CPU_US),
        );
    }
    report
        .note("per-post CPU comes from /proc in 10 ms ticks; the per-delivery rows use all posts");
}
