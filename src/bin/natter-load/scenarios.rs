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
    report::{Cpu, GENERATOR_SATURATED_PCT, Report, Table, percentile},
    server::{self, Meter, Server},
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
    match report.failed_checks.as_slice() {
        [] => Ok(()),
        failed => Err(format!("{} failed: {}", o.scenario, failed.join("; "))),
    }
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
    let wanted = o.sockets.unwrap_or(19_000);
    let rooms = o.rooms.unwrap_or(100).min(wanted);
    let hold = o.duration.unwrap_or(Duration::from_secs(10));
    let server = Server::start(o).await?;
    let mut report = Report::new("idle", &o.db);
    let world = populate(&server, wanted.div_ceil(rooms), rooms, true).await?;
    settle().await;
    let before = server.rss();
    let pairs = grid(&world, wanted);
    let meter = Meter::start(&server);
    let concurrency = o.concurrency.unwrap_or(64);
    let (sockets, took) = open_sockets(&server.base, &world, &pairs, concurrency).await?;
    let opening = meter.read();
    let held = sockets.len();
    let tally = Arc::new(Tally::default());
    let _drains = drain_all(sockets, &tally);
    settle().await;
    let after = server.rss();
    let meter = Meter::start(&server);
    tokio::time::sleep(hold).await;
    let holding = meter.read();
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
    report.cpu("opening", &opening, Some((held as u64, "socket")));
    report.cpu(
        &format!("holding {:.0} s", hold.as_secs_f64()),
        &holding,
        Some((held as u64, "socket")),
    );
    if let Some(g) = server::rss_of(std::process::id()) {
        report.note(format!("generator RSS {:.1} MiB", g as f64 / 1048576.0));
    }
    report.note(format!("opened in {:.1} s", took.as_secs_f64()));
    let closed = tally.closes.load(Relaxed);
    report.check(
        closed == 0,
        format!("{closed} of {held} idle sockets were closed while held"),
    );
    Ok(report)
}

async fn handshakes(o: &Options) -> Result<Report, String> {
    let wanted = o.sockets.unwrap_or(19_000);
    let rooms = o.rooms.unwrap_or(100).min(wanted);
    let concurrency = o.concurrency.unwrap_or(64);
    let server = Server::start(o).await?;
    let mut report = Report::new("handshakes", &o.db);
    let world = populate(&server, wanted.div_ceil(rooms), rooms, true).await?;
    settle().await;
    let pairs = grid(&world, wanted);
    let meter = Meter::start(&server);
    let (sockets, took) = open_sockets(&server.base, &world, &pairs, concurrency).await?;
    let cpu = meter.read();
    let rate = sockets.len() as f64 / took.as_secs_f64();
    report.at_least(
        "signed-in socket upgrades per second",
        rate,
        "/s",
        (o.db == "sqlite").then_some(5_000.0),
    );
    report.cpu("upgrades", &cpu, Some((sockets.len() as u64, "upgrade")));
    report.note(format!(
        "{} upgrades in {:.2} s, {concurrency} in flight",
        sockets.len(),
        took.as_secs_f64(),
    ));
    Ok(report)
}

/// How many posts may wait for their answer at once: beyond this the posting loop waits, and
/// the server (not the generator) is what holds the offered rate back.
const POSTS_IN_FLIGHT: usize = 512;

/// What a posting run did.
#[derive(Clone, Copy, Debug, Default)]
struct Posted {
    /// Posts sent (each answered or failed by the end).
    sent: u64,
    /// Answered 303: acknowledged, so they must be stored.
    ok: u64,
    failed: u64,
    /// How long the loop ran, from the first post to the last one sent.
    sending: Duration,
    /// How long the loop waited because `POSTS_IN_FLIGHT` posts were unanswered.
    waited_for_server: Duration,
}

