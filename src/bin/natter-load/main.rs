//! natter's load generator and benchmark harness (not a test: nothing here asserts a time).
//!
//! ```sh
//! cargo run --release --bin natter-load -- <scenario> [options]
//! ```
//!
//! It starts natter itself (the release binary next to this one) pinned to CPU 0 and pins
//! itself to CPU 1 (when `taskset` exists), or targets a running server (`--target`). It signs
//! people in through development sign-in, drives real HTTP and WebSocket traffic, reports each
//! side's CPU, prints a table and writes JSON (`--json FILE`).

mod client;
mod report;
mod scenarios;
mod server;

use std::{process::ExitCode, time::Duration};

/// Options shared by every scenario.
#[derive(Clone, Debug)]
pub struct Options {
    pub scenario: String,
    /// `sqlite` (default) or `postgres`.
    pub db: String,
    /// PostgreSQL admin URL (a fresh database is created from it).
    pub postgres_url: String,
    /// A running natter to use instead of starting one (its limits must be raised).
    pub target: Option<String>,
    pub json: Option<String>,
    /// How long the measured phase runs.
    pub duration: Duration,
    /// Scenario-specific knobs.
    pub rate: Option<f64>,
    pub rooms: usize,
    pub members: usize,
    pub sockets: usize,
    pub concurrency: usize,
    /// Offered delivery rates (per second) for the fan-out sweep.
    pub rates: Vec<f64>,
    pub pin: bool,
}

const HELP: &str = "natter-load <scenario> [options]

scenarios:
  idle         hold sockets open; server RSS per socket          (--sockets 19000)
  handshakes   signed-in socket upgrades per second               (--sockets 19000 --concurrency 64)
  fanout       rooms x members sockets, posts at fixed rates      (--rooms 100 --members 190 --rates 20000,60000,80000,100000)
  bigroom      one room of many members, one post, delivery p99   (--members 10000)
  saturation   offer 2x a delivery rate for a while, then check every client has everything
                                                                 (--rate 232000 --duration 30)
  durable      posts/s through the form POST path, nobody listening (--members 1000 --rooms 100 --concurrency 128)
  pages        room pages/s (5 members, 50 messages), 32 connections (--concurrency 32)
  cross        two instances on PostgreSQL: post on A, receive on B, latency percentiles

options:
  --db sqlite|postgres     database for the server natter-load starts (default sqlite)
  --postgres-url URL       admin URL for --db postgres (default postgres://postgres@127.0.0.1:5432/postgres)
  --target URL             use a running natter instead of starting one
  --json FILE              also write the results as JSON
  --duration SECONDS       measured phase length (default 10)
  --no-pin                 do not pin server and generator to CPUs 0 and 1";

fn parse_args() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let scenario = args.next().ok_or(HELP)?;
    if scenario == "-h" || scenario == "--help" {
        return Err(HELP.into());
    }
    let mut o = Options {
        scenario,
        db: "sqlite".into(),
        postgres_url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
        target: None,
        json: None,
        duration: Duration::from_secs(10),
        rate: None,
        rooms: 100,
        members: 190,
        sockets: 19_000,
        concurrency: 64,
        rates: vec![20_000.0, 60_000.0, 80_000.0, 100_000.0, 120_000.0],
        pin: true,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--db" => o.db = value()?,
            "--postgres-url" => o.postgres_url = value()?,
            "--target" => o.target = Some(value()?),
            "--json" => o.json = Some(value()?),
            "--duration" => {
                o.duration =
                    Duration::from_secs_f64(value()?.parse().map_err(|_| "bad --duration")?)
            }
            "--rate" => o.rate = Some(value()?.parse().map_err(|_| "bad --rate")?),
            "--rooms" => o.rooms = value()?.parse().map_err(|_| "bad --rooms")?,
            "--members" => o.members = value()?.parse().map_err(|_| "bad --members")?,
            "--sockets" => o.sockets = value()?.parse().map_err(|_| "bad --sockets")?,
            "--concurrency" => o.concurrency = value()?.parse().map_err(|_| "bad --concurrency")?,
            "--rates" => {
                o.rates = value()?
                    .split(',')
                    .map(|r| r.trim().parse::<f64>().map_err(|_| "bad --rates"))
                    .collect::<Result<_, _>>()?
            }
            "--no-pin" => o.pin = false,
            other => return Err(format!("unknown option {other}\n\n{HELP}")),
        }
    }
    if o.db != "sqlite" && o.db != "postgres" {
        return Err("--db is sqlite or postgres".into());
    }
    Ok(o)
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if options.pin {
        server::pin_self(1);
    }
    // One worker thread: the generator gets one core, like the server.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    match runtime.block_on(scenarios::run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("natter-load: {e}");
            ExitCode::FAILURE
        }
    }
}
