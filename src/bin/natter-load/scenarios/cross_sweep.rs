//! Cross-instance rate sweep (`natter-load cross --rates 50,100,200 …`): the posts/s a cluster
//! of `--instances` (2) sustains with p99 < 100 ms, over `--bus`.
//!
//! `--rooms` rooms (12), each posted into from one instance (room r from instance r mod K) by
//! eight people of that instance's own, with a reader's socket to the room on every instance.
//! At each offered rate of `--rates` in turn, for `--duration` (10 s) each, every instance
//! takes its share of the posts (form POSTs, open loop: no post waits for another's delivery),
//! and every other instance's socket must receive each acknowledged post. One table line per
//! rate: posts sent and acknowledged per second, post→delivery p50/p99 over the receiving
//! instances (and the slowest one's p99), database reads per post, and the CPU per post of
//! each instance, of PostgreSQL's backends serving the run's database and of nats-server.
//!
//! A step is *sustained* when every post was acknowledged, at ≥ 95% of the offered rate,
//! every delivery arrived, and the slowest receiving instance's p99 is under 100 ms; the
//! figure is the highest sustained step. An acknowledged post that has not reached every
//! other instance 30 s after the step, or a stored post count that differs from the
//! acknowledged one, fails the run. The sweep stops after a step far past sustaining
//! (p99 ≥ 1 s, or under 80% of the offered rate acknowledged).

use std::{
    collections::HashMap,
    sync::{Arc, atomic::Ordering::Relaxed},
    time::{Duration, Instant},
};

use futures_util::future::join_all;
use tokio::task::JoinSet;

use super::{
    Posted, World, check_stored,
    cross::{Cluster, counter},
    offer_limit, populate, post_at_rate,
};
use crate::{
    Options,
    client::{self, Tally},
    report::{Cpu, Report, Table, percentile},
    server::{Meter, cpu_of},
};

/// The latency bound a sustained step's slowest receiving instance keeps its p99 under.
const P99_BOUND_MS: f64 = 100.0;

/// How long after a step's last answer its deliveries may still arrive before the run fails.
const STRAGGLERS: Duration = Duration::from_secs(30);

/// People posting on each instance (a random one per post): a person's own rate stays low.
const POSTERS_PER_INSTANCE: usize = 8;

/// What decides a step: its offered and acknowledged rates, failures and latency.
#[derive(Clone, Copy, Debug)]
pub(super) struct Outcome {
    /// Posts/s asked for, over the whole cluster.
    pub offered: f64,
    /// Posts/s acknowledged (303) over the posting window (`bus`: published).
    pub acknowledged: f64,
    /// Posts answered otherwise, or not at all.
    pub failed: u64,
    /// Deliveries the acknowledged posts owe the other instances that never came.
    pub missing: u64,
    /// The slowest receiving instance's post→delivery p99 (NaN when nothing arrived).
    pub p99_ms: f64,
}

impl Outcome {
    /// Every post acknowledged at (nearly) the offered rate, every delivery arrived, and the
    /// slowest receiving instance's p99 under 100 ms.
    pub(super) fn sustained(&self) -> bool {
        self.failed == 0
            && self.missing == 0
            && self.acknowledged >= 0.95 * self.offered
            && self.p99_ms < P99_BOUND_MS
    }

    /// So far past sustaining that higher rates would only pile up a backlog (or a
    /// correctness failure ended the run's meaning).
    pub(super) fn beyond(&self) -> bool {
        self.missing > 0
            || self.acknowledged < 0.8 * self.offered
            || self.p99_ms.is_nan()
            || self.p99_ms >= 1000.0
    }
}

