//! Attachments' storage (`natter::files::storage`) on a local directory and on a real S3 server
//! (Garage, see `common::garage`): each test runs on both, as `name::local` and `name::garage`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use natter::files::storage::{Storage, StorageError, Stored};

use crate::common::eventually;
use crate::common::garage::{Garage, garage};

const MIB: usize = 1024 * 1024;

/// Runs each body on a fresh local directory and on a fresh Garage bucket:
/// `mod name { fn local(); fn garage(); }`. The body gets the storage, and the `Target` it is
/// on (to reopen it, e.g. in a child process).
macro_rules! on_each_storage {
    ($(
        async fn $name:ident($storage:ident: Storage, $target:ident: &Target) $body:block
    )*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_variables)]
            async fn run($storage: Storage, $target: &Target) $body
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn local() {
                let dir = tempfile::tempdir().unwrap();
                let target = Target::Local(dir.path().join("files"));
                run(target.open(), &target).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn garage() {
                // Held to the end: the bucket's server stops when the last test drops it.
                let Some(server) = super::garage().await else { return };
                let target = Target::from(&server);
                run(target.open(), &target).await;
            }
        }
    )*};
}

on_each_storage! {
    async fn a_large_file_round_trips_byte_exact_and_a_range_is_exactly_its_bytes(
        storage: Storage,
        target: &Target
    ) {
        let dir = tempfile::tempdir().unwrap();
        // Three parts: two full ones and a short last one.
        let data = random_bytes(12 * MIB);
        let path = dir.path().join("upload");
        std::fs::write(&path, &data).unwrap();
        storage.put_file("ab/abcdef0123", &path).await.unwrap();

        let whole = storage.get("ab/abcdef0123", None).await.unwrap();
        assert_eq!(whole.size, data.len() as u64);
        let got = bytes_of(whole).await;
        assert!(got == data, "{} bytes came back, not the {} put", got.len(), data.len());

        let part = storage.get("ab/abcdef0123", Some(5..1000)).await.unwrap();
        assert_eq!(part.size, data.len() as u64, "the size is the whole object's");
        assert_eq!(bytes_of(part).await, data[5..1000]);

        // A file smaller than a part goes up in one request, and comes back the same.
        std::fs::write(&path, &data[..1000]).unwrap();
        storage.put_file("ab/small", &path).await.unwrap();
        assert_eq!(bytes_of(storage.get("ab/small", None).await.unwrap()).await, data[..1000]);
        storage.put_bytes("ab/bytes", Bytes::from_static(b"hello")).await.unwrap();
        assert_eq!(bytes_of(storage.get("ab/bytes", None).await.unwrap()).await, b"hello");
    }

    async fn a_missing_object_is_not_found_and_deleting_one_is_not_an_error(
        storage: Storage,
        target: &Target
    ) {
        assert!(matches!(storage.get("cd/missing", None).await, Err(StorageError::NotFound)));
        storage.delete("cd/missing").await.unwrap();

        storage.put_bytes("cd/present", Bytes::from_static(b"x")).await.unwrap();
        storage.delete("cd/present").await.unwrap();
        assert!(matches!(storage.get("cd/present", None).await, Err(StorageError::NotFound)));
        assert!(storage.older_than(Duration::ZERO, 10).await.unwrap().is_empty());
    }

    async fn older_than_lists_what_was_put_before_the_age_and_nothing_younger(
        storage: Storage,
        target: &Target
    ) {
        for key in ["ab/one", "ab/two", "cd/three"] {
            storage.put_bytes(key, Bytes::from_static(b"x")).await.unwrap();
        }
        // Ages are by the storage's clock (a file system's, an S3 server's), which may run a
        // little ahead of this process's: "older than 0 s" is true of them all soon, not at once.
        let all_listed = eventually(Duration::from_secs(2), || async {
            let mut listed = storage.older_than(Duration::ZERO, 100).await.unwrap();
            listed.sort();
            listed == ["ab/one", "ab/two", "cd/three"]
        });
        assert!(all_listed.await, "{:?}", storage.older_than(Duration::ZERO, 100).await);
        assert_eq!(storage.older_than(Duration::ZERO, 2).await.unwrap().len(), 2, "the limit");
        let hour = Duration::from_secs(3600);
        assert_eq!(storage.older_than(hour, 100).await.unwrap(), Vec::<String>::new());
    }

    async fn putting_a_64_mib_file_holds_only_a_few_parts_of_it_in_memory(
        storage: Storage,
        target: &Target
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upload");
        write_random_file(&path, 64 * MIB);

        // The measure works: reading the file whole shows as (nearly: a few pages of it may
        // reuse memory the process already held) 64 MiB more at the peak.
        let whole = peak_growth_in_a_child_process(target, &path, "read-whole").await;
        assert!(whole >= 60 * MIB, "reading it whole grew the peak by only {whole} bytes");
        // Three 5 MiB parts (two sending, one being read), what the allocator keeps of freed
        // ones for reuse (glibc: per thread; ~28 MiB in all measured locally), and the HTTP
        // client's buffers: well under the 64 MiB of the file.
        let growth = peak_growth_in_a_child_process(target, &path, "put-file").await;
        assert!(growth < 48 * MIB, "putting it grew the peak by {} MiB", growth / MIB);

        let stored = storage.get("big/file", None).await.unwrap();
        assert_eq!(stored.size, 64 * MIB as u64);
    }

    async fn ping_answers_when_the_storage_is_there(storage: Storage, target: &Target) {
        storage.ping().await.unwrap();
        assert!(!storage.describe().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_file_last_modified_two_hours_ago_is_older_than_an_hour() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::local(dir.path()).unwrap();
    storage
        .put_bytes("ab/old", Bytes::from_static(b"x"))
        .await
        .unwrap();
    storage
        .put_bytes("ab/new", Bytes::from_static(b"x"))
        .await
        .unwrap();
    let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 3600);
    std::fs::File::options()
        .write(true)
        .open(dir.path().join("ab/old"))
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    let hour = Duration::from_secs(3600);
    assert_eq!(storage.older_than(hour, 100).await.unwrap(), ["ab/old"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_storage_whose_directory_is_gone_does_not_ping() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::local(&dir.path().join("files")).unwrap();
    storage.ping().await.unwrap();
    std::fs::remove_dir(dir.path().join("files")).unwrap();
    assert!(storage.ping().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_storage_does_not_ping_with_a_missing_bucket_or_a_wrong_secret() {
    let Some(server) = garage().await else {
        return;
    };
    let (endpoint, region, id) = (&server.endpoint, &server.region, &server.key_id);
    let missing = Storage::s3_with("natter-nowhere", endpoint, region, id, &server.secret);
    assert!(missing.unwrap().ping().await.is_err());
    let refused = Storage::s3_with(&server.bucket, endpoint, region, id, &"0".repeat(64));
    assert!(refused.unwrap().ping().await.is_err());
    let description = Target::from(&server).open().describe();
    assert!(description.contains(&server.bucket) && description.contains(endpoint));
    assert!(!description.contains(&server.secret), "{description}");
}

/// Not a test: what `putting_a_64_mib_file…` runs in a child process, so that the peak memory
/// it measures is that of one put alone (this process runs many tests side by side). Prints
/// how much the peak resident size grew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run in a child process by putting_a_64_mib_file_holds_only_a_few_parts_of_it_in_memory"]
async fn measure_in_a_child_process() {
    let (Ok(target), Ok(file), Ok(mode)) = (
        std::env::var("NATTER_TEST_MEASURE_TARGET"),
        std::env::var("NATTER_TEST_MEASURE_FILE"),
        std::env::var("NATTER_TEST_MEASURE_MODE"),
    ) else {
        return;
    };
    let storage = Target::decode(&target).open();
    let before = peak_rss();
    match mode.as_str() {
        "put-file" => storage
            .put_file("big/file", Path::new(&file))
            .await
            .unwrap(),
        "read-whole" => drop(std::hint::black_box(std::fs::read(&file).unwrap())),
        other => panic!("unknown mode {other}"),
    }
    // On a line of its own: libtest prints the test's name first, without a line break.
    println!("\npeak-growth={}", peak_rss() - before);
}

/// Runs `measure_in_a_child_process` in a child process, returning the growth it printed.
async fn peak_growth_in_a_child_process(target: &Target, file: &Path, mode: &str) -> usize {
    let mut child = Command::new(std::env::current_exe().unwrap());
    child
        .args([
            "storage::measure_in_a_child_process",
            "--exact",
            "--ignored",
        ])
        .args(["--nocapture", "--test-threads", "1"])
        .env("NATTER_TEST_MEASURE_TARGET", target.encode())
        .env("NATTER_TEST_MEASURE_FILE", file)
        .env("NATTER_TEST_MEASURE_MODE", mode);
    let out = tokio::task::spawn_blocking(move || child.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the child failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|line| line.split_once("peak-growth=")?.1.trim().parse().ok())
        .unwrap_or_else(|| panic!("the child printed no peak-growth= line: {stdout}"))
}

/// This process's peak resident size so far, in bytes (`VmHWM`).
fn peak_rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: usize = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|n| n.trim().parse().ok())
        .expect("VmHWM in /proc/self/status");
    kib * 1024
}

/// What a test runs on, in a form that can be handed to a child process.
enum Target {
    Local(PathBuf),
    S3 {
        bucket: String,
        endpoint: String,
        region: String,
        key_id: String,
        secret: String,
    },
}

impl Target {
    fn open(&self) -> Storage {
        match self {
            Target::Local(dir) => Storage::local(dir),
            Target::S3 {
                bucket,
                endpoint,
                region,
                key_id,
                secret,
            } => Storage::s3_with(bucket, endpoint, region, key_id, secret),
        }
        .unwrap()
    }

    fn encode(&self) -> String {
        match self {
            Target::Local(dir) => format!("local\n{}", dir.display()),
            Target::S3 {
                bucket,
                endpoint,
                region,
                key_id,
                secret,
            } => format!("s3\n{bucket}\n{endpoint}\n{region}\n{key_id}\n{secret}"),
        }
    }

    fn decode(encoded: &str) -> Target {
        let parts: Vec<&str> = encoded.lines().collect();
        match parts[..] {
            ["local", dir] => Target::Local(dir.into()),
            ["s3", bucket, endpoint, region, key_id, secret] => Target::S3 {
                bucket: bucket.into(),
                endpoint: endpoint.into(),
                region: region.into(),
                key_id: key_id.into(),
                secret: secret.into(),
            },
            _ => panic!("not a target: {encoded:?}"),
        }
    }
}

impl From<&Garage> for Target {
    fn from(garage: &Garage) -> Self {
        Target::S3 {
            bucket: garage.bucket.clone(),
            endpoint: garage.endpoint.clone(),
            region: garage.region.clone(),
            key_id: garage.key_id.clone(),
            secret: garage.secret.clone(),
        }
    }
}

async fn bytes_of(stored: Stored) -> Vec<u8> {
    let mut chunks = stored.chunks;
    let mut bytes = Vec::new();
    while let Some(chunk) = chunks.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    bytes
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    rand::fill(&mut bytes[..]);
    bytes
}

/// A file of `len` random bytes, written a mebibyte at a time (this process never holds it).
fn write_random_file(path: &Path, len: usize) {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut chunk = vec![0; MIB];
    for _ in 0..len / MIB {
        rand::fill(&mut chunk[..]);
        file.write_all(&chunk).unwrap();
    }
    file.flush().unwrap();
}
