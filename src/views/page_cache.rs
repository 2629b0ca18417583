//! The newest page of each room read lately, already rendered, keyed by the room and its last
//! event.
//!
//! Every post, edit and delete moves `rooms.last_seq` in its own transaction, so a cached page
//! is current exactly when it shows every event up to the room's `last_seq` (read fresh with
//! the room on every request): no invalidation, on any instance. A busy room's
//! page is then read and rendered once per new message, not once per viewer (rendering fifty
//! messages was a fifth of a room page's CPU).

use std::{collections::HashMap, sync::Arc};

use parking_lot::Mutex;

use super::messages::message_items;
use crate::store::{Message, Room, Store, StoreError};

/// The newest messages of a room as the room page shows them.
#[derive(Debug, Default)]
pub struct NewestPage {
    /// The messages, rendered (`message_items`).
    pub html: String,
    /// Whether older messages exist (the page links to them).
    pub has_older: bool,
    /// The oldest message's seq, if there is any message.
    pub first_seq: Option<i64>,
    /// The newest message's seq (0: none yet).
    pub last_seq: i64,
    /// The newest room event the page shows (posts, edits, deletes): where its live socket
    /// resumes. Every event up to it is in the page.
    pub cursor: i64,
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
    /// (the page's cursor, page size asked for, the page), by room id.
    by_room: HashMap<i64, (i64, i64, Arc<NewestPage>)>,
    /// The memory the pages' HTML holds, in bytes (each string's capacity, not its length).
    bytes: usize,
}

/// Rooms whose newest page is kept.
const MAX_ROOMS: usize = 10_000;

/// The memory the cached pages' HTML may hold. A room page of fifty long messages is about
/// 400 KB; fifty of the largest (4,000 `&` in a link, each escaped in the text and the `href`)
/// about 2 MB.
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
            .filter(|(cursor, size, _)| room.last_seq <= *cursor && *size == limit)
            .map(|(_, _, page)| page.clone());
        if let Some(page) = cached {
            return Ok(page);
        }
        let read = store.messages_before(room.id, None, limit).await?;
        Ok(self.keep(
            room.id,
            limit,
            NewestPage::render(&room.code, &read.messages, read.has_older, room.last_seq),
        ))
    }

    /// Keeps `page` as the newest page of `room_id` (and hands it back), starting over first
    /// if it would not fit.
    fn keep(&self, room_id: i64, limit: i64, mut page: NewestPage) -> Arc<NewestPage> {
        // The bound is on the memory held, not the text: a rendered `String` grows by doubling,
        // so it can hold nearly twice its length. Give the spare back and count what is kept.
        page.html.shrink_to_fit();
        let size = page.html.capacity();
        let page = Arc::new(page);
        if size > MAX_BYTES {
            return page;
        }
        let mut pages = self.pages.lock();
        if let Some((_, _, replaced)) = pages.by_room.remove(&room_id) {
            pages.bytes -= replaced.html.capacity();
        }
        if pages.by_room.len() >= MAX_ROOMS || pages.bytes + size > MAX_BYTES {
            *pages = Pages::default();
        }
        pages.bytes += size;
        pages
            .by_room
            .insert(room_id, (page.cursor, limit, page.clone()));
        page
    }
}

impl NewestPages {
    /// Drops the cached pages of these rooms: something they show changed without an event
    /// of theirs (an author's name, when the author's account was deleted or renamed in a
    /// room they had left). `Chat::names_changed` calls it on every instance.
    pub fn forget(&self, room_ids: &[i64]) {
        let mut pages = self.pages.lock();
        for id in room_ids {
            if let Some((_, _, page)) = pages.by_room.remove(id) {
                pages.bytes -= page.html.capacity();
            }
        }
    }
}

impl NewestPage {
    /// `messages` (the newest of room `code`, in order, read after the room's `last_seq` was)
    /// as the room page shows them.
    fn render(code: &str, messages: &[Message], has_older: bool, last_seq: i64) -> Self {
        // Read after `last_seq`, the page holds every event up to it; and up to the newest event
        // it shows, as commit order is seq order.
        let newest_event = messages.iter().map(|m| m.event).max().unwrap_or(0);
        Self {
            html: message_items(code, None, messages).into_string(),
            has_older,
            first_seq: messages.first().map(|m| m.seq),
            // Seqs are gap-free and committed in order, so this page is the newest messages
            // as of its own newest seq (which may be past the room's `last_seq` when read).
            last_seq: messages.last().map_or(0, |m| m.seq),
            cursor: last_seq.max(newest_event),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{domain::MessageBody, views::messages::PAGE_SIZE};

    /// The message whose HTML is largest for its length: a link of nothing but `&`, which is
    /// escaped twice (the link's text and its `href`), ten bytes of HTML per character typed.
    fn worst_message(seq: i64) -> Message {
        let text = format!("https://e.x/?{}", "&".repeat(MessageBody::MAX - 13));
        let body = MessageBody::parse(&text).expect("the longest message allowed");
        Message {
            room_id: 1,
            seq,
            user_id: seq % 2,
            author: "w".repeat(crate::domain::Username::MAX),
            body: body.into_string(),
            created_at: seq * 1000,
            edited_at: None,
            deleted_at: None,
            event: seq,
            action: None,
            mentions: Default::default(),
            attachments: Default::default(),
        }
    }

    /// What the cache holds, as it counts it and as the strings themselves say.
    fn held(cache: &NewestPages) -> (usize, usize, usize, usize) {
        let pages = cache.pages.lock();
        let len = pages.by_room.values().map(|(_, _, p)| p.html.len()).sum();
        let capacity = pages
            .by_room
            .values()
            .map(|(_, _, p)| p.html.capacity())
            .sum();
        (pages.bytes, len, capacity, pages.by_room.len())
    }

    #[test]
    fn worst_case_pages_never_hold_more_than_the_bound() {
        let messages: Vec<Message> = (1..=PAGE_SIZE).map(worst_message).collect();
        let cache = NewestPages::default();
        let first = NewestPage::render("ABCD-EFGH", &messages, true, 0)
            .html
            .len();
        assert!(first > 1 << 20, "a worst-case page is {first} bytes");
        // Past the bound three times over, so the cache starts over more than once.
        let rooms = 3 * MAX_BYTES / first + 3;
        let mut most = 0;
        for room in 0..rooms as i64 {
            // Rendered each time, as a request would: the string as maud built it. Rooms hold
            // 26 to 50 such messages, so some pages are just past a power of two in length.
            let newest = &messages[(room % 25) as usize..];
            cache.keep(
                room,
                PAGE_SIZE,
                NewestPage::render("ABCD-EFGH", newest, true, 0),
            );
            // The same room again (a new message): replaced, not counted twice.
            if room % 5 == 0 {
                cache.keep(
                    room,
                    PAGE_SIZE,
                    NewestPage::render("ABCD-EFGH", &messages[1..], true, 0),
                );
            }
            let (counted, len, capacity, kept) = held(&cache);
            assert!(counted <= MAX_BYTES, "counted {counted} bytes");
            assert!(len <= MAX_BYTES, "the pages are {len} bytes long");
            assert!(
                capacity <= MAX_BYTES,
                "the pages hold {capacity} bytes ({len} used, {counted} counted)"
            );
            assert!(counted >= len, "counted {counted} of {len} bytes");
            assert!(kept <= MAX_ROOMS);
            most = most.max(kept);
        }
        assert!(most > 1, "several worst-case pages fit at once: {most}");
    }
}
