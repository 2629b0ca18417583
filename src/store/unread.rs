//! Read marks: `members.last_read_seq`, the seq up to which a member has read a room. The
//! counts themselves are read with the rooms (`rooms.rs`, `unread_sql!`).

use super::{Result, Store, on_read, on_write};

impl Store {
    /// Moves `user_id`'s read mark in the room up to `seq`; never down (a late or repeated
    /// write changes nothing). The caller clamps `seq` to the room's last seq. Returns whether
    /// the mark moved.
    pub async fn mark_read(&self, room_id: i64, user_id: i64, seq: i64) -> Result<bool> {
        let done = on_write!(&self.db, pool => sqlx::query(
            "UPDATE members SET last_read_seq = $3 \
             WHERE room_id = $1 AND user_id = $2 AND last_read_seq < $3",
        )
        .bind(room_id)
        .bind(user_id)
        .bind(seq)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// Moves `user_id`'s read mark to the newest seq in every room they belong to ("Mark all
    /// read"), in one statement; rooms read already are not written.
    pub async fn mark_all_read(&self, user_id: i64) -> Result<u64> {
        let done = on_write!(&self.db, pool => sqlx::query(
            "UPDATE members SET last_read_seq = \
                 (SELECT r.last_seq FROM rooms r WHERE r.id = members.room_id) \
             WHERE user_id = $1 AND last_read_seq < \
                 (SELECT r.last_seq FROM rooms r WHERE r.id = members.room_id)",
        )
        .bind(user_id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done)
    }

    /// The ids of the rooms `user_id` belongs to: which rooms' activity their live pages
    /// follow (`chat::activity`).
    pub async fn room_ids_of(&self, user_id: i64) -> Result<Vec<i64>> {
        let ids = on_read!(&self.db, pool => sqlx::query_scalar::<_, i64>(
            "SELECT room_id FROM members WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_all(pool)
        .await)?;
        Ok(ids)
    }
}
