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
mod net;
mod report;
mod scenarios;
mod server;

use std::{io::Write, process::ExitCode, time::Duration};

/// The command line. Each knob is `None` unless given: every scenario has defaults of its own
/// (`--members` is 190 for fan-out and 10,000 for the big room), and any value can be asked
/// for explicitly.
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
    pub duration: Option<Duration>,
    /// Offered delivery rate (per second) for saturation.
    pub rate: Option<f64>,
    pub rooms: Option<usize>,
    pub members: Option<usize>,
    pub sockets: Option<usize>,
    pub concurrency: Option<usize>,
    /// How many posts the big-room and cross-instance scenarios send.
    pub posts: Option<usize>,
    /// Offered rates (per second) for the fan-out sweep (deliveries) and the cross-instance
    /// sweep (posts).
    pub rates: Option<Vec<f64>>,
    pub pin: bool,
    /// Whether durable posts mention a member of their room (`@name`), the post path that
    /// also stores a mention.
    pub mention: bool,
    /// How many instances the cross-instance scenario starts (2).
    pub instances: Option<usize>,
    /// What the cross-instance scenario's instances talk over: `notify` or `nats`.
    pub bus: String,
    /// How the generator reaches natter: `loopback` (default) or `veth` (natter in a network
    /// namespace of its own, `net.rs`).
    pub net: String,
    /// The size of one bus message (`bus`).
    pub bytes: Option<usize>,
}

const HELP: &str = "natter-load <scenario> [options]

