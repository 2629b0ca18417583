//! Cross-instance: `--instances` (2) natter instances on one PostgreSQL database, talking over
//! `--bus` (`notify`, PostgreSQL NOTIFY, the default; or `nats`, a `nats-server` natter-load
//! starts on a free port). `--posts` messages (3,000) are posted on the first instance (HTTP
//! form post, committed on PostgreSQL) one at a time, each waited for on a socket on every
//! other instance, and the post→delivery p50 and p99 (the slowest instance's) are reported
//! with each server's CPU (PostgreSQL's and NATS's own CPU are in none) and the database reads
//! the receiving instances made per post (`natter_hub_catch_ups_total`).
//!
//! There is no target. A message that does not arrive everywhere within 10 s ends the run with
//! an error.
//!
//! With `--rates` the run is a sweep instead (`cross_sweep`): posts on every instance at each
//! offered rate in turn, without waiting, and the highest rate the cluster sustains.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use futures_util::StreamExt;

use crate::{
    Options,
    client::{self, STAMP},
    report::{Cpu, Report, percentile},
    server::{Meter, Server},
};

/// A `nats-server` of the run's own, killed with it.
pub(super) struct NatsServer(Child, String);

impl NatsServer {
    /// On a free port; on CPU 0 when `pin` (`server::cpu0_prefix`), where natter runs
    /// elsewhere.
    pub(super) async fn start(pin: bool) -> Result<NatsServer, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let mut argv = crate::server::cpu0_prefix(pin).to_vec();
        argv.push("nats-server");
        let child = Command::new(argv[0])
            .args(&argv[1..])
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!("--bus nats needs nats-server (apt-get install nats-server): {e}")
            })?;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(NatsServer(child, format!("nats://127.0.0.1:{port}")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err("nats-server did not come up".into())
    }
}

impl NatsServer {
    pub(super) fn url(&self) -> &str {
        &self.1
    }