/// Posts at `posts_per_s` for `for_how_long` into the rooms (round robin, one of the first
/// `members` people at random), each body carrying its send time; returns once every post
/// sent is answered.
///
/// The loop (and its HTTP client) runs on a thread of its own, a one-thread runtime on the
/// generator's same core. Sharing the runtime with thousands of busy receiving sockets, its
/// ticks and answers waited behind them: with receiving made slow enough to fill the core,
/// 27,000–32,000 of 60,000 deliveries/s asked were offered; on its own thread, all of them
/// (the scheduler gives the poster the little CPU it needs when it needs it).
async fn post_at_rate(
    base: &str,
    world: &World,
    posts_per_s: f64,
    for_how_long: Duration,
    members: usize,
) -> Result<Posted, String> {
    let base = base.to_string();
    let people = world.people[..members.min(world.people.len())].to_vec();
    let rooms = world.rooms.clone();
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("natter-load-poster".into())
        .spawn(move || {
            let posted = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("posting runtime: {e}"))
                .map(|rt| rt.block_on(post_loop(base, people, rooms, posts_per_s, for_how_long)));
            let _ = done.send(posted);
        })
        .map_err(|e| format!("posting thread: {e}"))?;
    result
        .await
        .map_err(|_| "the posting thread ended without a result".to_string())?
}

async fn post_loop(
    base: String,
    people: Vec<Person>,
    rooms: Vec<String>,
    posts_per_s: f64,
    for_how_long: Duration,
) -> Posted {
    let http = client::http();
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / posts_per_s));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let deadline = started + for_how_long;
    let mut sent = 0u64;
    let mut waited = Duration::ZERO;
    let in_flight = Arc::new(tokio::sync::Semaphore::new(POSTS_IN_FLIGHT));
    while Instant::now() < deadline {
        tick.tick().await;
        let permit = match in_flight.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let t = Instant::now();
                let Ok(permit) = in_flight.clone().acquire_owned().await else {
                    break;
                };
                waited += t.elapsed();
                permit
            }
        };
        let room = rooms[sent as usize % rooms.len()].clone();
        let person = people[rand::random_range(0..people.len())].clone();
        let (http, base) = (http.clone(), base.clone());
        let (ok, failed) = (ok.clone(), failed.clone());
        tokio::spawn(async move {
            let body = format!("{STAMP}{}", client::now_us());
            match person.say(&http, &base, &room, &body).await {
                Ok(()) => ok.fetch_add(1, Relaxed),
                Err(_) => failed.fetch_add(1, Relaxed),
            };
            drop(permit);
        });
        sent += 1;
    }
    let sending = started.elapsed();
    // Let the last posts land.
    let _ = in_flight.acquire_many(POSTS_IN_FLIGHT as u32).await;
    Posted {
        sent,
        ok: ok.load(Relaxed),
        failed: failed.load(Relaxed),
        sending,
        waited_for_server: waited,
    }
}

/// Why a run offered less than it was asked to, from the posting loop and the generator's CPU.
fn offer_limit(asked: f64, offered: f64, posted: &Posted, cpu: &Cpu) -> Option<String> {
    if offered >= 0.97 * asked {
        return None;
    }
    let pct = |p: Option<f64>| p.map_or("?".into(), |p| format!("{p:.0}%"));
    let (server, generator) = (cpu.server_busy_pct(), cpu.generator_busy_pct());
    let waited = posted.waited_for_server.as_secs_f64() / posted.sending.as_secs_f64().max(1e-9);
    let busy = format!(
        "server core {} busy, generator core {}",
        pct(server),
        pct(generator)
    );
    Some(if generator.is_some_and(|g| g >= GENERATOR_SATURATED_PCT) {
        format!("the generator was the limit, not the server ({busy}): it receives every delivery")
    } else if waited > 0.1 {
        format!(
            "the server was the limit ({busy}): {POSTS_IN_FLIGHT} posts were waiting for answers {:.0}% of the time",
            waited * 100.0
        )
    } else {
        format!("no limit found ({busy}, posts never waited for answers)")
    })
}

/// Which side's core was full while deliveries were being received, as a sentence.
fn receive_limit(cpu: &Cpu) -> String {
    let pct = |p: Option<f64>| p.map_or("?".into(), |p| format!("{p:.0}%"));
    let (server, generator) = (cpu.server_busy_pct(), cpu.generator_busy_pct());
    let busy = format!(
        "server core {} busy, generator core {}",
        pct(server),
        pct(generator)
    );
    if generator.is_some_and(|g| g >= GENERATOR_SATURATED_PCT) {
        format!("the generator was the limit of what arrived and how fast ({busy})")
    } else {
        format!("the generator was not the limit ({busy})")
    }
}

