//! Attachments: files people share in a room. Their bytes live in `storage` (a local directory
//! or S3-compatible object storage); what they are (name, size, type, dimensions) is in the
//! database next to the message that carries them (`store::files`).
//!
//! A file's way in: the request's multipart body is read field by field, each file spooled to
//! a temporary file as it arrives (`spool`: never whole in memory, cut off past the size limit,
//! its type sniffed from its first bytes), then `store` makes an image's thumbnail (decoded
//! with a pixel limit, orientation applied, re-encoded: nothing a client sent is shown inline
//! as it came) and puts the file and thumbnail into storage, **before** the message commits.
//! A post that does not commit leaves bytes nobody names: they are deleted at once where
//! natter knows, and by the sweeper (`sweep`) after an hour where it could not (a crash).

pub mod image;
pub mod name;
pub mod sniff;
pub mod storage;

use std::{path::PathBuf, sync::Arc, time::Duration};

use bytes::Bytes;
use tokio::{io::AsyncWriteExt, sync::Semaphore};

use crate::{
    config::{FilesConfig, FilesLocation},
    refusal::Refusal,
    store::{Attachment, ImageSize, NewAttachment, Store},
};
pub use sniff::Sniffed;
pub use storage::{Storage, StorageError};

/// Images decoded at once: a 12-megapixel photo takes ~36 MB while it is decoded, so uploads
/// that arrive together wait their turn rather than multiply that.
const DECODING_AT_ONCE: usize = 2;

/// How long bytes nobody names are kept before the sweeper deletes them: longer than any post
/// takes from storing its files to committing.
pub const ORPHAN_AGE: Duration = Duration::from_secs(3600);

/// How often the sweeper looks for orphans.
const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// A file received with a post, spooled to a temporary file (removed when this is dropped).
#[derive(Debug)]
pub struct Upload {
    /// Its name, cleaned.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// What its first bytes say it is.
    pub sniffed: Sniffed,
    file: tempfile::TempPath,
}

/// Attachments' storage and limits: one per instance, shared by every request.
#[derive(Clone)]
pub struct Files {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Storage,
    /// Where uploads are spooled while they arrive.
    spool: PathBuf,
    config: FilesConfig,
    decoding: Semaphore,
}

impl std::fmt::Debug for Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Files")
            .field("storage", &self.inner.storage.describe())
            .finish()
    }
}

impl Files {
    /// Opens the storage `config` names. A local directory gets a `.uploads` folder for
    /// spooling (the same file system, so nothing crosses devices); S3 spools to the system's
    /// temporary directory.
    pub fn open(config: &FilesConfig) -> Result<Self, StorageError> {
        let (storage, spool) = match &config.location {
            FilesLocation::Local(dir) => (Storage::local(dir)?, dir.join(".uploads")),
            FilesLocation::S3 {
                bucket,
                endpoint,
                region,
                key_id,
                secret,
            } => (
                Storage::s3_with(
                    bucket,
                    // Amazon S3 itself when no endpoint is named.
                    &endpoint
                        .clone()
                        .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com")),
                    region,
                    key_id,
                    secret.expose(),
                )?,
                std::env::temp_dir().join("natter-uploads"),
            ),
        };
        std::fs::create_dir_all(&spool)
            .map_err(|e| StorageError::Failed(format!("{}: {e}", spool.display())))?;
        Ok(Self::with_storage(storage, spool, config.clone()))
    }

    /// Files kept in `storage`, spooled in `spool` (tests use this to point at a bucket).
    pub fn with_storage(storage: Storage, spool: PathBuf, config: FilesConfig) -> Self {
        Files {
            inner: Arc::new(Inner {
                storage,
                spool,
                config,
                decoding: Semaphore::new(DECODING_AT_ONCE),
            }),
        }
    }

    /// The limits.
    pub fn config(&self) -> &FilesConfig {
        &self.inner.config
    }

