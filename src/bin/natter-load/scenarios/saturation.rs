//! Saturation: `--rooms` × `--members` sockets as in fan-out (100 × 190), offered `--rate`
//! deliveries/s (232,000 by default: twice fan-out's lenient capacity) for `--duration`
//! (30 s). Each client follows its room like the page's `live.js`: when its socket closes it reconnects
//! after the newest seq it holds, and what the socket cannot bring it reads from the
//! older-messages pages.
//!
//! It reports the rate asked for, offered (posts sent × members) and accepted, and says which
//! side was the limit: the generator (its core ≥ 90% busy, receiving every delivery) or the
//! server (posts waiting for answers). The server's peak RSS under the load is read against
//! twice its idle RSS plus 64 MiB (a `MISSED` row when above). The run fails when the server
//! is no longer running, when a client lacks its room's full history 30 s after the load
//! stopped, or unless the database holds exactly the acknowledged posts.

use std::{
    collections::BTreeSet,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use tokio::task::{JoinHandle, JoinSet};

use super::{
    Posted, World, check_stored, grid, offer_limit, open_sockets, populate, post_at_rate,
    receive_limit, settle,
};
use crate::{
    Options,
    client::{self, Person, Tally, Ws},
    report::{Cpu, Report},
    server::{self, Meter, Server},
};

pub(super) async fn saturation(o: &Options) -> Result<Report, String> {
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
    let targets = Arc::new(Targets::default());
    let mut followers = follow_all(&server, &world, &pairs, sockets, &tally, &targets);
    let asked = o.rate.unwrap_or(SATURATION_RATE);
    let duration = o.duration.unwrap_or(Duration::from_secs(30));
    report.note(format!(
        "asking for {asked:.0} deliveries/s for {:.0} s to {} sockets",
        duration.as_secs_f64(),
        pairs.len()
    ));
    let (peak, sampler) = sample_peak_rss(server.pid, idle_rss);
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
    report_load(&mut report, asked, members, &posted, during, &load);
    targets.set(server.room_last_seqs().await);
    let meter = Meter::start(&server);
    let total = pairs.len();
    let complete = caught_up(&mut followers).await;
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

/// Starts a `Follower` on each socket, one per `(person, room)` pair.
///
/// Each client follows its room like the page's `live.js`: on a close it reconnects after the newest
/// seq it holds; what it cannot get over the socket (after 4409) it reads from the pages.
fn follow_all(
    server: &Server,
    world: &World,
    pairs: &[(usize, usize)],
    sockets: Vec<(usize, Ws)>,
    tally: &Arc<Tally>,
    targets: &Arc<Targets>,
) -> JoinSet<bool> {
    let mut followers = JoinSet::new();
    // One client (one pool) for all: building a client is milliseconds of the generator's
    // CPU, and 19,000 followers each building one when the load stopped kept its core busy
    // for the whole 30 s they have to catch up.
    let http = client::http();
    for ((p, _), (room, ws)) in pairs.iter().zip(sockets) {
        let follower = Follower {
            http: http.clone(),
            base: server.base.clone(),
            person: world.people[*p].clone(),
            code: world.rooms[room].clone(),
            tally: tally.clone(),
            targets: targets.clone(),
        };
        followers.spawn(follower.run(ws));
    }
    followers
}

/// Samples the server's RSS every 250 ms, keeping the highest (from `idle_rss`) until the
/// returned task is aborted.
fn sample_peak_rss(pid: Option<u32>, idle_rss: u64) -> (Arc<AtomicU64>, JoinHandle<()>) {
    let peak = Arc::new(AtomicU64::new(idle_rss));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                if let Some(rss) = pid.and_then(server::rss_of) {
                    peak.fetch_max(rss, Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    (peak, sampler)
}

/// The load's figures: the delivery rate asked for, offered, accepted and received, and
/// which side held it back.
fn report_load(
    report: &mut Report,
    asked: f64,
    members: usize,
    posted: &Posted,
    during: u64,
    load: &Cpu,
) {
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
    match offer_limit(asked, offered, posted, load) {
        Some(why) => report.note(format!(
            "offered {:.0}% of the asked rate: {why}",
            offered / asked * 100.0
        )),
        None => report.note("the asked rate was offered in full"),
    }
    report.note(format!("during the load {}", receive_limit(load)));
    report.cpu("load", load, Some((during, "delivery")));
}

/// How many followers hold their room's full history within 30 s. Those that do not are
/// left running in the set.
async fn caught_up(followers: &mut JoinSet<bool>) -> usize {
    let mut complete = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while let Ok(Some(done)) = tokio::time::timeout_at(deadline, followers.join_next()).await {
        if matches!(done, Ok(true)) {
            complete += 1;
        }
    }
    complete
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
    http: reqwest::Client,
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
        let http = &self.http;
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
