//! Full-text search of the messages of a person's rooms.
//!
//! Each backend indexes words its own way, kept current by the very statements that store,
//! edit and delete messages (SQLite: FTS5, `migrations/sqlite/0008_search.sql`, with triggers
//! for edits and deletes and, for posts, one statement per writer batch, `writer::INDEX_POSTS`;
//! PostgreSQL: a generated `tsvector` column with a GIN index, `0007_search.sql`). The query
//! given to the engine is built from the parsed words only (`domain::search::Query`), never
//! from what was typed.
//!
//! Results are the reader's rooms only (a join on `members`: someone who left a room no longer
//! finds its messages), newest first by `(created_at, room_id, seq)`, which is also the cursor.

use std::fmt;

use sqlx::FromRow;

use super::{Result, Store, on_read};
use crate::domain::search::Query;

/// One message found.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct SearchHit {
    /// Its room.
    pub room_id: i64,
    /// Its number in the room (its permalink is `/rooms/{code}/messages/{seq}`).
    pub seq: i64,
    /// The room's code.
    pub code: String,
    /// The room's name (empty: none); for a direct conversation, the other person's username
    /// (its code is never shown).
    pub room_name: String,
    /// The author's user id.
    pub user_id: i64,
    /// The author's username.
    pub author: String,
    /// The text as stored.
    pub body: String,
    /// When it was posted (Unix ms).
    pub created_at: i64,
    /// When it was last edited, if ever.
    pub edited_at: Option<i64>,
}

impl SearchHit {
    /// The room's name, or its code when it has none.
    pub fn room_display_name(&self) -> &str {
        if self.room_name.is_empty() {
            &self.code
        } else {
            &self.room_name
        }
    }

    /// Where the next page starts: below this hit.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            created_at: self.created_at,
            room_id: self.room_id,
            seq: self.seq,
        }
    }
}

/// A place in the results (exclusive): `created_at.room_id.seq` in URLs (`before=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The hit's time.
    pub created_at: i64,
    /// Its room.
    pub room_id: i64,
    /// Its seq.
    pub seq: i64,
}

impl Cursor {
    /// Above every hit: the first page.
    const START: Cursor = Cursor {
        created_at: i64::MAX,
        room_id: 0,
        seq: 0,
    };

    /// Reads `created_at.room_id.seq`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.splitn(3, '.').map(|p| p.parse::<i64>().ok());
        let (Some(Some(created_at)), Some(Some(room_id)), Some(Some(seq))) =
            (parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        (created_at >= 0 && room_id >= 0 && seq >= 0).then_some(Self {
            created_at,
            room_id,
            seq,
        })
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.created_at, self.room_id, self.seq)
    }
}

/// What every search statement shares after its `FROM`: the reader's rooms, `$matches` (the
/// backend's word match), what may be found (`searchable!`), the filters, the cursor and the
/// order. `$1` reader, `$2` the engine's query, `$3` author's username key, `$4` room code,
/// `$5..$7` cursor, `$8` limit.
macro_rules! search_tail {
    ($matches:literal) => {
        concat!(
            " JOIN members mb ON mb.room_id = m.room_id AND mb.user_id = $1 \
              JOIN rooms r ON r.id = m.room_id \
              JOIN users u ON u.id = m.user_id \
             WHERE ",
            $matches,
            " AND ",
            searchable!(),
            " AND ($3 IS NULL OR u.username_key = $3) \
               AND ($4 IS NULL OR r.code = $4) \
               AND (m.created_at, m.room_id, m.seq) < ($5, $6, $7) \
             ORDER BY m.created_at DESC, m.room_id DESC, m.seq DESC \
             LIMIT CAST($8 AS BIGINT)"
        )
    };
}

/// Which messages search may find, as SQL on `m`: what people wrote (not system lines) and
/// did not delete. The indexes agree: neither a deleted message nor a system line has words
/// in either.
macro_rules! searchable {
    () => {
        "m.deleted_at IS NULL AND m.kind = 'text'"
    };
}

/// `SELECT` and the columns of `SearchHit`.
macro_rules! hit_columns {
    () => {
        "SELECT m.room_id, m.seq, r.code, \
           CASE WHEN r.direct_pair IS NULL THEN r.name ELSE COALESCE( \
             (SELECT o.username FROM members om JOIN users o ON o.id = om.user_id \
               WHERE om.room_id = r.id AND om.user_id <> $1), '') END AS room_name, \
           m.user_id, \
           COALESCE(u.username, '') AS author, m.body, m.created_at, m.edited_at "
    };
}

/// SQLite, with words (`$2`: an FTS5 query from `Query::fts5`). The index's rowid is
/// `room_id << 32 | seq`; rows of rooms the reader is not in are dropped before any message is
/// read.
const SQLITE_MATCH: &str = concat!(
    hit_columns!(),
    "FROM (SELECT rowid AS id FROM messages_fts WHERE messages_fts MATCH $2 \
             AND (rowid >> 32) IN (SELECT room_id FROM members WHERE user_id = $1)) f \
     JOIN messages m ON m.room_id = (f.id >> 32) AND m.seq = (f.id & 4294967295)",
    search_tail!("TRUE")
);

/// PostgreSQL, with words (`$2`: a `to_tsquery` text from `Query::tsquery`).
const POSTGRES_MATCH: &str = concat!(
    hit_columns!(),
    "FROM messages m",
    search_tail!("m.search @@ to_tsquery('simple', $2)"),
);

/// Both backends, filters only (`from:`, `in:`); `$2` is NULL, bound so that every statement
/// takes the same parameters.
const FILTERS_ONLY: &str = concat!(
    hit_columns!(),
    "FROM messages m",
    search_tail!("$2 IS NULL"),
);

impl Store {
    /// The messages of `user_id`'s rooms that `query` finds, newest first, below `before`,
    /// at most `limit`. An empty query finds nothing.
    pub async fn search(
        &self,
        user_id: i64,
        query: &Query,
        before: Option<Cursor>,
        limit: i64,
    ) -> Result<Vec<SearchHit>> {
        if query.is_empty() {
            return Ok(Vec::new());
        }
        let before = before.unwrap_or(Cursor::START);
        let (sql, text) = match self.backend() {
            super::Backend::Sqlite => match query.fts5() {
                Some(text) => (SQLITE_MATCH, Some(text)),
                None => (FILTERS_ONLY, None),
            },
            super::Backend::Postgres => match query.tsquery() {
                Some(text) => (POSTGRES_MATCH, Some(text)),
                None => (FILTERS_ONLY, None),
            },
        };
        // Not a cached prepared statement: PostgreSQL then plans each search with its words
        // (a cached one soon gets a generic plan, which cannot know that a common word is
        // best read newest first: seconds instead of milliseconds over a million messages).
        let hits = on_read!(&self.db, pool => sqlx::query_as::<_, SearchHit>(sql)
            .persistent(false)
            .bind(user_id)
            .bind(text)
            .bind(&query.from)
            .bind(&query.room)
            .bind(before.created_at)
            .bind(before.room_id)
            .bind(before.seq)
            .bind(limit)
            .fetch_all(pool)
            .await)?;
        Ok(hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back_what_they_write() {
        let c = Cursor {
            created_at: 1_767_312_000_000,
            room_id: 3,
            seq: 42,
        };
        assert_eq!(Cursor::parse(&c.to_string()), Some(c));
        for bad in ["", "1.2", "1.2.x", "1.2.3.4", "-1.2.3", "1..3", "a.b.c"] {
            assert_eq!(Cursor::parse(bad), None, "{bad}");
        }
    }
}