    /// The storage, for serving and sweeping.
    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// Spools one file field as it arrives: at most `max_upload` bytes (past that,
    /// `Spooled::TooLarge` once the rest of the field was read and thrown away, so the browser
    /// gets the answer instead of a reset connection). An empty field with no name (a file
    /// input left empty) is `Spooled::Nothing`.
    pub async fn spool(&self, mut field: multer::Field<'static>) -> Result<Spooled, Refusal> {
        let name = name::clean_name(field.file_name().unwrap_or_default());
        let (file, path) = tempfile::Builder::new()
            .prefix("upload-")
            .tempfile_in(&self.inner.spool)
            .map_err(|e| spool_failed(&e))?
            .into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let limit = self.inner.config.max_upload;
        let mut size: u64 = 0;
        let mut head = Vec::with_capacity(sniff::SNIFF_LEN);
        while let Some(chunk) = field.chunk().await.map_err(unreadable)? {
            size += chunk.len() as u64;
            if size > limit {
                // Read the rest of the field away (the caller's deadline bounds it).
                while field.chunk().await.map_err(unreadable)?.is_some() {}
                return Ok(Spooled::TooLarge);
            }
            if head.len() < sniff::SNIFF_LEN {
                let take = (sniff::SNIFF_LEN - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
            }
            file.write_all(&chunk).await.map_err(|e| spool_failed(&e))?;
        }
        if size == 0 && field.file_name().is_none_or(str::is_empty) {
            return Ok(Spooled::Nothing);
        }
        file.flush().await.map_err(|e| spool_failed(&e))?;
        Ok(Spooled::File(Upload {
            name,
            size,
            sniffed: sniff::sniff(&head),
            file: path,
        }))
    }

    /// Makes each image's thumbnail and puts every file (and thumbnail) into storage, ready
    /// for the post's transaction. Whatever was stored is deleted again when a later file
    /// fails, so a refused post leaves nothing behind.
    pub async fn store(&self, uploads: Vec<Upload>) -> Result<Vec<NewAttachment>, Refusal> {
        let mut stored = Vec::with_capacity(uploads.len());
        for upload in uploads {
            match self.store_one(upload).await {
                Ok(file) => stored.push(file),
                Err(refusal) => {
                    self.discard(&keys_of(&stored)).await;
                    return Err(refusal);
                }
            }
        }
        Ok(stored)
    }

    async fn store_one(&self, upload: Upload) -> Result<NewAttachment, Refusal> {
        let thumbnail = if upload.sniffed.image {
            self.thumbnail(&upload).await?
        } else {
            None
        };
        let storage_key = random_key("f");
        let storage = &self.inner.storage;
        storage
            .put_file(&storage_key, &upload.file)
            .await
            .map_err(|e| storage_failed(&e))?;
        let (image, thumb_key) = match thumbnail {
            Some(thumb) => {
                let ext = if thumb.mime == "image/png" {
                    "png"
                } else {
                    "jpg"
                };
                let key = format!("{}.{ext}", random_key("t"));
                if let Err(e) = storage.put_bytes(&key, Bytes::from(thumb.bytes)).await {
                    self.discard(std::slice::from_ref(&storage_key)).await;
                    return Err(storage_failed(&e));
                }
                let size = ImageSize {
                    width: thumb.full_width.into(),
                    height: thumb.full_height.into(),
                    thumb_width: thumb.width.into(),
                    thumb_height: thumb.height.into(),
                };
                (Some(size), Some(key))
            }
            None => (None, None),
        };
        Ok(NewAttachment {
            shown: Attachment {
                token: random_token(),
                name: upload.name,
                size: upload.size as i64,
                mime: upload.sniffed.mime.to_string(),
                image,
            },
            storage_key,
            thumb_key,
        })
    }

    /// An image's thumbnail, or `None` when its bytes do not decode as the image they claim
    /// to be (it is then offered as a file, never shown). Too many pixels is refused: a
    /// decompression bomb, or nothing anyone can look at in a chat.
    async fn thumbnail(&self, upload: &Upload) -> Result<Option<image::Thumbnail>, Refusal> {
        let _turn = self
            .inner
            .decoding
            .acquire()
            .await
            .map_err(|_| Refusal::Unavailable)?;
        let path = upload.file.to_path_buf();
        let made = tokio::task::spawn_blocking(move || image::thumbnail(&path, image::THUMB_SIDE))
            .await
            .map_err(|_| Refusal::Internal)?;
        match made {
            Ok(thumb) => Ok(Some(thumb)),
            Err(image::ImageError::TooManyPixels { .. }) => Err(Refusal::Invalid(
                "An image has too many pixels (at most 40 megapixels). Send a smaller one, or \
                 send it inside a ZIP file.",
            )),
            Err(image::ImageError::Unreadable(why)) => {
                tracing::info!(%why, name = %upload.name, "image does not decode: kept as a file");
                Ok(None)
            }
        }
    }

    /// Deletes stored bytes nobody will name (a post that failed, a message deleted). What
    /// cannot be deleted now is logged; the sweeper gets it later.
    pub async fn discard(&self, keys: &[String]) {
        for key in keys {
            if let Err(e) = self.inner.storage.delete(key).await {
                tracing::warn!(error = %e, %key, "could not delete a file; the sweeper will");
            }
        }
    }

    /// Deletes bytes older than `age` that no attachment row names; returns how many. What a
    /// crash between storing and committing left behind.
    pub async fn sweep(&self, store: &Store, age: Duration) -> Result<usize, String> {
        let candidates = self
            .inner
            .storage
            .older_than(age, 1000)
            .await
            .map_err(|e| e.to_string())?;
        let orphans = store.orphans(candidates).await.map_err(|e| e.to_string())?;
        self.discard(&orphans).await;
        Ok(orphans.len())
    }

    /// Sweeps every ten minutes, for as long as natter runs.
    pub fn spawn_sweeper(&self, store: Store) {
        let files = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SWEEP_EVERY);
            loop {
                every.tick().await;
                match files.sweep(&store, ORPHAN_AGE).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(files = n, "deleted files no message names"),
                    Err(e) => tracing::warn!(error = %e, "could not sweep orphan files"),
                }
            }
        });
    }
}

