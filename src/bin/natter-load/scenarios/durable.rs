//! Durable posts: posts per second through the form POST path with nobody listening:
//! `--members` people (1,000), each in their slice's room of `--rooms` (100), posted for by
//! `--concurrency` workers (128) for `--duration` (10 s). A post counts when answered 303.
//! With `--mention` each post mentions its room's creator, so it stores a mention too.
//!
//! Targets: ≥ 5,000/s on SQLite, ≥ 4,000/s on PostgreSQL; a miss is a `MISSED` row. The run
//! fails unless the database holds exactly the acknowledged posts.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use tokio::task::JoinSet;

use super::{check_stored, populate};
use crate::{
    Options, client,
    report::Report,
    server::{Meter, Server},
};

pub(super) async fn durable(o: &Options) -> Result<Report, String> {
    let people = o.members.unwrap_or(1000);
    let rooms = o.rooms.unwrap_or(100).min(people);
    let concurrency = o.concurrency.unwrap_or(128);
    let server = Server::start(o).await?;
    let mut report = Report::new("durable", &o.db);
    let world = populate(&server, people, rooms, false).await?;
    let http = client::http();
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + o.duration.unwrap_or(Duration::from_secs(10));
    let meter = Meter::start(&server);
    let mut workers = JoinSet::new();
    for w in 0..concurrency {
        let (http, base) = (http.clone(), server.base.clone());
        let (ok, failed) = (ok.clone(), failed.clone());
        let people = world.people.clone();
        let rooms = world.rooms.clone();
        let n = people.len();
        // With --mention, each post names its room's creator (a member: the post stores a
        // mention too).
        let texts: Vec<String> = (0..rooms.len())
            .map(|r| match o.mention {
                true => format!("durable bench post @{}", world.names[r * n / rooms.len()]),
                false => "durable bench post".to_string(),
            })
            .collect();
        workers.spawn(async move {
            let mut i = w;
            while Instant::now() < deadline {
                let p = i % n;
                let r = p * rooms.len() / n;
                match people[p].say(&http, &base, &rooms[r], &texts[r]).await {
                    Ok(()) => ok.fetch_add(1, Relaxed),
                    Err(_) => failed.fetch_add(1, Relaxed),
                };
                i += concurrency;
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let cpu = meter.read();
    let elapsed = cpu.wall.as_secs_f64();
    let posted = ok.load(Relaxed);
    let target = if o.db == "sqlite" { 5_000.0 } else { 4_000.0 };
    report.at_least(
        "durable posts per second (form POST path)",
        posted as f64 / elapsed,
        "/s",
        Some(target),
    );
    report.cpu("posting", &cpu, Some((posted, "post")));
    report.note(format!(
        "{posted} posts answered 303 in {elapsed:.1} s ({} failed)",
        failed.load(Relaxed),
    ));
    check_stored(&server, &mut report, posted).await;
    Ok(report)
}
