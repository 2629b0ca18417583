//! Real processes for operator tests: the `natter` binary (so SIGTERM and SIGKILL are real), the
//! `caddy` binary with the project's Caddyfile, and a TCP proxy in front of PostgreSQL that can
//! cut the database off.

use std::{
    net::SocketAddr,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::{io::copy_bidirectional, net::TcpListener, task::JoinHandle};

use crate::common::tool_installed;

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `url` answers 200.
pub async fn wait_ready(url: &str, within: Duration) -> bool {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if let Ok(r) = client.get(url).send().await
            && r.status() == 200
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A natter process.
pub struct Natter {
    pub child: Child,
    pub port: u16,
}

impl Natter {
    /// Starts the real binary on a free port with `NATTER_*` settings; waits for `/healthz`.
    pub async fn start(database_url: &str, public_url: &str, extra: &[(&str, &str)]) -> Natter {
        Self::start_on(free_port(), database_url, public_url, extra).await
    }

    pub async fn start_on(
        port: u16,
        database_url: &str,
        public_url: &str,
        extra: &[(&str, &str)],
    ) -> Natter {
        Self::spawn(port, database_url, public_url, extra, None, None).await
    }

    /// Starts the binary with JSON logs at `info` written to `log`.
    pub async fn start_logging(
        port: u16,
        database_url: &str,
        public_url: &str,
        log: std::path::PathBuf,
    ) -> Natter {
        let settings = [("NATTER_LOG_FORMAT", "json"), ("NATTER_LOG", "info")];
        Self::spawn(port, database_url, public_url, &settings, Some(log), None).await
    }

    /// As `start_logging`, with more settings, under an open-file limit of `soft` (and `hard`,
    /// which natter may raise its soft limit to) set by `prlimit`.
    pub async fn start_with_open_files(
        port: u16,
        database_url: &str,
        public_url: &str,
        extra: &[(&str, &str)],
        log: std::path::PathBuf,
        (soft, hard): (u64, u64),
    ) -> Natter {
        let mut settings = vec![("NATTER_LOG_FORMAT", "json"), ("NATTER_LOG", "info")];
        settings.extend_from_slice(extra);
        let limit = Some((soft, hard));
        Self::spawn(port, database_url, public_url, &settings, Some(log), limit).await
    }

    async fn spawn(
        port: u16,
        database_url: &str,
        public_url: &str,
        extra: &[(&str, &str)],
        log: Option<std::path::PathBuf>,
        open_files: Option<(u64, u64)>,
    ) -> Natter {
        let natter = env!("CARGO_BIN_EXE_natter");
        let mut cmd = match open_files {
            None => Command::new(natter),
            Some((soft, hard)) => {
                let mut cmd = Command::new("prlimit");
                cmd.arg(format!("--nofile={soft}:{hard}"))
                    .arg("--")
                    .arg(natter);
                cmd
            }
        };
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("NATTER_BIND", format!("127.0.0.1:{port}"))
            .env("NATTER_PUBLIC_URL", public_url)
            .env("NATTER_DATABASE_URL", database_url)
            .env("NATTER_DEV_LOGIN", "1")
            // Not the default (the working directory): instances of one test share this, as
            // an operator's share a bucket.
            .env(
                "NATTER_FILES",
                std::env::temp_dir().join("natter-test-files"),
            )
            // Tests run in parallel with two or three instances each: keep their connections
            // well inside PostgreSQL's max_connections (100 by default).
            .env("NATTER_DB_POOL", "4")
            .env(
                "NATTER_LOG",
                std::env::var("NATTER_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(if std::env::var("NATTER_TEST_LOG").is_ok() {
                Stdio::inherit()
            } else {
                Stdio::null()
            });
        for (k, v) in extra {
            cmd.env(k, v);
        }
        if let Some(log) = &log {
            // tracing writes its lines to standard output.
            cmd.stdout(std::fs::File::create(log).expect("log file"));
        }
        let child = cmd.spawn().expect("natter binary starts");
        let natter = Natter { child, port };
        assert!(
            wait_ready(
                &format!("http://127.0.0.1:{port}/healthz"),
                Duration::from_secs(30)
            )
            .await,
            "natter did not come up on {port}"
        );
        natter
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Sends SIGTERM (what systemd, Docker or an operator sends).
    pub fn terminate(&self) {
        signal(self.child.id(), "-TERM");
    }

    /// Sends SIGKILL: a crash.
    pub fn kill(&mut self) {
        signal(self.child.id(), "-KILL");
        let _ = self.child.wait();
    }

    /// Waits for the process to exit, up to `within`.
    pub async fn exited(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if tokio::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Natter {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
}

/// Caddy running the project's Caddyfile (local variant).
pub struct Caddy {
    child: Child,
    pub port: u16,
    pub admin: Option<u16>,
    _dir: tempfile::TempDir,
}

impl Caddy {
    /// Whether the `caddy` binary exists; otherwise skips (or fails when required).
    pub fn available() -> bool {
        tool_installed("caddy", "version", "caddy")
    }

    /// Starts Caddy in front of `upstreams` on `port` (natter's public URL names it, so it is
    /// chosen first), over plain HTTP or (`https`) with a certificate from Caddy's internal CA.
    /// `admin` enables the admin API on a free port (for `caddy reload`).
    pub async fn start_on(port: u16, upstreams: &[String], https: bool, admin: bool) -> Caddy {
        let dir = tempfile::tempdir().unwrap();
        let admin = admin.then(free_port);
        let site = if https {
            format!("https://127.0.0.1:{port}")
        } else {
            format!("http://127.0.0.1:{port}")
        };
        let child = Command::new("caddy")
            .args([
                "run",
                "--config",
                concat!(env!("CARGO_MANIFEST_DIR"), "/Caddyfile"),
                "--adapter",
                "caddyfile",
            ])
            .env("NATTER_DOMAIN", &site)
            .env("NATTER_CADDY_MODE", "local")
            .env("NATTER_UPSTREAMS", upstreams.join(" "))
            .env(
                "NATTER_CADDY_ADMIN",
                admin.map_or("off".to_string(), |p| format!("127.0.0.1:{p}")),
            )
            .env("NATTER_CADDY_HTTP_PORT", free_port().to_string())
            .env("NATTER_CADDY_HTTPS_PORT", free_port().to_string())
            .env("XDG_CONFIG_HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path())
            .env("HOME", dir.path())
            .stdout(Stdio::null())
            .stderr(if std::env::var("NATTER_TEST_LOG").is_ok() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("caddy starts");
        let mut caddy = Caddy {
            child,
            port,
            admin,
            _dir: dir,
        };
        let up = wait_ready(
            &format!("{}/healthz", caddy.url_for(https)),
            Duration::from_secs(30),
        )
        .await;
        assert!(
            up,
            "caddy did not come up on {port} (exited: {:?}; with NATTER_TEST_LOG set its log shows why)",
            caddy.child.try_wait()
        );
        // `free_port` only finds a port free for a moment: make sure it is Caddy that answers
        // there, not another test's process that took the port first.
        let healthz = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap()
            .get(format!("{}/healthz", caddy.url_for(https)))
            .send()
            .await
            .unwrap();
        assert!(
            healthz
                .headers()
                .get("server")
                .is_some_and(|s| s == "Caddy")
                && caddy.child.try_wait().is_ok_and(|exited| exited.is_none()),
            "port {port} is answered by something other than this Caddy"
        );
        caddy
    }

    fn url_for(&self, https: bool) -> String {
        format!(
            "{}://127.0.0.1:{}",
            if https { "https" } else { "http" },
            self.port
        )
    }

    /// The public URL (plain HTTP variant).
    pub fn url(&self) -> String {
        self.url_for(false)
    }

    /// `caddy reload` through the admin API: Caddy closes proxied WebSockets (with 1001).
    pub fn reload(&self, upstreams: &[String]) {
        let admin = self.admin.expect("started with an admin port");
        let status = Command::new("caddy")
            .args([
                "reload",
                "--config",
                concat!(env!("CARGO_MANIFEST_DIR"), "/Caddyfile"),
                "--adapter",
                "caddyfile",
                "--force",
            ])
            .args(["--address", &format!("127.0.0.1:{admin}")])
            .env("NATTER_DOMAIN", self.url())
            .env("NATTER_CADDY_MODE", "local")
            .env("NATTER_UPSTREAMS", upstreams.join(" "))
            .env("NATTER_CADDY_ADMIN", format!("127.0.0.1:{admin}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("caddy reload");
        assert!(status.success(), "caddy reload failed");
    }
}

impl Drop for Caddy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP proxy in front of the database that can be switched off: existing connections are cut
/// and new ones refused, as when the database goes away.
pub struct DbProxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
    task: JoinHandle<()>,
}

impl DbProxy {
    pub async fn start(target: SocketAddr) -> DbProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let generation = Arc::new(generation);
        let task = {
            let (up, generation) = (up.clone(), generation.clone());
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        continue; // dropped: refused
                    }
                    let mut cut = generation.subscribe();
                    tokio::spawn(async move {
                        let Ok(mut server) = tokio::net::TcpStream::connect(target).await else {
                            return;
                        };
                        tokio::select! {
                            _ = copy_bidirectional(&mut client, &mut server) => {}
                            _ = cut.changed() => {}
                        }
                    });
                }
            })
        };
        DbProxy {
            addr,
            up,
            generation,
            task,
        }
    }

    /// The database is gone: cut every connection, refuse new ones.
    pub fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for DbProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A `nats-server` of the test's own (random port, loopback only), so it can be killed and
/// started again on the same port mid-test. Its monitoring port answers `/subsz` and `/connz`.
pub struct NatsServer {
    child: Option<Child>,
    pub port: u16,
    pub monitor: u16,
    /// What `NATTER_BUS` says to reach it.
    pub url: String,
}

impl NatsServer {
    /// The Debian package's binary.
    const BINARY: &str = "/usr/sbin/nats-server";

    /// Whether `nats-server` is installed; otherwise skips (or fails when `NATTER_TEST_REQUIRE`
    /// names `nats`).
    pub fn available() -> bool {
        let found = Command::new(Self::BINARY)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            crate::common::skip_or_fail(
                "nats",
                "nats-server is not installed (apt-get install nats-server)",
            );
        }
        found
    }

    /// Starts a server; `None` (skipped) when `nats-server` is missing.
    pub async fn start() -> Option<NatsServer> {
        if !Self::available() {
            return None;
        }
        let port = free_port();
        let mut server = NatsServer {
            child: None,
            port,
            monitor: free_port(),
            url: format!("nats://127.0.0.1:{port}"),
        };
        server.restart().await;
        Some(server)
    }

    /// Kills the server (SIGKILL: no goodbye to its clients).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again) on the same ports and waits until it answers.
    pub async fn restart(&mut self) {
        self.kill();
        let child = Command::new(Self::BINARY)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-m", &self.monitor.to_string()])
            .stdout(Stdio::null())
            .stderr(if std::env::var("NATTER_TEST_LOG").is_ok() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        assert!(
            wait_ready(
                &format!("http://127.0.0.1:{}/healthz", self.monitor),
                Duration::from_secs(20)
            )
            .await,
            "nats-server did not come up on {}",
            self.port
        );
    }

    /// The server's monitoring JSON at `path` (e.g. `/subsz?subs=1`).
    pub async fn monitor(&self, path: &str) -> serde_json::Value {
        reqwest::get(format!("http://127.0.0.1:{}{path}", self.monitor))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