/// What became of one file field.
#[derive(Debug)]
pub enum Spooled {
    /// A file, spooled.
    File(Upload),
    /// A file input left empty.
    Nothing,
    /// Larger than `max_upload`: read and thrown away.
    TooLarge,
}

/// A size as people read it: `512 bytes`, `1.5 KiB`, `10 MiB`, `2 GiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["bytes", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value >= 10.0 || value.fract() < 0.05 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The storage keys `stored` took, thumbnails included.
pub fn keys_of(stored: &[NewAttachment]) -> Vec<String> {
    stored
        .iter()
        .flat_map(|a| std::iter::once(a.storage_key.clone()).chain(a.thumb_key.clone()))
        .collect()
}

/// 128 random bits in lowercase base32: a file's address or storage key.
fn random_token() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let bits: u128 = rand::random();
    (0..26)
        .map(|i| ALPHABET[((bits >> (i * 5)) & 31) as usize] as char)
        .collect()
}

/// A storage key under `kind` (`f`: files, `t`: thumbnails), spread over 1024 prefixes so no
/// directory of a local store grows without bound.
fn random_key(kind: &str) -> String {
    let token = random_token();
    format!("{kind}/{}/{token}", &token[..2])
}

fn unreadable(e: multer::Error) -> Refusal {
    tracing::debug!(error = %e, "multipart body unreadable");
    Refusal::BadRequest("The upload could not be read. Send it again.")
}

fn spool_failed(e: &std::io::Error) -> Refusal {
    tracing::error!(error = %e, "could not spool an upload");
    Refusal::Unavailable
}

fn storage_failed(e: &StorageError) -> Refusal {
    tracing::error!(error = %e, "could not store a file");
    Refusal::Unavailable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_size(512), "512 bytes");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(10 << 20), "10 MiB");
        assert_eq!(human_size(2 << 30), "2 GiB");
        assert_eq!(human_size(15 * 1024 + 100), "15 KiB");
    }

    #[test]
    fn tokens_and_keys_are_random_and_url_safe() {
        let a = random_token();
        assert_eq!(a.len(), 26);
        assert_ne!(a, random_token());
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        let key = random_key("f");
        assert!(key.starts_with("f/") && key.len() == 2 + 3 + 26, "{key}");
    }
}