/// After a step of a sweep (the last of `outcomes`): whether it was so far past sustaining
/// that the sweep stops (noted in the report); if not, the machine settles for the next rate.
pub(super) async fn stop_after(report: &mut Report, outcomes: &[Outcome]) -> bool {
    if let Some(last) = outcomes.last().filter(|o| o.beyond()) {
        report.note(format!(
            "offered {:.0} posts/s was far past sustaining: higher rates not run",
            last.offered
        ));
        return true;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    false
}

/// Closes a sweep: its table into the report and the highest sustained rate as its figure,
/// `what` saying what sustained meant.
pub(super) fn sweep_end(
    report: &mut Report,
    table: Table,
    outcomes: &[Outcome],
    what: &str,
) -> Option<f64> {
    report.tables.push(table);
    let best = sustained_rate(outcomes);
    report.figure(
        &format!("sustained posts/s ({what})"),
        best.unwrap_or(0.0),
        "/s",
    );
    best
}

/// The highest offered rate among sustained steps (not necessarily the last one: a noisy
/// machine can fail a step below one that held).
fn sustained_rate(steps: &[Outcome]) -> Option<f64> {
    steps
        .iter()
        .filter(|s| s.sustained())
        .map(|s| s.offered)
        .max_by(f64::total_cmp)
}

/// The CPU of the PostgreSQL backends serving one database, from samples of their
/// `/proc/<pid>/stat`: a backend seen at the first sample counts from its reading then, one
/// that appears later from zero (it started within the window). A backend that ends between
/// two samples takes its CPU since the earlier one with it.
#[derive(Default, Debug)]
struct BackendCpu {
    /// By pid: the CPU it started the window with, and its latest reading.
    seen: HashMap<u32, (Duration, Duration)>,
    sampled: bool,
}

impl BackendCpu {
    fn sample(&mut self, readings: &[(u32, Duration)]) {
        for &(pid, cpu) in readings {
            let base = if self.sampled { Duration::ZERO } else { cpu };
            self.seen.entry(pid).or_insert((base, cpu)).1 = cpu;
        }
        self.sampled = true;
    }

    fn total(&self) -> Duration {
        self.seen
            .values()
            .map(|(base, last)| last.saturating_sub(*base))
            .sum()
    }
}

/// Samples the CPU of the backends serving `database` every 200 ms until stopped.
struct PgSampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Option<Duration>>,
}

impl PgSampler {
    async fn start(admin: &str, database: &str) -> Option<PgSampler> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(admin)
            .await
            .ok()?;
        let database = database.to_string();
        let read = move |pool: sqlx::PgPool, database: String| async move {
            let pids: Vec<i32> =
                sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = $1")
                    .bind(database)
                    .fetch_all(&pool)
                    .await
                    .unwrap_or_default();
            pids.into_iter()
                .filter_map(|pid| Some((pid as u32, cpu_of(pid as u32)?)))
                .collect::<Vec<_>>()
        };
        let mut cpu = BackendCpu::default();
        let first = read(pool.clone(), database.clone()).await;
        if first.is_empty() {
            // Not on this machine, or /proc not readable: no figure rather than a wrong one.
            return None;
        }
        cpu.sample(&first);
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tokio::select! {
                    _ = tick.tick() => cpu.sample(&read(pool.clone(), database.clone()).await),
                    _ = &mut stopped => break,
                }
            }
            cpu.sample(&read(pool.clone(), database.clone()).await);
            pool.close().await;
            Some(cpu.total())
        });
        Some(PgSampler { stop, task })
    }

    async fn stop(self) -> Option<Duration> {
        let _ = self.stop.send(());
        self.task.await.ok().flatten()
    }
}

/// One offered rate, measured.
struct Step {
    outcome: Outcome,
    /// The posting instances' runs, summed (sending: the longest).
    posted: Posted,
    /// Deliveries owed to the receiving instances, and how many arrived.
    expected: u64,
    /// Pooled over every receiving instance's sockets.
    p50_ms: f64,
    p99_ms: f64,
    /// Database reads (`natter_hub_catch_ups_total`) of all instances per acknowledged post.
    reads_per_post: f64,
    /// Each instance's CPU over the step (the generator's in each).
    cpu: Vec<Cpu>,
    postgres: Option<Duration>,
    nats: Option<Duration>,
}

impl Step {
    /// All instances' CPU as one server's (they share CPU 0 when pinned).
    fn instances_cpu(&self) -> Cpu {
        let server = self.cpu.iter().map(|c| c.server).sum::<Option<Duration>>();
        Cpu {
            server,
            ..self.cpu[0]
        }
    }
}

