//! Where attachments' bytes live: a local directory (one instance) or a bucket of S3-compatible
//! storage (several instances share it: AWS, Garage, MinIO…), behind one small interface over
//! `object_store`. Keys are made by natter (`ab/abcdef…`); nothing here knows about messages.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::{
    ClientConfigKey, GetOptions, GetResultPayload, ObjectStore, ObjectStoreExt, PutPayload,
    RetryConfig, WriteMultipart,
};

/// Size of one part of an upload, and of the buffer `put_file` reads into. 5 MiB is the smallest
/// part S3 accepts (but for the last); a file no larger goes up in one plain PUT.
const PART: usize = 5 * 1024 * 1024;

/// Parts uploading at once. With the part being read, `put_file` holds at most
/// `(PARTS_IN_FLIGHT + 1) * PART` bytes, whatever the file's size.
const PARTS_IN_FLIGHT: usize = 2;

/// Size of the chunks a local file is read in for `get` (object_store's own is 8 KiB, which
/// costs a blocking-pool round trip per 8 KiB).
const LOCAL_CHUNK: usize = 256 * 1024;

/// How long `ping` waits: /readyz must answer even when the storage does not.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Where attachments' bytes live: a local directory, or a bucket of S3-compatible storage
/// (several instances share it). Cheap to clone.
#[derive(Clone)]
pub struct Storage {
    inner: Arc<Backend>,
    /// Files being sent part by part at once (S3): each holds up to `(PARTS_IN_FLIGHT + 1) *
    /// PART` bytes, so this bounds what all uploads together hold (measured: 20 uploads of
    /// 10 MiB at once took 113 MiB above idle before it, and the local store's copy).
    sending: Arc<tokio::sync::Semaphore>,
}

/// Files sent to S3 at once: 4 × 15 MiB at most in memory.
const SENDING_AT_ONCE: usize = 4;

enum Backend {
    Local {
        store: LocalFileSystem,
        /// The directory, for `describe` and `ping`.
        dir: PathBuf,
    },
    S3 {
        store: AmazonS3,
        /// What `describe` says: bucket, endpoint and region (never credentials).
        summary: String,
    },
}

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// No object under that key.
    #[error("no such object")]
    NotFound,
    /// Anything else: the message is for logs (it may name paths, buckets or endpoints), never
    /// for users.
    #[error("storage failed: {0}")]
    Failed(String),
}

impl From<object_store::Error> for StorageError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => StorageError::NotFound,
            e => StorageError::Failed(e.to_string()),
        }
    }
}

/// An object's size and (some of) its bytes.
pub struct Stored {
    /// The whole object's size, whatever range was asked for (for `Content-Range`).
    pub size: u64,
    /// The bytes asked for, in order, as they arrive.
    pub chunks: BoxStream<'static, Result<Bytes, StorageError>>,
}

