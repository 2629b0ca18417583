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

    /// The rooms `user_id` belongs to, by id, with their newest seq: which rooms' activity
    /// their live pages follow, from where (`chat::activity`).
    pub async fn room_seqs_of(&self, user_id: i64) -> Result<Vec<(i64, i64)>> {
        let ids = on_read!(&self.db, pool => sqlx::query_as::<_, (i64, i64)>(
            "SELECT r.id, r.last_seq FROM members m JOIN rooms r ON r.id = m.room_id \
             WHERE m.user_id = $1",
        )
        .bind(user_id)
        .fetch_all(pool)
        .await)?;
        Ok(ids)
    }
}
