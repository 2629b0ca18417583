//! The scenarios of the benchmark issue, each with its targets.

use std::{
    collections::BTreeSet,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use futures_util::{StreamExt, stream};
use tokio::task::JoinSet;

use crate::{
    Options,
    client::{self, Person, STAMP, Tally, Ws},
    report::{Report, percentile},
    server::{self, Server},
};

pub async fn run(o: Options) -> Result<(), String> {
    client::epoch();
    let report = match o.scenario.as_str() {
        "idle" => idle(&o).await?,
        "handshakes" => handshakes(&o).await?,
        "fanout" => fanout(&o).await?,
        "bigroom" => bigroom(&o).await?,
        "saturation" => saturation(&o).await?,
        "durable" => durable(&o).await?,
        "pages" => pages(&o).await?,
        "cross" => cross(&o).await?,
        other => return Err(format!("unknown scenario {other} (try --help)")),
    };
    report.print();
    if let Some(path) = &o.json {
        report.write_json(path)?;
    }
    Ok(())
}

/// People and rooms: `members` people, `rooms` rooms, everyone in every room.
struct World {
    people: Vec<Person>,
    rooms: Vec<String>,
}

async fn populate(
    server: &Server,
    people: usize,
    rooms: usize,
    everyone_everywhere: bool,
) -> Result<World, String> {
    let http = client::http();
    let base = server.base.clone();
    let started = Instant::now();
    let tag = format!("{:06x}", rand::random::<u32>() & 0xffffff);
    let people: Vec<Person> = stream::iter(0..people)
        .map(|i| {
            let (http, base, tag) = (http.clone(), base.clone(), tag.clone());
            async move {
                client::sign_up(
                    &http,
                    &base,
                    &format!("p{i}-{tag}@bench.example"),
                    &format!("p{i}_{tag}"),
                )
                .await
            }
        })
        .buffered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let mut codes = Vec::new();
    for r in 0..rooms {
        let owner = if everyone_everywhere {
            0
        } else {
            r * people.len() / rooms
        };
        codes.push(
            people[owner]
                .create_room(&http, &base, &format!("Room {r}"))
                .await?,
        );
    }
    // Joins: everyone everywhere, or each person in their slice's room.
    let joins: Vec<(usize, usize)> = if everyone_everywhere {
        (0..rooms)
            .flat_map(|r| (1..people.len()).map(move |p| (p, r)))
            .collect()
    } else {
        (0..people.len())
            .map(|p| (p, p * rooms / people.len()))
            .filter(|(p, r)| *p != r * people.len() / rooms)
            .collect()
    };
    stream::iter(joins)
        .map(|(p, r)| {
            let (http, base, person, code) = (
                http.clone(),
                base.clone(),
                people[p].clone(),
                codes[r].clone(),
            );
            async move { person.join(&http, &base, &code).await }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    eprintln!(
        "  set up {} people in {} rooms in {:.1} s",
        people.len(),
        codes.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(World {
        people,
        rooms: codes,
    })
}

/// Opens `(person, room)` sockets with `concurrency` handshakes in flight; returns them with
/// how long it took.
async fn open_sockets(
    base: &str,
    world: &World,
    pairs: &[(usize, usize)],
    concurrency: usize,
) -> Result<(Vec<(usize, Ws)>, Duration), String> {
    let started = Instant::now();
    let sockets: Vec<(usize, Ws)> = stream::iter(pairs.iter().copied())
        .map(|(p, r)| {
            let (base, person, code) = (
                base.to_string(),
                world.people[p].clone(),
                world.rooms[r].clone(),
            );
            async move {
                client::connect(&base, &person, &code, 0)
                    .await
                    .map(|ws| (r, ws))
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    Ok((sockets, started.elapsed()))
}

/// Every (person, room) pair of a world where everyone is everywhere, `n` of them.
fn grid(world: &World, n: usize) -> Vec<(usize, usize)> {
    (0..world.rooms.len())
        .flat_map(|r| (0..world.people.len()).map(move |p| (p, r)))
        .take(n)
        .collect()
}

fn drain_all(sockets: Vec<(usize, Ws)>, tally: &Arc<Tally>) -> JoinSet<Option<u16>> {
    let mut set = JoinSet::new();
    for (_, ws) in sockets {
        let tally = tally.clone();
        set.spawn(async move { client::drain(ws, tally, None).await });
    }
    set
}

async fn settle() {
    tokio::time::sleep(Duration::from_secs(3)).await;
}

async fn idle(o: &Options) -> Result<Report, String> {
    let server = Server::start(o).await?;
    let mut report = Report::new("idle", &o.db);
    let rooms = o.rooms.min(o.sockets.max(1));
    let people = o.sockets.div_ceil(rooms);
    let world = populate(&server, people, rooms, true).await?;
    settle().await;
    let before = server.rss();
    let pairs = grid(&world, o.sockets);
    let (sockets, took) = open_sockets(&server.base, &world, &pairs, o.concurrency).await?;
    let held = sockets.len();
    let tally = Arc::new(Tally::default());
    let _drains = drain_all(sockets, &tally);
    settle().await;
    let after = server.rss();
    report.at_least(
        "sockets held by one process",
        held as f64,
        "sockets",
        Some(19_000.0),
    );
    if let (Some(b), Some(a)) = (before, after) {
        let per = (a.saturating_sub(b)) as f64 / held as f64 / 1024.0;
        report.at_most("server RSS per socket", per, "KiB", Some(13.5));
        report.note(format!(
            "server RSS {:.1} MiB before sockets, {:.1} MiB with {held}",
            b as f64 / 1048576.0,
            a as f64 / 1048576.0
        ));
    }
    if let Some(g) = server::rss_of(std::process::id()) {
        report.note(format!("generator RSS {:.1} MiB", g as f64 / 1048576.0));
    }
    report.note(format!("opened in {:.1} s", took.as_secs_f64()));
    Ok(report)
}

async fn handshakes(o: &Options) -> Result<Report, String> {
    let server = Server::start(o).await?;
    let mut report = Report::new("handshakes", &o.db);
    let rooms = o.rooms.min(o.sockets.max(1));
    let world = populate(&server, o.sockets.div_ceil(rooms), rooms, true).await?;
    settle().await;
    let pairs = grid(&world, o.sockets);
    let (cpu0, gen0) = (server.cpu(), server::own_cpu());
    let (sockets, took) = open_sockets(&server.base, &world, &pairs, o.concurrency).await?;
    let rate = sockets.len() as f64 / took.as_secs_f64();
    report.cpu(delta(server.cpu(), cpu0), delta(server::own_cpu(), gen0));
    report.at_least(
        "signed-in socket upgrades per second",
        rate,
        "/s",
        (o.db == "sqlite").then_some(5_000.0),
    );
    report.note(format!(
        "{} upgrades in {:.2} s, {} in flight",
        sockets.len(),
        took.as_secs_f64(),
        o.concurrency
    ));
    Ok(report)
}

fn delta(now: Option<Duration>, then: Option<Duration>) -> Option<Duration> {
    Some(now?.saturating_sub(then?))
}

/// Posts at `posts_per_s` into the rooms (round robin, random member) until `stop`; each body
/// carries its send time. Returns how many posts were accepted.
async fn post_at_rate(
    base: &str,
    world: &World,
    posts_per_s: f64,
    for_how_long: Duration,
    members: usize,
) -> (u64, u64) {
    let http = client::http();
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / posts_per_s));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let deadline = Instant::now() + for_how_long;
    let mut n = 0usize;
    let in_flight = Arc::new(tokio::sync::Semaphore::new(512));
    while Instant::now() < deadline {
        tick.tick().await;
        let room = n % world.rooms.len();
        let person = world.people[rand::random_range(0..members.min(world.people.len()))].clone();
        let (http, base, code) = (http.clone(), base.to_string(), world.rooms[room].clone());
        let (ok, failed) = (ok.clone(), failed.clone());
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        tokio::spawn(async move {
            let body = format!("{STAMP}{}", client::now_us());
            match person.say(&http, &base, &code, &body).await {
                Ok(()) => ok.fetch_add(1, Relaxed),
                Err(_) => failed.fetch_add(1, Relaxed),
            };
            drop(permit);
        });
        n += 1;
    }
    // Let the last posts land.
    let _ = in_flight.acquire_many(512).await;
    (ok.load(Relaxed), failed.load(Relaxed))
}

/// One offered delivery rate against an established fan-out: what arrives, how fast.
struct Step {
    offered: f64,
    achieved: f64,
    p50_ms: f64,
    p99_ms: f64,
    server_cpu_per_delivery_us: Option<f64>,
    failed_posts: u64,
}

async fn fanout_step(
    server: &Server,
    world: &World,
    tally: &Arc<Tally>,
    deliveries_per_s: f64,
    members: usize,
    duration: Duration,
) -> Step {
    let posts_per_s = deliveries_per_s / members as f64;
    tally.take_latencies();
    tally.recording.store(true, Relaxed);
    let (d0, c0, t0) = (tally.deliveries.load(Relaxed), server.cpu(), Instant::now());
    let (_ok, failed) = post_at_rate(&server.base, world, posts_per_s, duration, members).await;
    // Deliveries still in flight belong to this step.
    tokio::time::sleep(Duration::from_millis(500)).await;
    tally.recording.store(false, Relaxed);
    let elapsed = t0.elapsed().as_secs_f64() - 0.5;
    let delivered = tally.deliveries.load(Relaxed) - d0;
    let mut lat = tally.take_latencies();
    lat.sort_unstable();
    let cpu = delta(server.cpu(), c0);
    Step {
        offered: deliveries_per_s,
        achieved: delivered as f64 / elapsed,
        p50_ms: percentile(&lat, 0.5) / 1000.0,
        p99_ms: percentile(&lat, 0.99) / 1000.0,
        server_cpu_per_delivery_us: cpu.map(|c| c.as_secs_f64() * 1e6 / delivered.max(1) as f64),
        failed_posts: failed,
    }
}

async fn fanout(o: &Options) -> Result<Report, String> {
    let server = Server::start(o).await?;
    let mut report = Report::new("fanout", &o.db);
    let world = populate(&server, o.members, o.rooms, true).await?;
    let pairs = grid(&world, o.members * o.rooms);
    let (sockets, _) = open_sockets(&server.base, &world, &pairs, o.concurrency).await?;
    let tally = Arc::new(Tally::default());
    let _drains = drain_all(sockets, &tally);
    settle().await;
    report.note(format!(
        "{} rooms x {} members = {} sockets",
        o.rooms,
        o.members,
        pairs.len()
    ));
    let mut capacity: f64 = 0.0;
    for rate in &o.rates {
        let step = fanout_step(&server, &world, &tally, *rate, o.members, o.duration).await;
        let sustained =
            step.achieved >= 0.95 * step.offered && step.p99_ms < 1000.0 && step.failed_posts == 0;
        if sustained {
            capacity = capacity.max(step.achieved);
        }
        report.note(format!(
            "offered {:.0}/s: delivered {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, server CPU {} µs/delivery, failed posts {}{}",
            step.offered,
            step.achieved,
            step.p50_ms,
            step.p99_ms,
            step.server_cpu_per_delivery_us.map_or("?".into(), |c| format!("{c:.2}")),
            step.failed_posts,
            if sustained { "" } else { "  (not sustained)" }
        ));
        if (*rate - 60_000.0).abs() < 1.0 {
            report.at_most(
                "p50 post→receive at 60,000 deliveries/s",
                step.p50_ms,
                "ms",
                Some(3.0),
            );
            report.at_most(
                "p99 post→receive at 60,000 deliveries/s",
                step.p99_ms,
                "ms",
                Some(10.0),
            );
        }
        if let Some(c) = step.server_cpu_per_delivery_us {
            report.at_most(
                &format!("server CPU per delivery at {:.0}/s", step.offered),
                c,
                "µs",
                None,
            );
        }
    }
    report.at_least(
        "sustained deliveries per second",
        capacity,
        "/s",
        Some(80_000.0),
    );
    let stored = server.count_messages().await;
    report.note(format!(
        "messages stored: {}",
        stored.map_or("?".into(), |n| n.to_string())
    ));
    Ok(report)
}

async fn bigroom(o: &Options) -> Result<Report, String> {
    let server = Server::start(o).await?;
    let mut report = Report::new("bigroom", &o.db);
    let members = if o.members == 190 { 10_000 } else { o.members };
    let world = populate(&server, members, 1, true).await?;
    let pairs = grid(&world, members);
    let (sockets, took) = open_sockets(&server.base, &world, &pairs, o.concurrency).await?;
    report.note(format!(
        "{} sockets in one room, opened in {:.1} s",
        sockets.len(),
        took.as_secs_f64()
    ));
    let tally = Arc::new(Tally::default());
    let _drains = drain_all(sockets, &tally);
    settle().await;
    let http = client::http();
    let mut all = Vec::new();
    for i in 0..5 {
        tally.take_latencies();
        tally.recording.store(true, Relaxed);
        let body = format!("{STAMP}{}", client::now_us());
        world.people[i % members]
            .say(&http, &server.base, &world.rooms[0], &body)
            .await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while tally.latencies.lock().map(|l| l.len()).unwrap_or(0) < members
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tally.recording.store(false, Relaxed);
        let mut lat = tally.take_latencies();
        lat.sort_unstable();
        report.note(format!(
            "post {i}: {} of {members} sockets got it, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            lat.len(),
            percentile(&lat, 0.5) / 1e3,
            percentile(&lat, 0.99) / 1e3,
            percentile(&lat, 1.0) / 1e3
        ));
        all.extend(lat);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    all.sort_unstable();
    report.at_most(
        "p99 delivery of one post to 10,000 members",
        percentile(&all, 0.99) / 1e3,
        "ms",
        Some(100.0),
    );
    Ok(report)
}

async fn durable(o: &Options) -> Result<Report, String> {
    let server = Server::start(o).await?;
    let mut report = Report::new("durable", &o.db);
    let people = if o.members == 190 { 1000 } else { o.members };
    let world = populate(&server, people, o.rooms, false).await?;
    let http = client::http();
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + o.duration;
    let (c0, g0, t0) = (server.cpu(), server::own_cpu(), Instant::now());
    let concurrency = if o.concurrency == 64 {
        128
    } else {
        o.concurrency
    };
    let mut workers = JoinSet::new();
    for w in 0..concurrency {
        let (http, base) = (http.clone(), server.base.clone());
        let (ok, failed) = (ok.clone(), failed.clone());
        let people = world.people.clone();
        let rooms = world.rooms.clone();
        let n = people.len();
        workers.spawn(async move {
            let mut i = w;
            while Instant::now() < deadline {
                let p = i % n;
                let room = &rooms[p * rooms.len() / n];
                match people[p]
                    .say(&http, &base, room, "durable bench post")
                    .await
                {
                    Ok(()) => ok.fetch_add(1, Relaxed),
                    Err(_) => failed.fetch_add(1, Relaxed),
                };
                i += concurrency;
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let elapsed = t0.elapsed().as_secs_f64();
    report.cpu(delta(server.cpu(), c0), delta(server::own_cpu(), g0));
    let posted = ok.load(Relaxed);
    let target = if o.db == "sqlite" { 5_000.0 } else { 4_000.0 };
    report.at_least(
        "durable posts per second (form POST path)",
        posted as f64 / elapsed,
        "/s",
        Some(target),
    );
    let stored = server.count_messages().await;
    report.note(format!(
        "{posted} posts answered 303 in {elapsed:.1} s ({} failed); rows in the database: {}",
        failed.load(Relaxed),
        stored.map_or("?".into(), |n| n.to_string())
    ));
    if let Some(stored) = stored {
        report.at_least(
            "posts stored / posts acknowledged",
            stored as f64 / posted.max(1) as f64,
            "",
            Some(1.0),
        );
    }
    Ok(report)
}

async fn pages(o: &Options) -> Result<Report, String> {
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
    let connections = if o.concurrency == 64 {
        32
    } else {
        o.concurrency
    };
    let cookie = world.people[0].cookie.clone();
    let (c0, g0) = (server.cpu(), server::own_cpu());
    let wrk = std::process::Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{}s", o.duration.as_secs().max(1)),
            "--latency",
        ])
        .args(["-H", &format!("Cookie: {cookie}"), &url])
        .output();
    let (rate, p99) = match wrk {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            report.note("measured with wrk (1 thread)".to_string());
            (wrk_rate(&text), wrk_p99(&text))
        }
        _ => {
            report.note("wrk not found: measured with the built-in client".to_string());
            builtin_pages(&url, &cookie, connections, o.duration).await
        }
    };
    report.cpu(delta(server.cpu(), c0), delta(server::own_cpu(), g0));
    report.at_least(
        "room pages per second (5 members, 50 messages)",
        rate,
        "/s",
        Some(10_000.0),
    );
    report.at_most("p99 page latency", p99, "ms", Some(10.0));
    Ok(report)
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

async fn saturation(o: &Options) -> Result<Report, String> {
    let server = Server::start(o).await?;
    let mut report = Report::new("saturation", &o.db);
    let world = populate(&server, o.members, o.rooms, true).await?;
    let pairs = grid(&world, o.members * o.rooms);
    let (sockets, _) = open_sockets(&server.base, &world, &pairs, o.concurrency).await?;
    let tally = Arc::new(Tally::default());
    settle().await;
    let idle_rss = server.rss().unwrap_or(0);
    // Each client follows its room like natter.js: on a close it reconnects after the newest
    // seq it holds; what it cannot get over the socket (after 4409) it reads from the pages.
    let (targets_tx, targets) =
        tokio::sync::watch::channel(None::<Arc<std::collections::HashMap<String, i64>>>);
    let mut followers = JoinSet::new();
    for ((p, _), (room, ws)) in pairs.iter().zip(sockets) {
        let follower = Follower {
            base: server.base.clone(),
            person: world.people[*p].clone(),
            code: world.rooms[room].clone(),
            tally: tally.clone(),
            targets: targets.clone(),
        };
        followers.spawn(follower.run(ws));
    }
    let rate = o.rate.unwrap_or(232_000.0);
    let duration = if o.duration == Duration::from_secs(10) {
        Duration::from_secs(30)
    } else {
        o.duration
    };
    report.note(format!(
        "offering {rate:.0} deliveries/s for {} s to {} sockets",
        duration.as_secs(),
        pairs.len()
    ));
    let peak = Arc::new(AtomicU64::new(idle_rss));
    let sampler = {
        let (peak, pid) = (peak.clone(), server.pid);
        tokio::spawn(async move {
            loop {
                if let Some(rss) = pid.and_then(server::rss_of) {
                    peak.fetch_max(rss, Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let (c0, t0) = (server.cpu(), Instant::now());
    let (ok, failed) = post_at_rate(
        &server.base,
        &world,
        rate / o.members as f64,
        duration,
        o.members,
    )
    .await;
    let load_secs = t0.elapsed().as_secs_f64();
    let stopped = Instant::now();
    report.note(format!(
        "{ok} posts accepted ({:.0} deliveries/s offered in fact), {failed} refused or failed; server CPU {:.1} s",
        ok as f64 * o.members as f64 / load_secs,
        delta(server.cpu(), c0).map_or(0.0, |c| c.as_secs_f64())
    ));
    let _ = targets_tx.send(Some(Arc::new(server.room_last_seqs().await)));
    let mut complete = 0;
    let total = pairs.len();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while let Ok(Some(done)) = tokio::time::timeout_at(deadline, followers.join_next()).await {
        if matches!(done, Ok(true)) {
            complete += 1;
        }
    }
    report.note(format!("{complete} of {total} clients held their room's full history {:.1} s after the load stopped", stopped.elapsed().as_secs_f64()));
    sampler.abort();
    let mut server = server;
    let alive = server.alive();
    let peak = peak.load(Relaxed);
    report.note(format!("idle RSS {:.1} MiB", idle_rss as f64 / 1048576.0));
    report.at_most(
        "server peak RSS at 2x capacity",
        peak as f64 / 1048576.0,
        "MiB",
        Some((2.0 * idle_rss as f64 / 1048576.0 + 64.0).round()),
    );
    report.at_least(
        "server still running",
        if alive { 1.0 } else { 0.0 },
        "",
        Some(1.0),
    );
    report.at_least(
        "clients with the full history 30 s after",
        complete as f64 / total as f64 * 100.0,
        "%",
        Some(100.0),
    );
    Ok(report)
}

/// A client that follows one room until it holds every message.
struct Follower {
    base: String,
    person: Person,
    code: String,
    tally: Arc<Tally>,
    /// Each room's final seq, once the load has stopped.
    targets: tokio::sync::watch::Receiver<Option<Arc<std::collections::HashMap<String, i64>>>>,
}

impl Follower {
    async fn run(mut self, ws: Ws) -> bool {
        let mut held: BTreeSet<i64> = BTreeSet::new();
        let mut socket = Some(ws);
        loop {
            let target = self
                .targets
                .borrow()
                .as_ref()
                .and_then(|t| t.get(&self.code).copied());
            if let Some(target) = target
                && held.len() as i64 >= target
                && held.last().copied().unwrap_or(0) >= target
            {
                return true;
            }
            let Some(ws) = socket.as_mut() else {
                let after = held.last().copied().unwrap_or(0);
                self.fill_gaps(&mut held).await;
                socket = client::connect(&self.base, &self.person, &self.code, after)
                    .await
                    .ok();
                if socket.is_none() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                continue;
            };
            tokio::select! {
                frame = ws.next() => match frame {
                    Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text))) => {
                        client::parse_frame(&text, |seq, _| {
                            self.tally.deliveries.fetch_add(1, Relaxed);
                            held.insert(seq);
                        });
                    }
                    Some(Ok(_)) => {}
                    _ => socket = None,
                },
                _ = self.targets.changed() => {
                    // The load stopped: read whatever the socket could not bring.
                    self.fill_gaps(&mut held).await;
                }
            }
        }
    }

    /// Reads missing seqs from the older-messages fragments (what scrolling back does).
    async fn fill_gaps(&self, held: &mut BTreeSet<i64>) {
        let http = client::http();
        let newest = held.last().copied().unwrap_or(0);
        let mut before = newest + 1;
        while before > 1 {
            let missing_below = (1..before).rev().find(|s| !held.contains(s));
            let Some(missing) = missing_below else { return };
            let url = format!(
                "{}/rooms/{}/messages?before={}",
                self.base,
                self.code,
                missing + 1
            );
            let Ok(r) = http
                .get(&url)
                .header("cookie", &self.person.cookie)
                .header("hx-request", "true")
                .send()
                .await
            else {
                return;
            };
            let Ok(text) = r.text().await else { return };
            let mut lowest = missing + 1;
            client::parse_frame(&text, |seq, _| {
                held.insert(seq);
                lowest = lowest.min(seq);
            });
            if lowest > missing {
                return;
            }
            before = lowest;
        }
    }
}

async fn cross(o: &Options) -> Result<Report, String> {
    let mut options = o.clone();
    options.db = "postgres".into();
    let a = Server::start(&options).await?;
    let b = a.another(o.pin).await?;
    let mut report = Report::new("cross", "postgres");
    let http = client::http();
    let poster = client::sign_up(&http, &a.base, "poster@bench.example", "poster").await?;
    let code = poster.create_room(&http, &a.base, "Cross").await?;
    let reader = client::sign_up(&http, &b.base, "reader@bench.example", "reader").await?;
    reader.join(&http, &b.base, &code).await?;
    let mut ws = client::connect(&b.base, &reader, &code, 0).await?;
    let n = if o.sockets == 19_000 { 3000 } else { o.sockets };
    let mut lat: Vec<u32> = Vec::with_capacity(n);
    for i in 0..n {
        let sent = Instant::now();
        poster
            .say(
                &http,
                &a.base,
                &code,
                &format!("{STAMP}{} #{i}", client::now_us()),
            )
            .await?;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))))
                    if t.contains(&format!("#{i}<")) =>
                {
                    break;
                }
                Ok(Some(Ok(_))) => continue,
                _ => return Err(format!("message {i} did not arrive on B")),
            }
        }
        lat.push(sent.elapsed().as_micros() as u32);
    }
    lat.sort_unstable();
    report.at_most(
        "cross-instance post→delivery p50",
        percentile(&lat, 0.5) / 1000.0,
        "ms",
        None,
    );
    report.at_most(
        "cross-instance post→delivery p99",
        percentile(&lat, 0.99) / 1000.0,
        "ms",
        None,
    );
    report.note(format!("{n} messages posted on A (HTTP form post, committed on PostgreSQL), received by a socket on B"));
    Ok(report)
}
