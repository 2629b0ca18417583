//! Attachments' rows: what each file is and where its bytes are (`files::storage` holds them).
//!
//! A post's attachments are inserted in the post's transaction (`insert_attachments!`, from the
//! writer), after their bytes were stored; a delete of the message removes the rows in its own
//! transaction and hands their storage keys back, so the bytes go after the commit. Bytes
//! whose rows never committed are orphans, which `orphans` finds for the sweeper.
//!
//! Reading them costs no extra statement: each message row carries its attachments as one
//! text column (`attachments_column!`), decoded into `Attachments`, like its mentions.

use sqlx::FromRow;

use super::{Result, Store, on_read};

/// One file of a message, as readers see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attachment {
    /// Its address: `/files/{token}/{name}`. Random; never the storage key.
    pub token: String,
    /// Its name, cleaned (`files::name::clean_name`): no separators or control characters.
    pub name: String,
    /// Its size in bytes.
    pub size: i64,
    /// Its type as sniffed from its bytes (`files::sniff`), never as the client said.
    pub mime: String,
    /// An image's dimensions, orientation applied, and its thumbnail's: `None` for other files
    /// and for images that could not be decoded (they are shown as files).
    pub image: Option<ImageSize>,
}

/// The sizes of an image attachment, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageSize {
    /// The full image.
    pub width: i64,
    /// The full image.
    pub height: i64,
    /// Its thumbnail (at most 800 px on the long side).
    pub thumb_width: i64,
    /// Its thumbnail.
    pub thumb_height: i64,
}

/// The files of one message, in the order they were attached.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attachments(pub Vec<Attachment>);

/// Separates one attachment's fields in `attachments_column!` (no field holds a control
/// character: names are cleaned of them, the rest is natter's own).
const FIELD: char = '\u{1f}';
/// Separates attachments.
const RECORD: char = '\u{1e}';

impl Attachments {
    /// Whether the message carries none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// As `attachments_column!` writes them. A record that does not parse is skipped: a page
    /// shows what it can rather than failing.
    fn decode(text: Option<&str>) -> Self {
        let records = text.unwrap_or_default().split(RECORD);
        Attachments(records.filter_map(Self::record).collect())
    }

    fn record(record: &str) -> Option<Attachment> {
        let mut fields = record.splitn(8, FIELD);
        let mut next = || fields.next();
        let token = next()?.to_string();
        let size = next()?.parse().ok()?;
        let mime = next()?.to_string();
        let dims: Vec<Option<i64>> = (0..4)
            .map(|_| next().map(|f| f.parse().ok()))
            .collect::<Option<_>>()?;
        let name = next()?.to_string();
        let image = match dims[..] {
            [
                Some(width),
                Some(height),
                Some(thumb_width),
                Some(thumb_height),
            ] => Some(ImageSize {
                width,
                height,
                thumb_width,
                thumb_height,
            }),
            _ => None,
        };
        (!token.is_empty()).then_some(Attachment {
            token,
            name,
            size,
            mime,
            image,
        })
    }
}

/// `attachments_column!`'s text as the row carries it.
impl From<Option<String>> for Attachments {
    fn from(text: Option<String>) -> Self {
        Attachments::decode(text.as_deref())
    }
}

/// The attachments of message `m` as one text column (`Attachments::decode`), for `concat!`
/// into a message query: the same SQL on both backends (`string_agg … ORDER BY` is SQLite's too
/// since 3.44). A message without files costs one probe of the primary key.
macro_rules! attachments_column {
    () => {
        "(SELECT string_agg(a.token || '\u{1f}' || CAST(a.size AS TEXT) || '\u{1f}' || a.mime \
             || '\u{1f}' || COALESCE(CAST(a.width AS TEXT), '') \
             || '\u{1f}' || COALESCE(CAST(a.height AS TEXT), '') \
             || '\u{1f}' || COALESCE(CAST(a.thumb_width AS TEXT), '') \
             || '\u{1f}' || COALESCE(CAST(a.thumb_height AS TEXT), '') \
             || '\u{1f}' || a.name, '\u{1e}' ORDER BY a.position) \
           FROM attachments a WHERE a.room_id = m.room_id AND a.seq = m.seq) AS attachments"
    };
}
pub(crate) use attachments_column;

/// A file to store with a post: its bytes are in storage already.
#[derive(Debug, Clone)]
pub struct NewAttachment {
    /// As readers will see it.
    pub shown: Attachment,
    /// Where the bytes are.
    pub storage_key: String,
    /// Where the thumbnail is, for an image.
    pub thumb_key: Option<String>,
}

/// The statement that stores one attachment of message `$2` in room `$1`.
pub(super) const INSERT_ATTACHMENT: &str = "INSERT INTO attachments (room_id, seq, position, \
     token, name, size, mime, width, height, thumb_width, thumb_height, storage_key, thumb_key, \
     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";

