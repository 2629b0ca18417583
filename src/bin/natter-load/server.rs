//! The server under test: a natter process started (and pinned) by the harness, or a running
//! one; CPU and memory readings from /proc.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{Options, report::Cpu};

/// Pins this process to `cpu` (best effort: needs `taskset`).
pub fn pin_self(cpu: usize) {
    let _ = Command::new("taskset")
        .args(["-acp", &cpu.to_string(), &std::process::id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The natter under test.
pub struct Server {
    pub base: String,
    pub pid: Option<u32>,
    child: Option<Child>,
    /// PostgreSQL database to drop afterwards (admin URL, name).
    pg: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
    /// Where its attachments go (every instance on one database shares it).
    files: std::sync::Arc<tempfile::TempDir>,
    pub database_url: String,
}

/// Settings every benchmark server gets: limits out of the way (the harness measures capacity,
/// not the per-person budgets), quiet logs.
pub const BENCH_ENV: &[(&str, &str)] = &[
    ("NATTER_LIMIT_POSTS", "1000000/1s"),
    ("NATTER_LIMIT_ROOMS", "1000000/1s"),
    ("NATTER_LIMIT_JOIN_FAILS", "1000000/1s"),
    ("NATTER_LIMIT_MEMBERSHIP", "1000000/1s"),
    ("NATTER_LIMIT_SIGN_INS", "1000000/1s"),
    ("NATTER_LIMIT_SEARCHES", "1000000/1s"),
    // A benchmark person holds a socket in each of their rooms (fan-out: 100 each).
    ("NATTER_SOCKETS_PER_USER", "10000"),
    ("NATTER_LOG", "warn"),
    ("NATTER_DEV_LOGIN", "1"),
];

impl Server {
    /// Starts natter (release binary beside this one) on a free port, pinned to CPU 0.
    pub async fn start(o: &Options) -> Result<Server, String> {
        Self::start_with(o, &[]).await
    }

    /// As `start`, with more settings.
    pub async fn start_with(o: &Options, extra: &[(&str, &str)]) -> Result<Server, String> {
        if let Some(target) = &o.target {
            return Ok(Server {
                base: target.trim_end_matches('/').to_string(),
                pid: None,
                child: None,
                pg: None,
                _dir: None,
                files: files_dir()?,
                database_url: String::new(),
            });
        }
        let (database_url, pg, dir) = match o.db.as_str() {
            "postgres" => {
                let (url, name) = create_pg_database(&o.postgres_url).await?;
                (url, Some((o.postgres_url.clone(), name)), None)
            }
            _ => {
                let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
                (
                    format!("sqlite://{}/bench.db", dir.path().display()),
                    None,
                    Some(dir),
                )
            }
        };
        let mut server = Server {
            base: String::new(),
            pid: None,
            child: None,
            pg,
            _dir: dir,
            files: files_dir()?,
            database_url: database_url.clone(),
        };
        server.spawn_on(&database_url, o.pin, extra).await?;
        Ok(server)
    }

    /// Another natter process on the same database (several instances need PostgreSQL), with
    /// more settings.
    pub async fn another_with(&self, pin: bool, extra: &[(&str, &str)]) -> Result<Server, String> {
        let mut other = Server {
            base: String::new(),
            pid: None,
            child: None,
            pg: None,
            _dir: None,
            files: self.files.clone(),
            database_url: self.database_url.clone(),
        };
        other.spawn_on(&self.database_url, pin, extra).await?;
        Ok(other)
    }

    /// Each room's newest seq, by code, from the database.
    pub async fn room_last_seqs(&self) -> std::collections::HashMap<String, i64> {
        let rows: Vec<(String, i64)> = if self.database_url.starts_with("sqlite:") {
            match sqlx::SqlitePool::connect(&self.database_url).await {
                Ok(pool) => sqlx::query_as("SELECT code, last_seq FROM rooms")
                    .fetch_all(&pool)
                    .await
                    .unwrap_or_default(),
                Err(_) => Vec::new(),
            }
        } else {
            match sqlx::PgPool::connect(&self.database_url).await {
                Ok(pool) => sqlx::query_as("SELECT code, last_seq FROM rooms")
                    .fetch_all(&pool)
                    .await
                    .unwrap_or_default(),
                Err(_) => Vec::new(),
            }
        };
        rows.into_iter().collect()
    }

    /// The bytes natter keeps in its files directory.
    pub fn stored_bytes(&self) -> u64 {
        fn walk(dir: &std::path::Path) -> u64 {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return 0;
            };
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(self.files.path())
    }

    /// Starts a natter process on `database_url`.
    async fn spawn_on(
        &mut self,
        database_url: &str,
        pin: bool,
        extra: &[(&str, &str)],
    ) -> Result<(), String> {
        let veth = crate::net::veth();
        let (ip, port) = match veth {
            // The namespace holds nothing else: any port is free there.
            Some(veth) => {
                static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(8080);
                let port = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                (veth.server_ip().to_string(), port)
            }
            None => {
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .map_err(|e| e.to_string())?
                    .local_addr()
                    .map_err(|e| e.to_string())?
                    .port();
                ("127.0.0.1".to_string(), port)
            }
        };
        let base = format!("http://{ip}:{port}");
        let exe = std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("natter");
        if !exe.exists() {
            return Err(format!(
                "{} not found: build it with `cargo build --release`",
                exe.display()
            ));
        }
        let callgrind = callgrind_dir();
        let mut args: Vec<std::ffi::OsString> = Vec::new();
        if let Some(veth) = veth {
            // `ip netns exec`, `taskset` and `valgrind` each exec the next: the child's pid is
            // natter's (or valgrind's, which is natter), and its /proc readings are natter's.
            args.extend(crate::net::exec_prefix(veth).map(Into::into));
        }
        args.extend(cpu0_prefix(pin).iter().map(Into::into));
        if let Some(dir) = &callgrind {
            // Counted only while a phase is measured (`Meter`): starting, signing in and
            // opening sockets run uninstrumented.
            args.extend([
                "valgrind".into(),
                "--tool=callgrind".into(),
                "--instr-atstart=no".into(),
                format!("--callgrind-out-file={}/natter.%p.out", dir.display()).into(),
            ]);
        }
        args.push(exe.clone().into());
        let mut cmd = Command::new(&args[0]);
        cmd.args(&args[1..]);
        cmd.env("NATTER_BIND", format!("{ip}:{port}"))
            .env("NATTER_PUBLIC_URL", &base)
            .env("NATTER_DATABASE_URL", database_url)
            .env("NATTER_FILES", self.files.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in BENCH_ENV.iter().chain(extra) {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start natter: {e}"))?;
        let pid = child.id();
        let client = reqwest::Client::new();
        // Under valgrind natter starts (and answers) many times slower.
        let tries = if callgrind.is_some() { 3000 } else { 300 };
        for _ in 0..tries {
            if client
                .get(format!("{base}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                self.base = base;
                self.pid = Some(pid);
                self.child = Some(child);
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err("natter did not become healthy".into())
    }

    /// The server's CPU time so far (user + system), if it is our child.
    pub fn cpu(&self) -> Option<Duration> {
        self.pid.and_then(cpu_of)
    }

    /// The server's resident memory in bytes.
    pub fn rss(&self) -> Option<u64> {
        self.pid.and_then(rss_of)
    }

    /// Whether the server process is still running.
    pub fn alive(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// A read-only connection to the server's database, for checks.
    pub async fn count_messages(&self) -> Option<i64> {
        if self.database_url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&self.database_url).await.ok()?;
            let n = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
                .fetch_one(&pool)
                .await
                .ok();
            pool.close().await;
            n
        } else if !self.database_url.is_empty() {
            let pool = sqlx::PgPool::connect(&self.database_url).await.ok()?;
            let n = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
                .fetch_one(&pool)
                .await
                .ok();
            pool.close().await;
            n
        } else {
            None
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some((admin, name)) = self.pg.take() {
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        )))
                        .execute(&pool)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

/// What to put in front of a command to run it on CPU 0, the server's core: `taskset -c 0`
/// when `pin` and `taskset` is there. `taskset` execs the command, so the child's pid is the
/// command's and its /proc readings are too.
pub fn cpu0_prefix(pin: bool) -> &'static [&'static str] {
    if pin && which("taskset") {
        &["taskset", "-c", "0"]
    } else {
        &[]
    }
}

fn which(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

async fn create_pg_database(admin: &str) -> Result<(String, String), String> {
    let pool = sqlx::PgPool::connect(admin)
        .await
        .map_err(|e| format!("PostgreSQL at {admin}: {e}"))?;
    let name = format!("natter_bench_{:08x}", rand::random::<u32>());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&pool)
        .await
        .map_err(|e| e.to_string())?;
    pool.close().await;
    let mut url = url::Url::parse(admin).map_err(|e| e.to_string())?;
    url.set_path(&format!("/{name}"));
    Ok((url.to_string(), name))
}

/// CPU time (user + system) of a process.
pub fn cpu_of(pid: u32) -> Option<Duration> {
    stat_ticks(pid, 11).map(ticks)
}

/// Fields of `/proc/<pid>/stat`, counted after the command name, summed: user and system
/// time at 11 and 12, those of waited-for children at 13 and 14.
fn stat_ticks(pid: u32, first: usize) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let user: u64 = fields.get(first)?.parse().ok()?;
    let system: u64 = fields.get(first + 1)?.parse().ok()?;
    Some(user + system)
}

/// Clock ticks are 100 per second on Linux: readings are good to 10 ms.
fn ticks(n: u64) -> Duration {
    Duration::from_millis(n * 10)
}

/// Resident memory of a process, in bytes.
pub fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// This process's CPU time, and that of children it has waited for (`wrk`).
pub fn own_cpu() -> Option<Duration> {
    let me = std::process::id();
    Some(ticks(stat_ticks(me, 11)? + stat_ticks(me, 13)?))
}

/// Both sides' CPU readings at the start of a phase.
pub struct Meter {
    pid: Option<u32>,
    server: Option<Duration>,
    generator: Option<Duration>,
    started: Instant,
    /// `perf record` of the server's core over the phase (`NATTER_LOAD_PERF`).
    perf: std::sync::Mutex<Option<Child>>,
}

/// `NATTER_LOAD_PERF=DIR`: each measured phase runs under `perf record -g` of CPU 0 (the
/// server's core: natter and the kernel's work there, softirqs included), written to
/// `DIR/perf.<n>.data`, phases numbered from 0 in the order they run.
fn perf_start() -> Option<Child> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::path::PathBuf::from(std::env::var_os("NATTER_LOAD_PERF")?);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // perf cannot write into a directory that is not there, and says so only on its stderr.
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("perf: {}: {e}", dir.display());
        return None;
    }
    let out = dir.join(format!("perf.{n}.data"));
    let child = Command::new("perf")
        .args(["record", "-g", "-C", "0", "-q", "-o"])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| eprintln!("perf: {e}"))
        .ok()?;
    eprintln!("perf: recording CPU 0 to {}", out.display());
    // Until it has opened its events.
    std::thread::sleep(Duration::from_millis(300));
    Some(child)
}

/// Stops a `perf record` as Ctrl-C would (it then writes its file).
fn perf_stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// `NATTER_LOAD_CALLGRIND=DIR`: natter runs under valgrind's callgrind, which counts the
/// instructions it executes (in user space) during each measured phase and writes its
/// profiles to `DIR`. The figure does not depend on what else the machine runs, unlike CPU
/// time; the speeds measured meanwhile mean nothing (valgrind runs natter many times slower).
fn callgrind_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("NATTER_LOAD_CALLGRIND").map(std::path::PathBuf::from)
}

/// Asks the callgrind counting `pid` to do `what` (`callgrind_control`).
fn callgrind(pid: u32, what: &str) {
    let _ = Command::new("callgrind_control")
        .args([what, &pid.to_string()])
        .stdout(Stdio::null())
        .status();
}

/// The instructions counted in the newest profile callgrind wrote for `pid`.
fn callgrind_newest(pid: u32) -> Option<u64> {
    let dir = callgrind_dir()?;
    let prefix = format!("natter.{pid}.out");
    let newest = std::fs::read_dir(&dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())?;
    let text = std::fs::read_to_string(newest.path()).ok()?;
    let line = text.lines().find(|l| l.starts_with("totals:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl Meter {
    pub fn start(server: &Server) -> Self {
        if let (Some(pid), Some(_)) = (server.pid, callgrind_dir()) {
            // What ran before the phase is dumped (and so zeroed), then counting starts.
            callgrind(pid, "--dump=before");
            callgrind(pid, "--instr=on");
        }
        let perf = std::sync::Mutex::new(perf_start());
        Self {
            pid: server.pid,
            server: server.cpu(),
            generator: own_cpu(),
            started: Instant::now(),
            perf,
        }
    }

    /// What each side used since the start.
    pub fn read(&self) -> Cpu {
        if let (Some(pid), Some(_)) = (self.pid, callgrind_dir()) {
            callgrind(pid, "--instr=off");
            callgrind(pid, "--dump=phase");
            match callgrind_newest(pid) {
                Some(n) => {
                    eprintln!("callgrind: {n} instructions in natter (user space) this phase")
                }
                None => eprintln!("callgrind: no profile read"),
            }
        }
        let since =
            |now: Option<Duration>, then: Option<Duration>| Some(now?.saturating_sub(then?));
        let cpu = Cpu {
            server: since(self.pid.and_then(cpu_of), self.server),
            generator: since(own_cpu(), self.generator),
            wall: self.started.elapsed(),
        };
        // After the readings: perf's own CPU is not the generator's.
        let perf = self.perf.lock().ok().and_then(|mut p| p.take());
        if let Some(perf) = perf {
            perf_stop(perf);
        }
        cpu
    }
}

/// A directory for a benchmark server's attachments, removed with it.
fn files_dir() -> Result<std::sync::Arc<tempfile::TempDir>, String> {
    tempfile::tempdir()
        .map(std::sync::Arc::new)
        .map_err(|e| e.to_string())
}
