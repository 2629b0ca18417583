//! NATS's own ceiling (`natter-load bus`): how many of natter's cross-instance messages one
//! `nats-server` carries, with no natter and no database in the way, so the README can say how
//! to size it.
//!
//! natter-load starts a `nats-server` of its own (pinned to CPU 0 like natter elsewhere) and
//! connects `--instances` (4) clients to it as natter's instances would: without echo, each
//! subscribed to `natter.room.{r}` of all `--rooms` (100) rooms (every room active on every
//! instance, the most traffic a post can make), each publishing into its share of the rooms
//! (room r from client r mod K). A post is one message of `--bytes` (1,200: a 100-character
//! message's `m`, which carries its event and rendered frame, about twice its text plus 1 KB)
//! with its send time in its first 8 bytes, and reaches the K − 1 other clients.
//!
//! At each offered rate of `--rates` (posts/s over the whole cluster) in turn, for
//! `--duration` (10 s) each: posts sent per second, deliveries owed and missing,
//! publish→receive p50/p99 pooled over every client, and nats-server's CPU per post and per
//! delivery. A step is sustained as in `cross --rates`: everything sent at ≥ 95% of the
//! offered rate, every delivery arrived, p99 under 100 ms. There is no target and no failure:
//! a delivery NATS drops (a slow consumer) is what the sweep is looking for, a `missing` count.
//! The generator (publishers and subscribers on one core) can run out before nats-server
//! does; each step says which core was busy.

use std::{
    sync::{Arc, atomic::Ordering::Relaxed},
    time::{Duration, Instant},
};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{StreamExt, future::join_all};
use tokio::task::JoinSet;

use super::{
    cross::NatsServer,
    cross_sweep::{Outcome, stop_after, sweep_end},
};
use crate::{
    Options,
    client::{Tally, now_us},
    report::{Cpu, GENERATOR_SATURATED_PCT, Report, Table, percentile},
    server::own_cpu,
};

/// How long after a step's last publish its deliveries may still arrive.
const STRAGGLERS: Duration = Duration::from_secs(10);

/// One client's publishing over a step.
#[derive(Default, Clone, Copy)]
struct Published {
    sent: u64,
    failed: u64,
    sending: Duration,
}