/// Stores `$files` (`&[NewAttachment]`) for message `$seq` of `$room_id` inside the caller's
/// transaction `$tx` (either backend: the SQL is the same). At most a few per post.
macro_rules! insert_attachments {
    ($tx:expr, $room_id:expr, $seq:expr, $files:expr, $now:expr) => {{
        for (position, file) in $files.iter().enumerate() {
            let shown = &file.shown;
            let image = shown.image;
            sqlx::query($crate::store::files::INSERT_ATTACHMENT)
                .bind($room_id)
                .bind($seq)
                .bind(position as i64)
                .bind(&shown.token)
                .bind(&shown.name)
                .bind(shown.size)
                .bind(&shown.mime)
                .bind(image.map(|i| i.width))
                .bind(image.map(|i| i.height))
                .bind(image.map(|i| i.thumb_width))
                .bind(image.map(|i| i.thumb_height))
                .bind(&file.storage_key)
                .bind(&file.thumb_key)
                .bind($now)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}
pub(crate) use insert_attachments;

/// Removes the attachments of message `$2` in room `$1` (a delete), handing back their keys.
pub(super) const DELETE_ATTACHMENTS: &str = "DELETE FROM attachments \
     WHERE room_id = $1 AND seq = $2 RETURNING storage_key, thumb_key";

/// The storage keys of deleted rows (`DELETE_ATTACHMENTS`), thumbnails included.
pub(super) fn removed_keys(rows: Vec<(String, Option<String>)>) -> Vec<String> {
    rows.into_iter()
        .flat_map(|(file, thumb)| std::iter::once(file).chain(thumb))
        .collect()
}

/// A file to serve, found through the asker's membership of its room.
#[derive(Debug, Clone, FromRow)]
pub struct StoredFile {
    /// Its room.
    pub room_id: i64,
    /// Its name, cleaned.
    pub name: String,
    /// Its size in bytes.
    pub size: i64,
    /// Its sniffed type.
    pub mime: String,
    /// Where the bytes are.
    pub storage_key: String,
    /// Where its thumbnail is, for an image natter could decode.
    pub thumb_key: Option<String>,
}

impl Store {
    /// The file with this token, if `user_id` is a member of its room (else `None`, as for no
    /// such file).
    pub async fn file_for_member(&self, token: &str, user_id: i64) -> Result<Option<StoredFile>> {
        let file = on_read!(&self.db, pool => sqlx::query_as::<_, StoredFile>(
            "SELECT a.room_id, a.name, a.size, a.mime, a.storage_key, a.thumb_key \
             FROM attachments a \
             JOIN members mb ON mb.room_id = a.room_id AND mb.user_id = $2 \
             WHERE a.token = $1",
        )
        .bind(token)
        .bind(user_id)
        .fetch_optional(pool)
        .await)?;
        Ok(file)
    }

    /// The bytes the room's files take (for its quota).
    pub async fn room_file_bytes(&self, room_id: i64) -> Result<i64> {
        let bytes = on_read!(&self.db, pool => sqlx::query_scalar::<_, i64>(
            "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM attachments WHERE room_id = $1",
        )
        .bind(room_id)
        .fetch_one(pool)
        .await)?;
        Ok(bytes)
    }

    /// Which of `keys` no attachment row names (as its file or its thumbnail): bytes whose post
    /// never committed, or whose message was deleted before the bytes could go.
    pub async fn orphans(&self, keys: Vec<String>) -> Result<Vec<String>> {
        let mut orphans = Vec::new();
        for key in keys {
            let named = on_read!(&self.db, pool => sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM attachments WHERE storage_key = $1 OR thumb_key = $1",
            )
            .bind(&key)
            .fetch_one(pool)
            .await)?;
            if named == 0 {
                orphans.push(key);
            }
        }
        Ok(orphans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_column_decodes_images_and_files_in_order() {
        let text = "tok1\u{1f}2048\u{1f}image/png\u{1f}4000\u{1f}3000\u{1f}800\u{1f}600\u{1f}a b.png\
                    \u{1e}tok2\u{1f}7\u{1f}application/pdf\u{1f}\u{1f}\u{1f}\u{1f}\u{1f}x\u{1f}y.pdf";
        let list = Attachments::from(Some(text.to_string()));
        assert_eq!(list.0.len(), 2);
        assert_eq!(list.0[0].name, "a b.png");
        assert_eq!(
            list.0[0].image,
            Some(ImageSize {
                width: 4000,
                height: 3000,
                thumb_width: 800,
                thumb_height: 600
            })
        );
        // The name is the last field: whatever it holds stays in it.
        assert_eq!(list.0[1].name, "x\u{1f}y.pdf");
        assert_eq!(list.0[1].image, None);
        assert!(Attachments::from(None).is_empty());
        assert!(Attachments::from(Some("garbage".into())).is_empty());
    }
}