impl fmt::Debug for Stored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stored").field("size", &self.size).finish()
    }
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Storage {
    /// A local directory (created if missing).
    pub fn local(dir: &Path) -> Result<Self, StorageError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StorageError::Failed(format!("creating {}: {e}", dir.display())))?;
        let store = LocalFileSystem::new_with_prefix(dir)?;
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
        Ok(Self::from(Backend::Local { store, dir }))
    }

    /// An S3 bucket; endpoint, region and credentials come from the usual variables
    /// (`AWS_ENDPOINT_URL` or `AWS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, and object_store's other `AWS_*` ones).
    pub fn s3(bucket: &str) -> Result<Self, StorageError> {
        Self::build_s3(AmazonS3Builder::from_env().with_bucket_name(bucket))
    }

    /// An S3 bucket with explicit settings (tests and the config module use this).
    pub fn s3_with(
        bucket: &str,
        endpoint: &str,
        region: &str,
        key_id: &str,
        secret: &str,
    ) -> Result<Self, StorageError> {
        Self::build_s3(
            AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_endpoint(endpoint)
                .with_region(region)
                .with_access_key_id(key_id)
                .with_secret_access_key(secret),
        )
    }

    fn build_s3(builder: AmazonS3Builder) -> Result<Self, StorageError> {
        let builder = builder
            // Self-hosters run Garage or MinIO on a LAN over plain HTTP, without the wildcard
            // DNS that virtual-hosted buckets (`bucket.host`) need.
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            // object_store's default (30 s for the whole request, body included) would cut a
            // large download to a slow client; a hung connection is still cut, later.
            .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "30m")
            // Fail within about half a minute rather than retrying for three.
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(30),
                ..RetryConfig::default()
            });
        let setting = |key| builder.get_config_value(&key);
        let bucket = setting(AmazonS3ConfigKey::Bucket).unwrap_or_default();
        let endpoint = setting(AmazonS3ConfigKey::S3Endpoint)
            .or_else(|| setting(AmazonS3ConfigKey::Endpoint))
            .unwrap_or_else(|| "AWS".to_owned());
        let region = setting(AmazonS3ConfigKey::Region)
            .or_else(|| setting(AmazonS3ConfigKey::DefaultRegion))
            .unwrap_or_else(|| "us-east-1".to_owned());
        let summary = format!("S3 bucket {bucket} at {endpoint} (region {region})");
        let store = builder.build()?;
        Ok(Self::from(Backend::S3 { store, summary }))
    }

    /// A one-line description for the start-up log (never the secret).
    pub fn describe(&self) -> String {
        match &*self.inner {
            Backend::Local { dir, .. } => format!("local directory {}", dir.display()),
            Backend::S3 { summary, .. } => summary.clone(),
        }
    }

    fn store(&self) -> &dyn ObjectStore {
        match &*self.inner {
            Backend::Local { store, .. } => store,
            Backend::S3 { store, .. } => store,
        }
    }

    /// Stores the file at `path` under `key`, reading and sending it part by part, so memory
    /// stays bounded whatever its size (see `PARTS_IN_FLIGHT`). Readers never see a partial
    /// object: S3 shows it on completion, the local store renames a finished temp file.
    pub async fn put_file(&self, key: &str, path: &Path) -> Result<(), StorageError> {
        let key = parse_key(key)?;
        if let Backend::Local { dir, .. } = &*self.inner {
            return copy_into(dir, key.as_ref(), path).await;
        }
        let _turn = self
            .sending
            .acquire()
            .await
            .map_err(|_| StorageError::Failed("storage closed".into()))?;
        let file = std::fs::File::open(path)
            .map_err(|e| StorageError::Failed(format!("opening {}: {e}", path.display())))?;
        let (mut file, first) = read_part(file).await?;
        if first.len() < PART {
            self.store().put(&key, PutPayload::from(first)).await?;
            return Ok(());
        }
        let upload = self.store().put_multipart(&key).await?;
        let mut upload = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut part = first;
        let sent = loop {
            if part.is_empty() {
                break Ok(());
            }
            upload.put(part);
            if let Err(e) = upload.wait_for_capacity(PARTS_IN_FLIGHT).await {
                break Err(StorageError::from(e));
            }
            match read_part(file).await {
                Ok((rest, next)) => (file, part) = (rest, next),
                Err(e) => break Err(e),
            }
        };
        match sent {
            Ok(()) => {
                upload.finish().await?;
                Ok(())
            }
            Err(e) => {
                // Best effort: S3 keeps an unfinished upload's parts (and bills them) until
                // aborted; the error that matters is the first one.
                let _ = upload.abort().await;
                Err(e)
            }
        }
    }

    /// Stores `bytes` under `key` in one request.
    pub async fn put_bytes(&self, key: &str, bytes: Bytes) -> Result<(), StorageError> {
        let key = parse_key(key)?;
        self.store().put(&key, PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// The object's size, and its bytes in `range` (all when `None`) as a stream of chunks.
    /// An empty range, or one past the end, is an error (the caller checks ranges against
    /// the size it has on record).
    pub async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Stored, StorageError> {
        let key = parse_key(key)?;
        let options = GetOptions::new().with_range(range);
        let got = self.store().get_opts(&key, options).await?;
        let size = got.meta.size;
        let chunks = match got.payload {
            GetResultPayload::File(file, _) => file_chunks(file, got.range),
            GetResultPayload::Stream(stream) => stream
                .map(|chunk| chunk.map_err(StorageError::from))
                .boxed(),
        };
        Ok(Stored { size, chunks })
    }

    /// Deletes; a missing object is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let key = parse_key(key)?;
        match self.store().delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Keys of objects last modified more than `age` ago (for sweeping orphans), at most
    /// `limit`, in no particular order. Modification times are the storage's (the file
    /// system's, the S3 server's), so ages are as exact as its clock agrees with ours: sweep
    /// with ages of hours, not seconds.
    pub async fn older_than(
        &self,
        age: Duration,
        limit: usize,
    ) -> Result<Vec<String>, StorageError> {
        let cutoff = SystemTime::now()
            .checked_sub(age)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(i64::MIN, |d| {
                i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
            });
        let mut listed = self.store().list(None);
        let mut keys = Vec::new();
        while keys.len() < limit {
            let Some(meta) = listed.next().await else {
                break;
            };
            let meta = meta?;
            // Strictly before: an object written in this very millisecond is not "older".
            if meta.last_modified.timestamp_millis() < cutoff {
                keys.push(meta.location.to_string());
            }
        }
        Ok(keys)
    }

    /// Whether the storage answers, for /readyz: the directory is there, or the bucket can be
    /// listed with these credentials (a missing bucket or a refused key fails).
    pub async fn ping(&self) -> Result<(), StorageError> {
        let check = async {
            match &*self.inner {
                Backend::Local { dir, .. } => {
                    let dir = dir.clone();
                    let is_dir = tokio::task::spawn_blocking(move || dir.is_dir())
                        .await
                        .unwrap_or(false);
                    if is_dir {
                        Ok(())
                    } else {
                        Err(StorageError::Failed("the directory is gone".into()))
                    }
                }
                Backend::S3 { store, .. } => {
                    let one = PaginatedListOptions {
                        max_keys: Some(1),
                        ..Default::default()
                    };
                    store.list_paginated(None, one).await?;
                    Ok(())
                }
            }
        };
        tokio::time::timeout(PING_TIMEOUT, check)
            .await
            .unwrap_or_else(|_| Err(StorageError::Failed("no answer within 5 s".into())))
    }
}

/// The local store's `put_file`: the kernel copies the file (`copy_file_range`: no bytes pass
/// through natter's memory) to a temporary name beside its place, which is then renamed into
/// it, so a reader never sees part of it. The same layout object_store's local store reads.
async fn copy_into(dir: &Path, key: &str, from: &Path) -> Result<(), StorageError> {
    let to = dir.join(key);
    let (dir, from) = (dir.to_owned(), from.to_owned());
    tokio::task::spawn_blocking(move || {
        let parent = to.parent().unwrap_or(&dir);
        std::fs::create_dir_all(parent)?;
        let temp = tempfile::Builder::new()
            .prefix(".put-")
            .tempfile_in(parent)?
            .into_temp_path();
        std::fs::copy(&from, &temp)?;
        temp.persist(&to).map_err(|e| e.error)
    })
    .await
    .map_err(|e| StorageError::Failed(format!("copying a file: {e}")))?
    .map_err(|e| StorageError::Failed(format!("copying a file into place: {e}")))
}

impl From<Backend> for Storage {
    fn from(backend: Backend) -> Self {
        Storage {
            inner: Arc::new(backend),
            sending: Arc::new(tokio::sync::Semaphore::new(SENDING_AT_ONCE)),
        }
    }
}

/// `key` as object_store's path, refusing what it would silently rewrite (a leading or
/// trailing `/`) as well as what it rejects (empty segments, `.`, `..`, control characters).
fn parse_key(key: &str) -> Result<Key, StorageError> {
    match Key::parse(key) {
        Ok(parsed) if parsed.as_ref() == key && !key.is_empty() => Ok(parsed),
        Ok(_) => Err(StorageError::Failed(format!("invalid key {key:?}"))),
        Err(e) => Err(StorageError::Failed(format!("invalid key {key:?}: {e}"))),
    }
}

/// Reads the next `PART` bytes of `file` (fewer at its end) off the async threads.
async fn read_part(file: std::fs::File) -> Result<(std::fs::File, Bytes), StorageError> {
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut part = Vec::with_capacity(PART);
        (&file).take(PART as u64).read_to_end(&mut part)?;
        Ok((file, Bytes::from(part)))
    })
    .await
    .map_err(|e| StorageError::Failed(format!("reading the file: {e}")))?
    .map_err(|e: std::io::Error| StorageError::Failed(format!("reading the file: {e}")))
}

