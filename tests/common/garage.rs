//! A real S3 server for tests: Garage (https://garagehq.deuxfleurs.fr), one node in a temp dir
//! on free ports, with one access key.
//!
//! Starting Garage and laying out its cluster takes about a second, so the tests running at the
//! same time share one server (each gets a bucket of its own, so none sees another's objects);
//! the server stops, and its directory goes, when the last of them drops its [`Garage`]. A test
//! that starts after that starts a new one. No global state outlives the tests that use it.
//!
//! Which binary: `NATTER_TEST_GARAGE` (a path), else `garage` on `PATH`, else
//! `/var/cache/garage/bin/garage` (where `.ci/run` installs it). Without one, tests skip, or
//! fail when `NATTER_TEST_REQUIRE` names `garage`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::skip_or_fail;

/// Where `.ci/run` installs Garage (`cargo install --root /var/cache/garage`).
const CI_BINARY: &str = "/var/cache/garage/bin/garage";

/// The region Garage is configured with; S3 clients must sign with the same one.
const REGION: &str = "garage";

/// How long Garage may take to answer after it is started.
const START_WITHIN: Duration = Duration::from_secs(30);

/// A bucket of its own on a running Garage, with a key that may read and write it.
pub struct Garage {
    /// The S3 API, plain HTTP on 127.0.0.1 (path-style buckets only: no `root_domain`).
    pub endpoint: String,
    pub region: String,
    /// Fresh for each `Garage`: empty at first, and no other test writes to it.
    pub bucket: String,
    pub key_id: String,
    pub secret: String,
    /// The server, shared with the tests running at the same time.
    server: Arc<Server>,
}

impl Garage {
    /// Runs `garage -c <config> <args>` against this server, for tests that need more
    /// (another key, a bucket's quotas); panics with Garage's message if it fails.
    pub fn cli(&self, args: &[&str]) -> String {
        self.server.cli(args)
    }
}