/// One offered delivery rate against an established fan-out: what arrives, how fast.
struct Step {
    offered: f64,
    posted: Posted,
    /// Deliveries the acknowledged posts owe: each goes to every member of its room.
    expected: u64,
    /// Deliveries that arrived by `TAIL` after the last post was answered.
    in_window: u64,
    /// Deliveries that arrived later, before the next step began.
    late: u64,
    /// Deliveries per second within the window.
    achieved: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// Both sides' CPU from the first post until every delivery arrived (or we gave up).
    cpu: Cpu,
    /// Sockets that closed during the step (their deliveries never come).
    closed: u64,
}

/// How long after the last answer deliveries still count for their step.
const TAIL: Duration = Duration::from_millis(500);

/// The strict criterion's latency bound: the fan-out target's p99.
const STRICT_P99_MS: f64 = 10.0;

impl Step {
    /// The lenient criterion: ≥ 95% of the offered rate delivered within the window, no post
    /// failed, p99 under a second.
    fn sustained(&self) -> bool {
        self.achieved >= 0.95 * self.offered && self.posted.failed == 0 && self.p99_ms < 1000.0
    }

    /// The strict criterion: as the lenient one, and every delivery arrived within the
    /// window, with p99 ≤ 10 ms.
    fn sustained_strictly(&self) -> bool {
        self.sustained() && self.in_window >= self.expected && self.p99_ms <= STRICT_P99_MS
    }
}

async fn fanout_step(
    server: &Server,
    world: &World,
    tally: &Arc<Tally>,
    deliveries_per_s: f64,
    members: usize,
    duration: Duration,
) -> Result<Step, String> {
    let posts_per_s = deliveries_per_s / members as f64;
    tally.take_latencies();
    tally.recording.store(true, Relaxed);
    let (d0, closed0) = (tally.deliveries.load(Relaxed), tally.closes.load(Relaxed));
    let (meter, t0) = (Meter::start(server), Instant::now());
    let posted = post_at_rate(&server.base, world, posts_per_s, duration, members).await?;
    // Deliveries still in flight belong to this step.
    tokio::time::sleep(TAIL).await;
    tally.recording.store(false, Relaxed);
    let window = t0.elapsed().as_secs_f64() - TAIL.as_secs_f64();
    let in_window = tally.deliveries.load(Relaxed) - d0;
    let expected = posted.ok * members as u64;
    // Wait for the stragglers so that they do not count for the next step.
    let deadline = Instant::now() + Duration::from_secs(10);
    while tally.deliveries.load(Relaxed) - d0 < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu = meter.read();
    let delivered = tally.deliveries.load(Relaxed) - d0;
    let mut lat = tally.take_latencies();
    lat.sort_unstable();
    Ok(Step {
        offered: deliveries_per_s,
        posted,
        expected,
        in_window,
        late: delivered - in_window,
        achieved: in_window as f64 / window,
        p50_ms: percentile(&lat, 0.5) / 1000.0,
        p99_ms: percentile(&lat, 0.99) / 1000.0,
        max_ms: percentile(&lat, 1.0) / 1000.0,
        cpu,
        closed: tally.closes.load(Relaxed) - closed0,
    })
}

/// The fan-out's default sweep of offered delivery rates.
const FANOUT_RATES: &[f64] = &[20_000.0, 60_000.0, 80_000.0, 100_000.0, 120_000.0];