/// The bytes of a local object in `range`, `LOCAL_CHUNK` at a time, off the async threads.
fn file_chunks(
    file: std::fs::File,
    range: Range<u64>,
) -> BoxStream<'static, Result<Bytes, StorageError>> {
    let file = Arc::new(file);
    futures_util::stream::unfold(range, move |range| {
        let file = Arc::clone(&file);
        async move {
            if range.is_empty() {
                return None;
            }
            let want = usize::try_from(range.end - range.start)
                .unwrap_or(usize::MAX)
                .min(LOCAL_CHUNK);
            let read = tokio::task::spawn_blocking(move || {
                use std::os::unix::fs::FileExt;
                let mut chunk = vec![0; want];
                let n = file.read_at(&mut chunk, range.start)?;
                chunk.truncate(n);
                Ok::<_, std::io::Error>(chunk)
            })
            .await;
            let end = range.end;
            match read {
                Ok(Ok(chunk)) if !chunk.is_empty() => {
                    let rest = range.start + chunk.len() as u64..end;
                    Some((Ok(Bytes::from(chunk)), rest))
                }
                // The file shrank under us: end with an error rather than loop forever.
                Ok(Ok(_)) => Some((
                    Err(StorageError::Failed("the file ended early".into())),
                    end..end,
                )),
                Ok(Err(e)) => Some((Err(StorageError::Failed(format!("reading: {e}"))), end..end)),
                Err(e) => Some((Err(StorageError::Failed(format!("reading: {e}"))), end..end)),
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Handlers run on a multi-threaded runtime, so every operation's future must be `Send`
    /// (object_store's `ObjectStoreExt` does not promise it; this checks what we build on it).
    #[test]
    fn every_operation_can_run_on_any_thread() {
        fn send<T: Send>(_: T) {}
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local(dir.path()).unwrap();
        send(storage.put_file("ab/c", Path::new("x")));
        send(storage.put_bytes("ab/c", Bytes::new()));
        send(storage.get("ab/c", None));
        send(storage.delete("ab/c"));
        send(storage.older_than(Duration::ZERO, 1));
        send(storage.ping());
        send(storage.clone());
    }

    #[test]
    fn keys_natter_makes_are_accepted() {
        assert!(parse_key("ab/abcdef0123").is_ok());
        assert!(parse_key("thumbs/ab/abcdef.webp").is_ok());
    }

    #[test]
    fn keys_that_would_be_rewritten_or_escape_are_refused() {
        for key in [
            "",
            "/ab/c",
            "ab/c/",
            "ab//c",
            "../etc/passwd",
            "ab/../c",
            "ab/./c",
        ] {
            assert!(parse_key(key).is_err(), "{key:?} was accepted");
        }
    }
}