/// A running Garage, skipping (or failing, see the module's doc) when there is no binary.
pub async fn garage() -> Option<Garage> {
    let binary = find_binary()?;
    let started = tokio::task::spawn_blocking(move || {
        let server = shared_server(&binary);
        let bucket = format!("natter-test-{:016x}", rand::random::<u64>());
        server.cli(&["bucket", "create", &bucket]);
        server.cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            &bucket,
            "--key",
            &server.key_id,
        ]);
        Garage {
            endpoint: server.endpoint.clone(),
            region: REGION.to_owned(),
            bucket,
            key_id: server.key_id.clone(),
            secret: server.secret.clone(),
            server,
        }
    })
    .await;
    match started {
        Ok(garage) => Some(garage),
        // A Garage that is there but does not start is a failure, not a skip.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// The first of `NATTER_TEST_GARAGE`, `garage` on `PATH` and [`CI_BINARY`] that runs.
fn find_binary() -> Option<PathBuf> {
    let runs = |binary: &Path| {
        Command::new(binary)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if let Some(path) = std::env::var_os("NATTER_TEST_GARAGE") {
        let path = PathBuf::from(path);
        if runs(&path) {
            return Some(path);
        }
        skip_or_fail(
            "garage",
            &format!("NATTER_TEST_GARAGE={} does not run", path.display()),
        );
        return None;
    }
    let found = [Path::new("garage"), Path::new(CI_BINARY)]
        .into_iter()
        .find(|binary| runs(binary));
    if found.is_none() {
        skip_or_fail(
            "garage",
            "no garage binary: set NATTER_TEST_GARAGE, put garage on PATH, or run `cargo \
             install garage --version 2.5.0 --locked --no-default-features --features \
             bundled-libs,lmdb --root /var/cache/garage`",
        );
    }
    found.map(Path::to_owned)
}

/// The server the running tests share, started if none is running.
fn shared_server(binary: &Path) -> Arc<Server> {
    // Held while starting, so tests that arrive together start one server, not several.
    static SHARED: Mutex<Weak<Server>> = Mutex::new(Weak::new());
    let mut shared = SHARED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(server) = shared.upgrade() {
        return server;
    }
    let server = Arc::new(Server::start(binary));
    *shared = Arc::downgrade(&server);
    server
}

/// One Garage process with its configuration and data in a temp dir.
struct Server {
    child: Child,
    binary: PathBuf,
    config: PathBuf,
    endpoint: String,
    key_id: String,
    secret: String,
    /// Holds Garage's metadata, data and logs; removed after the process is killed (on drop).
    dir: tempfile::TempDir,
}

impl Server {
    fn start(binary: &Path) -> Server {
        let dir = tempfile::tempdir().expect("temp dir for Garage");
        let (rpc_port, s3_port) = (free_port(), free_port());
        let config = dir.path().join("garage.toml");
        // Garage 2.x's format (doc/book/reference-manual/configuration.md). No `root_domain`:
        // buckets are addressed by path, as natter does. The CLI reaches the server over RPC
        // with `rpc_secret`, so no admin API is needed.
        let toml = format!(
            r#"metadata_dir = "{dir}/meta"
data_dir = "{dir}/data"
db_engine = "lmdb"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3_port}"
"#,
            dir = dir.path().display(),
            secret = hex(&rand::random::<[u8; 32]>()),
        );
        std::fs::write(&config, toml).expect("writing garage.toml");
        let log = |name: &str| std::fs::File::create(dir.path().join(name)).expect("Garage log");
        let child = Command::new(binary)
            .arg("-c")
            .arg(&config)
            .arg("server")
            .stdin(Stdio::null())
            .stdout(log("stdout.log"))
            .stderr(log("stderr.log"))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        // From here on, a panic drops `server`, which kills Garage.
        let mut server = Server {
            child,
            binary: binary.to_owned(),
            config,
            endpoint: format!("http://127.0.0.1:{s3_port}"),
            key_id: String::new(),
            secret: String::new(),
            dir,
        };
        server.wait_until_it_answers();
        // A single node holding every partition (the capacity does not matter with one node).
        let node = server.cli(&["node", "id", "--quiet"]);
        let node = node.trim().split('@').next().unwrap_or_default().to_owned();
        server.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        server.cli(&["layout", "apply", "--version", "1"]);
        // `json-api` answers in the admin API's JSON (CreateKeyResponse), which is stable,
        // unlike the human-readable output of `key create`.
        let key = server.cli(&["json-api", "CreateKey", r#"{"name":"natter-test"}"#]);
        let key: serde_json::Value = serde_json::from_str(&key)
            .unwrap_or_else(|e| panic!("CreateKey answered {key:?}, not JSON: {e}"));
        let field = |name: &str| {
            key[name]
                .as_str()
                .unwrap_or_else(|| panic!("CreateKey answered without {name}: {key}"))
                .to_owned()
        };
        server.key_id = field("accessKeyId");
        server.secret = field("secretAccessKey");
        server
    }

    /// Polls `garage status` (which needs the RPC server up) until it succeeds.
    fn wait_until_it_answers(&mut self) {
        let deadline = Instant::now() + START_WITHIN;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("Garage exited at start ({status}): {}", self.log_tail());
            }
            let answered = self
                .command(&["status"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if answered {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "Garage did not answer within {START_WITHIN:?}: {}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command.arg("-c").arg(&self.config).args(args);
        command.stdin(Stdio::null());
        command
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = self
            .command(args)
            .output()
            .unwrap_or_else(|e| panic!("running garage {}: {e}", args.join(" ")));
        assert!(
            out.status.success(),
            "garage {} failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The end of Garage's log, for a failure's message.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default();
        let start = log.len().saturating_sub(2000);
        let start = (start..log.len())
            .find(|&i| log.is_char_boundary(i))
            .unwrap_or(log.len());
        log[start..].to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