async fn fanout(o: &Options) -> Result<Report, String> {
    let (rooms, members) = (o.rooms.unwrap_or(100), o.members.unwrap_or(190));
    let rates = o.rates.clone().unwrap_or_else(|| FANOUT_RATES.to_vec());
    let duration = o.duration.unwrap_or(Duration::from_secs(10));
    let server = Server::start(o).await?;
    let mut report = Report::new("fanout", &o.db);
    let world = populate(&server, members, rooms, true).await?;
    let pairs = grid(&world, members * rooms);
    let concurrency = o.concurrency.unwrap_or(64);
    let (sockets, _) = open_sockets(&server.base, &world, &pairs, concurrency).await?;
    let tally = Arc::new(Tally::default());
    let _drains = drain_all(sockets, &tally);
    settle().await;
    report.note(format!(
        "{rooms} rooms x {members} members = {} sockets, {:.0} s per rate",
        pairs.len(),
        duration.as_secs_f64()
    ));
    let mut table = Table::new(
        "fan-out: one line per offered rate",
        &[
            "offered [/s]",
            "sent [/s]",
            "delivered [/s]",
            "late",
            "missing",
            "p50 [ms]",
            "p99 [ms]",
            "max [ms]",
            "server CPU [s]",
            "server [µs/delivery]",
            "generator CPU [s]",
            "generator [µs/delivery]",
            "server busy [%]",
            "generator busy [%]",
            "failed posts",
            "sustained",
            "strictly",
        ],
    );
    let (mut capacity, mut strict_capacity) = (0.0f64, 0.0f64);
    let mut accepted = 0;
    for rate in &rates {
        let step = fanout_step(&server, &world, &tally, *rate, members, duration).await?;
        accepted += step.posted.ok;
        let delivered = step.in_window + step.late;
        if step.sustained() {
            capacity = capacity.max(step.achieved);
        }
        if step.sustained_strictly() {
            strict_capacity = strict_capacity.max(step.achieved);
        }
        let sent = step.posted.sent as f64 * members as f64 / step.posted.sending.as_secs_f64();
        if let Some(why) = offer_limit(*rate, sent, &step.posted, &step.cpu) {
            report.note(format!("offered {rate:.0}/s, sent {sent:.0}/s: {why}"));
        }
        if !step.sustained() {
            report.note(format!(
                "offered {rate:.0}/s, not sustained: {}",
                receive_limit(&step.cpu)
            ));
        }
        if step.closed > 0 {
            report.note(format!(
                "offered {rate:.0}/s: {} sockets closed (their deliveries are missing)",
                step.closed
            ));
        }
        report.add_cpu(&step.cpu);
        table.line(vec![
            (*rate as u64).into(),
            (sent.round() as u64).into(),
            (step.achieved.round() as u64).into(),
            step.late.into(),
            step.expected.saturating_sub(delivered).into(),
            step.p50_ms.into(),
            step.p99_ms.into(),
            step.max_ms.into(),
            step.cpu.server.map(|c| c.as_secs_f64()).into(),
            step.cpu.server_us_per(delivered).into(),
            step.cpu.generator.map(|c| c.as_secs_f64()).into(),
            step.cpu.generator_us_per(delivered).into(),
            step.cpu.server_busy_pct().into(),
            step.cpu.generator_busy_pct().into(),
            step.posted.failed.into(),
            step.sustained().into(),
            step.sustained_strictly().into(),
        ]);
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
                Some(STRICT_P99_MS),
            );
        }
    }
    report.tables.push(table);
    report.at_least(
        "sustained deliveries/s (≥95% delivered, p99 < 1 s)",
        capacity,
        "/s",
        Some(80_000.0),
    );
    report.at_least(
        "strictly sustained (all delivered, p99 ≤ 10 ms)",
        strict_capacity,
        "/s",
        None,
    );
    if capacity > 0.0 {
        report.note(format!(
            "saturation offers twice the lenient figure: natter-load saturation --rate {:.0}",
            2.0 * capacity
        ));
    }
    check_stored(&server, &mut report, accepted).await;
    Ok(report)
}

/// Fails the report unless the database holds exactly the acknowledged posts.
async fn check_stored(server: &Server, report: &mut Report, accepted: u64) {
    if server.database_url.is_empty() {
        report.note("posts stored: not checked (a running server given with --target)");
        return;
    }
    match server.count_messages().await {
        Some(stored) => {
            let stored = stored as u64;
            report.note(format!("{accepted} posts acknowledged, {stored} stored"));
            report.check(
                stored == accepted,
                if stored < accepted {
                    format!(
                        "{} of {accepted} acknowledged posts are not stored",
                        accepted - stored
                    )
                } else {
                    format!(
                        "{stored} posts stored but only {accepted} acknowledged (posts whose answer failed were stored)"
                    )
                },
            );
        }
        None => report.check(false, "could not count the stored posts"),
    }
}

