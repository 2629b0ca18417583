//! The newest page of each room read lately, already rendered, keyed by the room and its last
//! event.
//!
//! Messages never change once stored and `rooms.last_seq` moves in the same transaction as
//! every insert, so a cached page is current exactly when the room's `last_seq` (read fresh with
//! the room on every request) still matches: no invalidation, on any instance. A busy room's
//! page is then read and rendered once per new message, not once per viewer (rendering fifty
//! messages was a fifth of a room page's CPU).

use std::{collections::HashMap, sync::Arc};

use parking_lot::Mutex;

use super::messages::message_items;
use crate::store::{Room, Store, StoreError};

/// The newest messages of a room as the room page shows them.
#[derive(Debug, Default)]
pub struct NewestPage {
    /// The messages, rendered (`message_items`).
    pub html: String,
    /// Whether older messages exist (the page links to them).
    pub has_older: bool,
    /// The oldest message's seq, if there is any message.
    pub first_seq: Option<i64>,
    /// The newest message's seq (0: none yet): where the page's live socket resumes.
    pub last_seq: i64,
}

/// The cache itself: at most `MAX_ROOMS` pages and `MAX_BYTES` of HTML; past either it starts
/// over (a cold page costs one read and one render).
#[derive(Debug, Default)]
pub struct NewestPages {
    /// A std-style mutex held for a map lookup or insert, never across an `.await`.
    pages: Mutex<Pages>,
}

#[derive(Debug, Default)]
struct Pages {
    /// (newest seq on the page, page size asked for, the page), by room id.
    by_room: HashMap<i64, (i64, i64, Arc<NewestPage>)>,
    /// The HTML the pages hold, in bytes.
    bytes: usize,
}

/// Rooms whose newest page is kept.
const MAX_ROOMS: usize = 10_000;

/// The HTML the cached pages may hold. A room page of fifty long messages is about 400 KB.
const MAX_BYTES: usize = 64 << 20;

impl NewestPages {
    /// The newest `limit` messages of `room` (as read with its `last_seq`), rendered: from
    /// memory when nothing was posted since they were last read, otherwise read and rendered
    /// now.
    pub async fn newest(
        &self,
        store: &Store,
        room: &Room,
        limit: i64,
    ) -> Result<Arc<NewestPage>, StoreError> {
        let cached = self
            .pages
            .lock()
            .by_room
            .get(&room.id)
            .filter(|(newest, size, _)| *newest == room.last_seq && *size == limit)
            .map(|(_, _, page)| page.clone());
        if let Some(page) = cached {
            return Ok(page);
        }
        let read = store.messages_before(room.id, None, limit).await?;
        let page = Arc::new(NewestPage {
            html: message_items(None, &read.messages).into_string(),
            has_older: read.has_older,
            first_seq: read.messages.first().map(|m| m.seq),
            // Seqs are gap-free and committed in order, so this page is the newest `limit`
            // messages as of its own newest seq (which may be past `room.last_seq`).
            last_seq: read.messages.last().map_or(0, |m| m.seq),
        });
        let mut pages = self.pages.lock();
        if pages.by_room.len() >= MAX_ROOMS || pages.bytes + page.html.len() > MAX_BYTES {
            *pages = Pages::default();
        }
        pages.bytes += page.html.len();
        let entry = (page.last_seq, limit, page.clone());
        if let Some((_, _, replaced)) = pages.by_room.insert(room.id, entry) {
            pages.bytes -= replaced.html.len();
        }
        Ok(page)
    }
}
