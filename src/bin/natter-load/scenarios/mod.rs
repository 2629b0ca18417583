//! The scenarios of the benchmark issue, one module each with its targets, and what several
//! of them share: a world of signed-up people and rooms, opening and draining sockets,
//! posting at a rate on a thread of its own (and saying what held the rate back), and
//! checking that the database holds exactly the acknowledged posts.
//!
//! Every scenario returns a `Report`. A missed speed target is a `MISSED` row in it, not a
//! failure; a failed correctness check makes `run` return an error naming it, and
//! natter-load exit with status 1.

mod bigroom;
mod bus;
mod cross;
mod cross_sweep;
mod durable;
mod fanout;
mod handshakes;
mod idle;
mod pages;
mod saturation;
mod search;
mod streams;
mod uploads;

use std::{
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
    report::{Cpu, GENERATOR_SATURATED_PCT, Report},
    server::Server,
};

pub async fn run(o: Options) -> Result<(), String> {
    client::epoch();
    let mut report = match o.scenario.as_str() {
        "idle" => idle::idle(&o).await?,
        "handshakes" => handshakes::handshakes(&o).await?,
        "fanout" => fanout::fanout(&o).await?,
        "bigroom" => bigroom::bigroom(&o).await?,
        "saturation" => saturation::saturation(&o).await?,
        "durable" => durable::durable(&o).await?,
        "pages" => pages::pages(&o).await?,
        "cross" => cross::cross(&o).await?,
        "streams" => streams::streams(&o).await?,
        "uploads" => uploads::uploads(&o).await?,
        "search" => search::search(&o).await?,
        "bus" => bus::bus(&o).await?,
        other => return Err(format!("unknown scenario {other} (try --help)")),
    };
    if let Some(veth) = crate::net::veth() {
        report.note(format!(
            "--net veth: natter in network namespace {} over a veth pair{}",
            veth.ns,
            if o.pin {
                ", receive work steered to the reader's core (RPS: server CPU 0, generator CPU 1)"
            } else {
                ""
            }
        ));
    }
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
    /// Their usernames, in the same order.
    names: Vec<String>,
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
    let names = (0..people.len()).map(|i| format!("p{i}_{tag}")).collect();
    Ok(World {
        people,
        names,
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

/// What holding `held` open connections (each a `unit`: socket, stream) cost the server: its
/// RSS per connection from before to after opening them (against `target` KiB), and the CPU
/// to open them and to hold them for `hold`.
struct Held<'a> {
    unit: &'a str,
    held: usize,
    rss: (Option<u64>, Option<u64>),
    target: f64,
    opening: Cpu,
    holding: Cpu,
    hold: Duration,
}

impl Held<'_> {
    fn report(&self, report: &mut Report) {
        let (unit, held) = (self.unit, self.held);
        if let (Some(b), Some(a)) = self.rss {
            let per = (a.saturating_sub(b)) as f64 / held as f64 / 1024.0;
            report.at_most(
                &format!("server RSS per {unit}"),
                per,
                "KiB",
                Some(self.target),
            );
            report.note(format!(
                "server RSS {:.1} MiB before, {:.1} MiB with {held} {unit}s",
                b as f64 / 1048576.0,
                a as f64 / 1048576.0
            ));
        }
        report.cpu("opening", &self.opening, Some((held as u64, unit)));
        report.cpu(
            &format!("holding {:.0} s", self.hold.as_secs_f64()),
            &self.holding,
            Some((held as u64, unit)),
        );
        if let Some(g) = crate::server::rss_of(std::process::id()) {
            report.note(format!("generator RSS {:.1} MiB", g as f64 / 1048576.0));
        }
    }
}

async fn settle() {
    tokio::time::sleep(Duration::from_secs(3)).await;
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