pub(super) async fn sweep(o: &Options) -> Result<Report, String> {
    let k = o.instances.unwrap_or(2).max(2);
    let rooms = o.rooms.unwrap_or(12).max(k);
    let rates = o.rates.clone().unwrap_or_default();
    let duration = o.duration.unwrap_or(Duration::from_secs(10));
    let cluster = Cluster::start(o, k).await?;
    let instances = &cluster.instances;
    let mut report = Report::new("cross", "postgres");
    let world = populate(&instances[0], k * POSTERS_PER_INSTANCE + k, rooms, true).await?;
    // Instance i posts into rooms i, i + k, …, by posters of its own.
    let origins: Vec<World> = (0..k)
        .map(|i| {
            let people = i * POSTERS_PER_INSTANCE..(i + 1) * POSTERS_PER_INSTANCE;
            World {
                people: world.people[people.clone()].to_vec(),
                names: world.names[people].to_vec(),
                rooms: world.rooms.iter().skip(i).step_by(k).cloned().collect(),
            }
        })
        .collect();
    // A reader on every instance holds a socket to every room: on another instance than the
    // room's poster's it is measured (`receiving[j]`), on the same one it only drains.
    let receiving: Vec<Arc<Tally>> = (0..k).map(|_| Arc::new(Tally::default())).collect();
    let local = Arc::new(Tally::default());
    let mut drains = JoinSet::new();
    for (j, instance) in instances.iter().enumerate() {
        let reader = &world.people[k * POSTERS_PER_INSTANCE + j];
        for (r, code) in world.rooms.iter().enumerate() {
            let ws = client::connect(&instance.base, reader, code, 0).await?;
            let tally = if r % k == j { &local } else { &receiving[j] }.clone();
            drains.spawn(async move { client::drain(ws, tally, None).await });
        }
    }
    super::settle().await;
    report.note(format!(
        "{k} instances over {}, {rooms} rooms (room r posted into from instance r mod {k} by {POSTERS_PER_INSTANCE} people there), a reader's socket to every room on every instance; {:.0} s per rate, open loop (HTTP form posts, committed on PostgreSQL)",
        cluster.bus(),
        duration.as_secs_f64()
    ));
    let database = url::Url::parse(&instances[0].database_url)
        .map(|u| u.path().trim_start_matches('/').to_string())
        .map_err(|e| e.to_string())?;
    let http = client::http();
    let mut table = sweep_table(k);
    let mut outcomes = Vec::new();
    let mut steps = Vec::new();
    let mut accepted = 0;
    for &rate in &rates {
        let d0: Vec<u64> = receiving
            .iter()
            .map(|t| {
                t.take_latencies();
                t.recording.store(true, Relaxed);
                t.deliveries.load(Relaxed)
            })
            .collect();
        let mut reads = 0.0;
        for instance in instances {
            reads -= counter(&http, &instance.base, "natter_hub_catch_ups_total").await;
        }
        let pg = PgSampler::start(&o.postgres_url, &database).await;
        let nats0 = cluster.nats.as_ref().and_then(|n| n.cpu());
        let meters: Vec<Meter> = instances.iter().map(Meter::start).collect();
        let posted: Vec<Posted> = join_all(origins.iter().enumerate().map(|(i, w)| {
            // Each instance's share of the rate is its share of the rooms.
            let share = rate * w.rooms.len() as f64 / rooms as f64;
            post_at_rate(&instances[i].base, w, share, duration, w.people.len())
        }))
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
        let owed: Vec<u64> = (0..k)
            .map(|j| {
                // Instance j has one socket in each of the other instances' rooms.
                (0..k)
                    .filter(|i| *i != j)
                    .map(|i| posted[i].ok)
                    .sum::<u64>()
            })
            .collect();
        let deadline = Instant::now() + STRAGGLERS;
        let arrived = |j: usize| receiving[j].deliveries.load(Relaxed) - d0[j];
        while (0..k).any(|j| arrived(j) < owed[j]) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let cpu: Vec<Cpu> = meters.iter().map(Meter::read).collect();
        let postgres = match pg {
            Some(pg) => pg.stop().await,
            None => None,
        };
        let nats = cluster
            .nats
            .as_ref()
            .and_then(|n| Some(n.cpu()?.saturating_sub(nats0?)));
        for instance in instances {
            reads += counter(&http, &instance.base, "natter_hub_catch_ups_total").await;
        }
        let mut pooled = Vec::new();
        let mut worst_p99 = f64::NAN;
        for t in &receiving {
            t.recording.store(false, Relaxed);
            let mut lat = t.take_latencies();
            lat.sort_unstable();
            let p99 = percentile(&lat, 0.99) / 1000.0;
            worst_p99 = if worst_p99.is_nan() {
                p99
            } else {
                worst_p99.max(p99)
            };
            pooled.extend(lat);
        }
        pooled.sort_unstable();
        let expected: u64 = owed.iter().sum();
        let missing: u64 = (0..k).map(|j| owed[j].saturating_sub(arrived(j))).sum();
        let total = posted.iter().fold(Posted::default(), |a, p| Posted {
            sent: a.sent + p.sent,
            ok: a.ok + p.ok,
            failed: a.failed + p.failed,
            sending: a.sending.max(p.sending),
            waited_for_server: a.waited_for_server.max(p.waited_for_server),
        });
        accepted += total.ok;
        let window = total.sending.as_secs_f64().max(1e-9);
        let step = Step {
            outcome: Outcome {
                offered: rate,
                acknowledged: total.ok as f64 / window,
                failed: total.failed,
                missing,
                p99_ms: worst_p99,
            },
            posted: total,
            expected,
            p50_ms: percentile(&pooled, 0.5) / 1000.0,
            p99_ms: percentile(&pooled, 0.99) / 1000.0,
            reads_per_post: reads / total.ok.max(1) as f64,
            cpu,
            postgres,
            nats,
        };
        report.check(
            missing == 0,
            format!(
                "offered {rate:.0} posts/s: {missing} of {expected} deliveries owed to other instances did not arrive within {} s",
                STRAGGLERS.as_secs()
            ),
        );
        record_step(&mut report, &mut table, &step);
        outcomes.push(step.outcome);
        steps.push(step);
        if stop_after(&mut report, &outcomes).await {
            break;
        }
    }
    let best = sweep_end(
        &mut report,
        table,
        &outcomes,
        "all acknowledged and delivered, p99 < 100 ms",
    );
    if let Some(step) = steps
        .iter()
        .find(|s| Some(s.outcome.offered) == best && s.outcome.sustained())
    {
        report.figure(
            "at it: slowest instance's post→delivery p99",
            step.outcome.p99_ms,
            "ms",
        );
        report.figure(
            "at it: database reads per post",
            step.reads_per_post,
            "reads",
        );
        if let Some(us) = per_post(step.postgres, step.posted.ok) {
            report.figure("at it: PostgreSQL backends' CPU per post", us, "µs");
        }
        if let Some(us) = step.instances_cpu().server_us_per(step.posted.ok) {
            report.figure("at it: all instances' CPU per post", us, "µs");
        }
    }
    report.note("deliveries: all pooled over the receiving instances (a post's own instance not included); `slowest p99` is the worst instance's");
    report.note(
        "PostgreSQL CPU: /proc time of the backends serving the run's database, sampled every 0.2 s (the instances' background queries included)",
    );
    check_stored(&instances[0], &mut report, accepted).await;
    drains.abort_all();
    Ok(report)
}