pub(super) async fn bus(o: &Options) -> Result<Report, String> {
    let k = o.instances.unwrap_or(4).max(2);
    let rooms = o.rooms.unwrap_or(100).max(k);
    let bytes = o.bytes.unwrap_or(1200).max(8);
    let rates = o
        .rates
        .clone()
        .unwrap_or_else(|| vec![10000.0, 20000.0, 40000.0, 80000.0, 120000.0, 160000.0]);
    let duration = o.duration.unwrap_or(Duration::from_secs(10));
    let nats = NatsServer::start(o.pin).await?;
    let mut clients = Vec::new();
    for i in 0..k {
        let client = async_nats::ConnectOptions::new()
            .name(format!("natter-load {i}"))
            .no_echo()
            .connect(nats.url())
            .await
            .map_err(|e| format!("cannot connect to nats-server: {e}"))?;
        clients.push(client);
    }
    // A subject is shared bytes: each publish clones one without allocating.
    let subjects: Vec<async_nats::Subject> = (0..rooms)
        .map(|r| format!("natter.room.{r}").into())
        .collect();
    let tally = Arc::new(Tally::default());
    let mut receivers = JoinSet::new();
    for client in &clients {
        for subject in &subjects {
            let mut subscriber = client
                .subscribe(subject.clone())
                .await
                .map_err(|e| format!("cannot subscribe to {subject}: {e}"))?;
            let tally = tally.clone();
            receivers.spawn(async move {
                while let Some(message) = subscriber.next().await {
                    let Some(stamp) = message.payload.first_chunk::<8>() else {
                        continue;
                    };
                    tally.deliveries.fetch_add(1, Relaxed);
                    if tally.recording.load(Relaxed) {
                        let sent = u64::from_le_bytes(*stamp);
                        let us = now_us().saturating_sub(sent).min(u32::MAX as u64) as u32;
                        tally.latencies.lock().push(us);
                    }
                }
            });
        }
        client
            .flush()
            .await
            .map_err(|e| format!("nats-server did not take the subscriptions: {e}"))?;
    }
    super::settle().await;
    let mut report = Report::new("bus", "none");
    report.note(format!(
        "one nats-server{}, {k} clients as natter's instances (no echo), each subscribed to all {rooms} rooms' subjects and publishing into its share; one post = one {bytes}-byte message to {} others; {:.0} s per rate",
        if o.pin { " pinned to CPU 0" } else { "" },
        k - 1,
        duration.as_secs_f64()
    ));
    let mut table = Table::new(
        "nats-server sweep: one line per offered rate",
        &[
            "offered [posts/s]",
            "sent [/s]",
            "failed",
            "delivered [/s]",
            "deliveries owed",
            "missing",
            "p50 [ms]",
            "p99 [ms]",
            "nats-server [µs/post]",
            "nats-server [µs/delivery]",
            "nats-server busy [%]",
            "generator busy [%]",
            "sustained",
        ],
    );
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut at_rate: Vec<(f64, f64)> = Vec::new();
    for &rate in &rates {
        tally.take_latencies();
        tally.recording.store(true, Relaxed);
        let d0 = tally.deliveries.load(Relaxed);
        let (server0, generator0, started) = (nats.cpu(), own_cpu(), Instant::now());
        let published: Vec<Published> = join_all(clients.iter().enumerate().map(|(i, c)| {
            let mine: Vec<async_nats::Subject> =
                subjects.iter().skip(i).step_by(k).cloned().collect();
            let share = rate * mine.len() as f64 / rooms as f64;
            publish(c, mine, share, bytes, duration)
        }))
        .await;
        let sent: u64 = published.iter().map(|p| p.sent).sum();
        let owed = sent * (k as u64 - 1);
        let deadline = Instant::now() + STRAGGLERS;
        let arrived = || tally.deliveries.load(Relaxed) - d0;
        while arrived() < owed && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let cpu = Cpu {
            server: nats.cpu().and_then(|c| Some(c.saturating_sub(server0?))),
            generator: own_cpu().and_then(|c| Some(c.saturating_sub(generator0?))),
            wall: started.elapsed(),
        };
        tally.recording.store(false, Relaxed);
        let mut latencies = tally.take_latencies();
        latencies.sort_unstable();
        let delivered = arrived().min(owed);
        let window = published
            .iter()
            .map(|p| p.sending)
            .max()
            .unwrap_or_default()
            .as_secs_f64()
            .max(1e-9);
        let outcome = Outcome {
            offered: rate,
            acknowledged: sent as f64 / window,
            failed: published.iter().map(|p| p.failed).sum(),
            missing: owed - delivered,
            p99_ms: percentile(&latencies, 0.99) / 1000.0,
        };
        if let Some(busy) = cpu
            .generator_busy_pct()
            .filter(|g| *g >= GENERATOR_SATURATED_PCT)
        {
            report.note(format!(
                "offered {rate:.0} posts/s: the generator's core was full ({busy:.0}%), so this step measured it as much as nats-server"
            ));
        }
        table.line(vec![
            (rate as u64).into(),
            (outcome.acknowledged.round() as u64).into(),
            outcome.failed.into(),
            ((delivered as f64 / window).round() as u64).into(),
            owed.into(),
            outcome.missing.into(),
            (percentile(&latencies, 0.5) / 1000.0).into(),
            outcome.p99_ms.into(),
            cpu.server_us_per(sent).into(),
            cpu.server_us_per(delivered).into(),
            cpu.server_busy_pct().into(),
            cpu.generator_busy_pct().into(),
            outcome.sustained().into(),
        ]);
        report.add_cpu(&cpu);
        if let (Some(us), true) = (cpu.server_us_per(sent), outcome.sustained()) {
            at_rate.push((rate, us));
        }
        outcomes.push(outcome);
        if stop_after(&mut report, &outcomes).await {
            break;
        }
    }
    let best = sweep_end(&mut report, table, &outcomes, "all delivered, p99 < 100 ms");
    if let Some((_, us)) = at_rate.iter().find(|(r, _)| Some(*r) == best) {
        report.figure("at it: nats-server CPU per post", *us, "µs");
    }
    report.note(format!(
        "a post reaches each other instance that has its room active: here all {}; with fewer, nats-server does less per post",
        k - 1
    ));
    receivers.abort_all();
    Ok(report)
}

/// Publishes at `rate` posts/s into `subjects` in turn for `duration`, each message `bytes`
/// long and starting with its send time (µs since the run's epoch, little-endian).
async fn publish(
    client: &async_nats::Client,
    subjects: Vec<async_nats::Subject>,
    rate: f64,
    bytes: usize,
    duration: Duration,
) -> Published {
    let mut done = Published::default();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let padding = vec![b'x'; bytes - 8];
    while started.elapsed() < duration {
        tick.tick().await;
        let due = (rate * started.elapsed().as_secs_f64().min(duration.as_secs_f64())) as u64;
        while done.sent + done.failed < due {
            let mut payload = BytesMut::with_capacity(bytes);
            payload.put_u64_le(now_us());
            payload.put_slice(&padding);
            let subject = subjects[(done.sent + done.failed) as usize % subjects.len()].clone();
            match client.publish(subject, Bytes::from(payload)).await {
                Ok(()) => done.sent += 1,
                Err(_) => done.failed += 1,
            }
        }
    }
    if client.flush().await.is_err() {
        // What was not flushed may not arrive; the missing count shows it.
        eprintln!("natter-load: a flush to nats-server failed");
    }
    done.sending = started.elapsed();
    done
}