    /// Its CPU time so far (user + system).
    pub(super) fn cpu(&self) -> Option<Duration> {
        crate::server::cpu_of(self.0.id())
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The frames rooms' writers wrote (the rest went through the sockets' own tasks).
pub(super) const WRITES: &str = "natter_fanout_writes_total";

/// An instance's `/metrics` text (empty when it does not answer).
async fn metrics(http: &reqwest::Client, base: &str) -> String {
    match http.get(format!("{base}/metrics")).send().await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// A counter from an instance's `/metrics` (0 when absent).
pub(super) async fn counter(http: &reqwest::Client, base: &str, series: &str) -> f64 {
    metrics(http, base)
        .await
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The post writer's commit times (`natter_store_commit_seconds`): a post reaches nobody
/// before its commit, so on SQLite the disk's fsync is the floor under post→delivery.
pub(super) const COMMITS: &str = "natter_store_commit_seconds";

/// A histogram from an instance's `/metrics`: each bucket's upper bound (seconds) and its
/// cumulative count, in the order exported (empty when absent).
pub(super) async fn histogram(http: &reqwest::Client, base: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    metrics(http, base)
        .await
        .lines()
        .filter_map(|line| {
            let (le, count) = line.strip_prefix(&prefix)?.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect()
}

/// The upper bound (ms) of the bucket that holds quantile `q` of what `after` observed since
/// `before` (two reads of one histogram), or NaN when it observed nothing.
pub(super) fn quantile_since(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> f64 {
    let since = |i: usize, n: f64| n - before.get(i).map_or(0.0, |b| b.1);
    let total = after
        .last()
        .map_or(0.0, |&(_, n)| since(after.len() - 1, n));
    if total <= 0.0 {
        return f64::NAN;
    }
    after
        .iter()
        .enumerate()
        .find(|&(i, &(_, n))| since(i, n) >= q * total)
        .map_or(f64::NAN, |(_, &(le, _))| le * 1000.0)
}

/// K natter instances on one fresh PostgreSQL database, over the bus the options ask for.
pub(super) struct Cluster {
    /// The first one owns the database (dropped with it), so it goes last.
    pub instances: Vec<Server>,
    /// Stopped after every instance.
    pub nats: Option<NatsServer>,
}

impl Cluster {
    pub async fn start(o: &Options, k: usize) -> Result<Cluster, String> {
        let mut options = o.clone();
        options.db = "postgres".into();
        let nats = match o.bus.as_str() {
            "nats" => Some(NatsServer::start(false).await?),
            _ => None,
        };
        let bus: Vec<(&str, &str)> = match &nats {
            Some(server) => vec![("NATTER_BUS", server.1.as_str())],
            None => Vec::new(),
        };
        let first = Server::start_with(&options, &bus).await?;
        let mut instances = vec![first];
        for _ in 1..k {
            let another = instances[0].another_with(o.pin, &bus).await?;
            instances.push(another);
        }
        Ok(Cluster { instances, nats })
    }

    /// What the instances talk over, for notes.
    pub fn bus(&self) -> &'static str {
        match self.nats {
            Some(_) => "NATS",
            None => "PostgreSQL NOTIFY",
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The others stop before the first drops the database under them.
        while let Some(server) = self.instances.pop() {
            drop(server);
        }
    }
}

pub(super) async fn cross(o: &Options) -> Result<Report, String> {
    if o.rates.is_some() {
        return super::cross_sweep::sweep(o).await;
    }
    let k = o.instances.unwrap_or(2).max(2);
    let cluster = Cluster::start(o, k).await?;
    let (a, others) = cluster
        .instances
        .split_first()
        .ok_or("no instance started")?;
    let mut report = Report::new("cross", "postgres");
    let http = client::http();
    let poster = client::sign_up(&http, &a.base, "poster@bench.example", "poster").await?;
    let code = poster.create_room(&http, &a.base, "Cross").await?;
    let mut sockets = Vec::new();
    for (i, other) in others.iter().enumerate() {
        let email = format!("reader{i}@bench.example");
        let reader = client::sign_up(&http, &other.base, &email, &format!("reader{i}")).await?;
        reader.join(&http, &other.base, &code).await?;
        sockets.push(client::connect(&other.base, &reader, &code, 0).await?);
    }
    let n = o.posts.unwrap_or(3000);
    let mut lat: Vec<u32> = Vec::with_capacity(n);
    let reads_before = {
        let mut sum = 0.0;
        for other in others {
            sum += counter(&http, &other.base, "natter_hub_catch_ups_total").await;
        }
        sum
    };
    let meter_a = Meter::start(a);
    let meters: Vec<Meter> = others.iter().map(Meter::start).collect();
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
        for (s, ws) in sockets.iter_mut().enumerate() {
            loop {
                match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                    Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))))
                        if t.contains(&format!("#{i}<")) =>
                    {
                        break;
                    }
                    Ok(Some(Ok(_))) => continue,
                    _ => return Err(format!("message {i} did not arrive on instance {}", s + 2)),
                }
            }
        }
        lat.push(sent.elapsed().as_micros() as u32);
    }
    let on_a = meter_a.read();
    let on_others: Vec<Cpu> = meters.iter().map(Meter::read).collect();
    let mut reads = -reads_before;
    for other in others {
        reads += counter(&http, &other.base, "natter_hub_catch_ups_total").await;
    }
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
    report.figure(
        "database reads by receiving instances per post",
        reads / n as f64,
        "reads",
    );
    // The first instance takes the posts, the others deliver them; the generator's CPU is
    // read once.
    report.cpu("posting on instance 1", &on_a, Some((n as u64, "message")));
    for (i, cpu) in on_others.into_iter().enumerate() {
        let cpu = Cpu {
            generator: None,
            ..cpu
        };
        report.cpu(
            &format!("delivering on instance {}", i + 2),
            &cpu,
            Some((n as u64, "message")),
        );
    }
    report.note(format!(
        "{n} messages posted on instance 1 of {k} (HTTP form post, committed on PostgreSQL), received by a socket on each other instance, one at a time, over {}",
        cluster.bus()
    ));
    report.note("PostgreSQL's (and nats-server's) own CPU is in no server's figure");
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::quantile_since;

    #[test]
    fn a_quantile_of_a_histogram_is_read_from_what_it_observed_between_two_reads() {
        let before = [
            (0.001, 10.0),
            (0.005, 10.0),
            (0.01, 10.0),
            (f64::INFINITY, 10.0),
        ];
        // Since: 90 within 1 ms, 9 within 5 ms, 1 within 10 ms.
        let after = [
            (0.001, 100.0),
            (0.005, 109.0),
            (0.01, 110.0),
            (f64::INFINITY, 110.0),
        ];
        assert_eq!(quantile_since(&before, &after, 0.5), 1.0);
        assert_eq!(quantile_since(&before, &after, 0.99), 5.0);
        assert_eq!(quantile_since(&before, &after, 1.0), 10.0);
        // The first read may find no histogram yet.
        assert_eq!(quantile_since(&[], &after, 0.99), 5.0);
        assert!(quantile_since(&after, &after, 0.99).is_nan());
        assert!(quantile_since(&[], &[], 0.99).is_nan());
    }
}