scenarios, with the knobs each reads and their defaults:
  idle         hold sockets open: server RSS per socket, CPU to open and to hold them
                 --sockets 19000 --rooms 100 --duration 10 (how long they are held)
  handshakes   signed-in socket upgrades per second
                 --sockets 19000 --rooms 100 --concurrency 64
  fanout       rooms x members sockets, posts at each offered delivery rate in turn;
               capacity by a lenient and a strict criterion
                 --rooms 100 --members 190 --rates 20000,60000,80000,100000,120000
                 --duration 10 (per rate)
  bigroom      one room, posts one at a time: each post's delivery p50/p99/max
                 --members 10000 --posts 10
  saturation   offer a delivery rate (2x fan-out's lenient capacity) for a while, then
               check that every client holds its room's full history within 30 s
                 --rooms 100 --members 190 --rate 232000 --duration 30
  durable      posts/s through the form POST path, nobody listening
                 --members 1000 --rooms 100 --concurrency 128 (posting workers)
                 --duration 10 --mention (each post mentions its room's creator)
  pages        room pages/s (5 members, 50 messages), then home pages/s for a person in 200
               rooms with unread messages; with wrk if installed, else built in
                 --concurrency 32 (connections) --duration 10
  streams      hold streamed rooms open (pages without JavaScript), four per person:
               server RSS per idle stream, then one post at a time: delivery p50/p99
                 --sockets 2000 --rooms 10 --duration 10 --posts 20
  uploads      attachments: one 10 MiB upload's speed, server memory while N people upload
               10 MiB each at once, a 12-megapixel photo's post (its thumbnail)
                 --concurrency 20
  cross        K instances on PostgreSQL: post on the first, receive on each other one, one
               post at a time: p50/p99, database reads per post
                 --posts 3000 --instances 2 --bus notify|nats (nats starts a nats-server)
               with --rates: post on every instance at each offered rate (posts/s) in turn,
               without waiting, receive on every other one: the highest rate sustained
               with p99 < 100 ms, reads and CPU (instances, PostgreSQL) per post
                 --rates 50,100,200,400 --duration 10 (per rate) --rooms 12
  search       search pages for a member of 50 rooms: messages seeded by bulk SQL, then
               200 searches per kind (common word, rare word, prefix, phrase, from:), p50/p99
                 --rooms 1000 --posts 1000000 (messages seeded)
  bus          one nats-server's ceiling for natter's cross-instance messages (no natter,
               no database): K clients as instances, each subscribed to every room and
               publishing into its share, at each offered rate (posts/s) in turn: the
               highest rate with every delivery and p99 < 100 ms, nats-server CPU per post
                 --instances 4 --rooms 100 --bytes 1200 (one post's message)
                 --rates 10000,20000,40000,80000,120000,160000 --duration 10 (per rate)

options:
  --db sqlite|postgres     database for the server natter-load starts (default sqlite)
  --postgres-url URL       admin URL for --db postgres and cross
                           (default postgres://postgres@127.0.0.1:5432/postgres)
  --target URL             use a running natter instead of starting one (no server CPU,
                           RSS or stored-posts checks then)
  --json FILE              also write the results as JSON
  --duration SECONDS       measured phase length
  --concurrency N          socket handshakes in flight while opening sockets (default 64)
  --no-pin                 do not pin server and generator to CPUs 0 and 1
  --net loopback|veth      veth: natter runs in a network namespace of its own, reached
                           over a veth pair with each side's receive work on its reader's
                           core (RPS), as a remote client would see it (needs root and
                           `ip`; SQLite, one instance; default loopback)

Every scenario reports both sides' CPU. A failed correctness check (an acknowledged post
not stored, a post that missed a member, a client without its history, a crashed server,
a closed idle socket) makes natter-load exit with status 1; a missed speed target does not.";

/// `None` when help was asked for.
fn parse_args() -> Result<Option<Options>, String> {
    let mut args = std::env::args().skip(1);
    let scenario = args.next().ok_or(HELP)?;
    if scenario == "-h" || scenario == "--help" {
        return Ok(None);
    }
    let mut o = Options {
        scenario,
        db: "sqlite".into(),
        postgres_url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
        target: None,
        json: None,
        duration: None,
        rate: None,
        rooms: None,
        members: None,
        sockets: None,
        concurrency: None,
        posts: None,
        rates: None,
        pin: true,
        mention: false,
        instances: None,
        bus: "notify".into(),
        net: "loopback".into(),
        bytes: None,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--db" => o.db = value()?,
            "--postgres-url" => o.postgres_url = value()?,
            "--target" => o.target = Some(value()?),
            "--json" => o.json = Some(value()?),
            "--duration" => o.duration = Some(Duration::from_secs_f64(positive(&flag, &value()?)?)),
            "--rate" => o.rate = Some(positive(&flag, &value()?)?),
            "--rooms" => o.rooms = Some(count(&flag, &value()?)?),
            "--members" => o.members = Some(count(&flag, &value()?)?),
            "--sockets" => o.sockets = Some(count(&flag, &value()?)?),
            "--concurrency" => o.concurrency = Some(count(&flag, &value()?)?),
            "--posts" => o.posts = Some(count(&flag, &value()?)?),
            "--rates" => {
                o.rates = Some(
                    value()?
                        .split(',')
                        .map(|r| positive(&flag, r.trim()))
                        .collect::<Result<_, _>>()?,
                )
            }
            "--no-pin" => o.pin = false,
            "--mention" => o.mention = true,
            "--instances" => o.instances = Some(count(&flag, &value()?)?),
            "--bus" => o.bus = value()?,
            "--net" => o.net = value()?,
            "--bytes" => o.bytes = Some(count(&flag, &value()?)?),
            other => return Err(format!("unknown option {other}\n\n{HELP}")),
        }
    }
    if o.bus != "notify" && o.bus != "nats" {
        return Err("--bus is notify or nats".into());
    }
    if o.db != "sqlite" && o.db != "postgres" {
        return Err("--db is sqlite or postgres".into());
    }
    if o.net != "loopback" && o.net != "veth" {
        return Err("--net is loopback or veth".into());
    }
    if o.net == "veth"
        && (o.db != "sqlite"
            || o.target.is_some()
            || ["cross", "bus"].contains(&o.scenario.as_str()))
    {
        // natter in the namespace reaches no database or NATS on the machine's loopback.
        return Err(
            "--net veth starts one natter on SQLite: not with --db postgres, --target, cross or bus"
                .into(),
        );
    }
    Ok(Some(o))
}

/// A number above zero (rates, seconds).
fn positive(flag: &str, text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("{flag} takes a number above 0, not {text:?}")),
    }
}

/// A whole number of at least one (rooms, members, sockets, posts).
fn count(flag: &str, text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "{flag} takes a whole number of at least 1, not {text:?}"
        )),
    }
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(Some(o)) => o,
        Ok(None) => {
            // Not println!: `natter-load --help | head` must not panic on the closed pipe.
            let _ = writeln!(std::io::stdout(), "{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if options.pin {
        server::pin_self(1);
    }
    // One worker thread (posting has a thread of its own, scenarios::post_at_rate, pinned
    // with it): the generator gets one core, like the server.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    if options.net == "veth" {
        if let Err(e) = net::set_up(options.pin) {
            net::tear_down();
            eprintln!("natter-load: --net veth: {e}");
            return ExitCode::FAILURE;
        }
        runtime.spawn(async {
            // natter gets the terminal's SIGINT too; the namespace is ours to remove.
            if tokio::signal::ctrl_c().await.is_ok() {
                net::tear_down();
                std::process::exit(130);
            }
        });
    }
    let result = runtime.block_on(scenarios::run(options));
    // The servers are stopped (dropped) by now: the namespace is empty.
    net::tear_down();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("natter-load: {e}");
            ExitCode::FAILURE
        }
    }
}