async fn bigroom(o: &Options) -> Result<Report, String> {
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
    let mut table = Table::new(
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
    );
    let (mut all, mut p99s) = (Vec::new(), Vec::new());
    let mut total = Cpu {
        server: server.pid.map(|_| Duration::ZERO),
        generator: Some(Duration::ZERO),
        wall: Duration::ZERO,
    };
    for i in 0..posts {
        tally.take_latencies();
        tally.recording.store(true, Relaxed);
        let meter = Meter::start(&server);
        let body = format!("{STAMP}{}", client::now_us());
        world.people[i % members]
            .say(&http, &server.base, &world.rooms[0], &body)
            .await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while tally.latencies.lock().map(|l| l.len()).unwrap_or(0) < members
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let cpu = meter.read();
        tally.recording.store(false, Relaxed);
        let mut lat = tally.take_latencies();
        lat.sort_unstable();
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
    all.sort_unstable();
    p99s.sort_by(f64::total_cmp);
    let median_p99 = p99s.get(p99s.len() / 2).copied().unwrap_or(f64::NAN);
    report.at_most(
        &format!("p99 delivery of one post to {members}, median post"),
        median_p99,
        "ms",
        Some(100.0),
    );
    report.at_most(
        &format!("p99 delivery, all {posts} posts pooled"),
        percentile(&all, 0.99) / 1e3,
        "ms",
        Some(100.0),
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
        &total,
        Some((all.len() as u64, "delivery")),
    );
    report
        .note("per-post CPU comes from /proc in 10 ms ticks; the per-delivery rows use all posts");
    Ok(report)
}

async fn durable(o: &Options) -> Result<Report, String> {
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
    let connections = o.concurrency.unwrap_or(32);
    let duration = o.duration.unwrap_or(Duration::from_secs(10));
    let cookie = world.people[0].cookie.clone();
    let meter = Meter::start(&server);
    let wrk = std::process::Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{}s", duration.as_secs().max(1)),
            "--latency",
        ])
        .args(["-H", &format!("Cookie: {cookie}"), &url])
        .output();
    let (rate, p99, secs) = match wrk {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            report.note("measured with wrk (1 thread; its CPU counts as the generator's)");
            let secs = duration.as_secs().max(1) as f64;
            (wrk_rate(&text), wrk_p99(&text), secs)
        }
        _ => {
            report.note("wrk not found: measured with the built-in client".to_string());
            let (rate, p99) = builtin_pages(&url, &cookie, connections, duration).await;
            (rate, p99, duration.as_secs_f64())
        }
    };
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
    let (rooms, members) = (o.rooms.unwrap_or(100), o.members.unwrap_or(190));
    let server = Server::start(o).await?;
    let mut report = Report::new("saturation", &o.db);
    let world = populate(&server, members, rooms, true).await?;
    let pairs = grid(&world, members * rooms);
    let concurrency = o.concurrency.unwrap_or(64);
    let (sockets, _) = open_sockets(&server.base, &world, &pairs, concurrency).await?;
    let tally = Arc::new(Tally::default());
    settle().await;
    let idle_rss = server.rss().unwrap_or(0);
    // Each client follows its room like natter.js: on a close it reconnects after the newest
    // seq it holds; what it cannot get over the socket (after 4409) it reads from the pages.
    let targets = Arc::new(Targets::default());
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
    let asked = o.rate.unwrap_or(SATURATION_RATE);
    let duration = o.duration.unwrap_or(Duration::from_secs(30));
    report.note(format!(
        "asking for {asked:.0} deliveries/s for {:.0} s to {} sockets",
        duration.as_secs_f64(),
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
    let d0 = tally.deliveries.load(Relaxed);
    let meter = Meter::start(&server);
    let posted = post_at_rate(
        &server.base,
        &world,
        asked / members as f64,
        duration,
        members,
    )
    .await?;
    let load = meter.read();
    let stopped = Instant::now();
    let during = tally.deliveries.load(Relaxed) - d0;
    let per_s = |posts: u64| posts as f64 * members as f64 / posted.sending.as_secs_f64();
    let offered = per_s(posted.sent);
    report.figure("delivery rate asked for", asked, "/s");
    report.figure(
        "delivery rate offered (posts sent x members)",
        offered,
        "/s",
    );
    report.figure(
        "delivery rate accepted (posts answered 303)",
        per_s(posted.ok),
        "/s",
    );
    report.figure(
        "deliveries received during the load",
        during as f64 / load.wall.as_secs_f64(),
        "/s",
    );
    report.figure("failed posts", posted.failed as f64, "");
    match offer_limit(asked, offered, &posted, &load) {
        Some(why) => report.note(format!(
            "offered {:.0}% of the asked rate: {why}",
            offered / asked * 100.0
        )),
        None => report.note("the asked rate was offered in full"),
    }
    report.note(format!("during the load {}", receive_limit(&load)));
    report.cpu("load", &load, Some((during, "delivery")));
    targets.set(server.room_last_seqs().await);
    let meter = Meter::start(&server);
    let mut complete = 0;
    let total = pairs.len();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while let Ok(Some(done)) = tokio::time::timeout_at(deadline, followers.join_next()).await {
        if matches!(done, Ok(true)) {
            complete += 1;
        }
    }
    let catching_up = meter.read();
    report.note(format!(
        "{complete} of {total} clients held their room's full history {:.1} s after the load stopped",
        stopped.elapsed().as_secs_f64()
    ));
    report.cpu("catching up", &catching_up, None);
    sampler.abort();
    let mut server = server;
    let alive = server.alive();
    let peak = peak.load(Relaxed);
    report.note(format!("idle RSS {:.1} MiB", idle_rss as f64 / 1048576.0));
    report.at_most(
        "server peak RSS under the load",
        peak as f64 / 1048576.0,
        "MiB",
        Some((2.0 * idle_rss as f64 / 1048576.0 + 64.0).round()),
    );
    report.at_least(
        "clients with the full history 30 s after",
        complete as f64 / total as f64 * 100.0,
        "%",
        Some(100.0),
    );
    report.check(alive, "the server is no longer running");
    report.check(
        complete == total,
        format!(
            "{} of {total} clients lacked messages 30 s after the load stopped",
            total - complete
        ),
    );
    if alive {
        check_stored(&server, &mut report, posted.ok).await;
    }
    Ok(report)
}

/// Saturation's default: twice fan-out's lenient capacity in the latest README figures
/// (115,647/s).
const SATURATION_RATE: f64 = 232_000.0;

/// Each room's final seq, by code, set once the load has stopped.
#[derive(Default)]
struct Targets {
    seqs: std::sync::OnceLock<std::collections::HashMap<String, i64>>,
    set: tokio::sync::Notify,
}

impl Targets {
    fn set(&self, seqs: std::collections::HashMap<String, i64>) {
        let _ = self.seqs.set(seqs);
        self.set.notify_waiters();
    }

    fn of(&self, code: &str) -> Option<i64> {
        self.seqs.get().and_then(|t| t.get(code).copied())
    }
}

/// A client that follows one room until it holds every message.
struct Follower {
    base: String,
    person: Person,
    code: String,
    tally: Arc<Tally>,
    targets: Arc<Targets>,
}

impl Follower {
    async fn run(self, ws: Ws) -> bool {
        let mut held: BTreeSet<i64> = BTreeSet::new();
        let mut socket = Some(ws);
        // One waiter for the whole run, registered now so that the signal cannot be missed:
        // a waiter made and dropped around every frame was a cost on each delivery.
        let stopped = self.targets.set.notified();
        tokio::pin!(stopped);
        stopped.as_mut().enable();
        let mut told = false;
        loop {
            if let Some(target) = self.targets.of(&self.code)
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
                _ = &mut stopped, if !told => {
                    // The load stopped: read whatever the socket could not bring.
                    told = true;
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
    let n = o.posts.unwrap_or(3000);
    let mut lat: Vec<u32> = Vec::with_capacity(n);
    let (meter_a, meter_b) = (Meter::start(&a), Meter::start(&b));
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
    let (on_a, on_b) = (meter_a.read(), meter_b.read());
    lat.sort_unstable();
    report.figure(
        "cross-instance post→delivery p50",
        percentile(&lat, 0.5) / 1000.0,
        "ms",
    );
    report.figure(
        "cross-instance post→delivery p99",
        percentile(&lat, 0.99) / 1000.0,
        "ms",
    );
    // Server A takes the posts, server B delivers them; the generator's CPU is read once.
    report.cpu("posting on A", &on_a, Some((n as u64, "message")));
    let on_b = Cpu {
        generator: None,
        ..on_b
    };
    report.cpu("delivering on B", &on_b, Some((n as u64, "message")));
    report.note(format!("{n} messages posted on A (HTTP form post, committed on PostgreSQL), received by a socket on B, one at a time"));
    report.note("PostgreSQL's own CPU is in neither server's figure");
    Ok(report)
}