fn per_post(cpu: Option<Duration>, posts: u64) -> Option<f64> {
    (posts > 0).then(|| cpu.map(|c| c.as_secs_f64() * 1e6 / posts as f64))?
}

fn sweep_table(k: usize) -> Table {
    let each = format!("instances 1..{k} [µs/post]",);
    Table::new(
        "cross-instance sweep: one line per offered rate",
        &[
            "offered [posts/s]",
            "sent [/s]",
            "acknowledged [/s]",
            "failed",
            "deliveries owed",
            "missing",
            "p50 [ms]",
            "p99 [ms]",
            "slowest p99 [ms]",
            "reads/post",
            "instances [µs/post]",
            each.as_str(),
            "PostgreSQL [µs/post]",
            "nats-server [µs/post]",
            "CPU 0 busy [%]",
            "PostgreSQL busy [%]",
            "generator busy [%]",
            "sustained",
        ],
    )
}

fn record_step(report: &mut Report, table: &mut Table, step: &Step) {
    let (o, posted) = (&step.outcome, &step.posted);
    let window = posted.sending.as_secs_f64().max(1e-9);
    let sent = posted.sent as f64 / window;
    let all = step.instances_cpu();
    if let Some(why) = offer_limit(o.offered, sent, posted, &all) {
        report.note(format!(
            "offered {:.0} posts/s, sent {sent:.0}/s: {why}",
            o.offered
        ));
    }
    report.add_cpu(&all);
    let each = step
        .cpu
        .iter()
        .map(|c| {
            c.server_us_per(posted.ok)
                .map_or("?".into(), |us| format!("{us:.0}"))
        })
        .collect::<Vec<_>>()
        .join(" / ");
    let wall = step.cpu[0].wall.as_secs_f64();
    table.line(vec![
        (o.offered as u64).into(),
        (sent.round() as u64).into(),
        (o.acknowledged.round() as u64).into(),
        o.failed.into(),
        step.expected.into(),
        o.missing.into(),
        step.p50_ms.into(),
        step.p99_ms.into(),
        o.p99_ms.into(),
        step.reads_per_post.into(),
        all.server_us_per(posted.ok).into(),
        each.into(),
        per_post(step.postgres, posted.ok).into(),
        per_post(step.nats, posted.ok).into(),
        all.server_busy_pct().into(),
        step.postgres.map(|c| c.as_secs_f64() / wall * 100.0).into(),
        all.generator_busy_pct().into(),
        o.sustained().into(),
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(offered: f64, p99_ms: f64) -> Outcome {
        Outcome {
            offered,
            acknowledged: offered,
            failed: 0,
            missing: 0,
            p99_ms,
        }
    }

    #[test]
    fn the_sustained_rate_is_the_highest_step_under_the_p99_bound() {
        let steps = [step(50.0, 20.0), step(100.0, 60.0), step(200.0, 140.0)];
        assert_eq!(sustained_rate(&steps), Some(100.0));
    }

    #[test]
    fn a_step_that_held_above_one_that_did_not_still_counts() {
        let steps = [step(50.0, 20.0), step(100.0, 120.0), step(200.0, 90.0)];
        assert_eq!(sustained_rate(&steps), Some(200.0));
    }

    #[test]
    fn a_failed_post_a_missing_delivery_or_a_short_offer_is_not_sustained() {
        let failed = Outcome {
            failed: 1,
            ..step(100.0, 10.0)
        };
        let missing = Outcome {
            missing: 1,
            ..step(100.0, 10.0)
        };
        let short = Outcome {
            acknowledged: 90.0,
            ..step(100.0, 10.0)
        };
        let nothing = step(100.0, f64::NAN);
        for s in [failed, missing, short, nothing] {
            assert!(!s.sustained(), "{s:?}");
        }
        assert_eq!(sustained_rate(&[failed, missing, short, nothing]), None);
        assert!(step(100.0, 99.9).sustained());
        assert!(!step(100.0, 100.0).sustained());
    }

    #[test]
    fn the_sweep_stops_only_far_past_sustaining() {
        assert!(!step(100.0, 400.0).beyond());
        assert!(step(100.0, 1000.0).beyond());
        assert!(step(100.0, f64::NAN).beyond());
        let short = Outcome {
            acknowledged: 70.0,
            ..step(100.0, 50.0)
        };
        assert!(short.beyond());
    }

    #[test]
    fn backends_count_from_the_first_sample_and_new_ones_from_zero() {
        let ms = Duration::from_millis;
        let mut cpu = BackendCpu::default();
        cpu.sample(&[(1, ms(500)), (2, ms(100))]);
        cpu.sample(&[(1, ms(700)), (2, ms(100)), (3, ms(30))]);
        // Backend 2 ended; its last reading stands.
        cpu.sample(&[(1, ms(800)), (3, ms(50))]);
        assert_eq!(cpu.total(), ms(300 + 50));
    }
}
