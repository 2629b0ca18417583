//! Unread: the counts beside rooms (home and the room rail), the "New messages" divider, the
//! count in the tab title, "Mark all read", and the live activity frame that moves the counts
//! of a page's other rooms (`chat::activity`, `assets/js/unread.js`).

use maud::{Markup, html};

use super::layout::{csrf_field, text_separator};
use crate::store::{Marks, UNREAD_CAP};

/// An unread count as shown: the number, or "99+" from `UNREAD_CAP` on (counts stop there).
pub fn count(n: i64) -> String {
    if n >= UNREAD_CAP {
        format!("{}+", UNREAD_CAP - 1)
    } else {
        n.max(0).to_string()
    }
}

/// The badge beside a room: hidden at zero (`js/unread.js` shows it when activity arrives,
/// following `data-notify`), stronger (`.mentioned`, an "@" drawn by natter.css) when something
/// unread mentions the viewer. Screen readers hear "3 unread, 1 mention you" after the room's
/// name; text browsers, which show hidden elements, read " · 3 unread" after it, and nothing
/// at zero: the empty badge's words are written by `js/unread.js` when it shows it.
pub fn badge(marks: Marks) -> Markup {
    let n = marks.shown();
    html! {
        span.unread-count.mentioned[marks.mentioned()] hidden[n <= 0]
            data-count=(n.clamp(0, UNREAD_CAP)) data-notify=(marks.notify.as_str()) {
            @if n > 0 { (text_separator()) }
            span.unread-at aria-hidden="true" {}
            span.unread-number { @if n > 0 { (count(n)) } }
            span.visually-hidden.unread-label { @if n > 0 { " unread" } }
            span.visually-hidden.unread-mentions {
                @if marks.mentioned() { ", " (count(marks.mentions)) " mention you" }
            }
        }
    }
}

/// The link to a room from home or the rail: at its first unread message when there is one,
/// so the page opens there without JavaScript (the page's divider has `id="unread"`).
pub fn room_href(code: &str, unread: i64) -> String {
    if unread > 0 {
        format!("/rooms/{code}#unread")
    } else {
        format!("/rooms/{code}")
    }
}

/// A page title with the total unread count in front, `(3) Rooms` (the layout adds
/// " · natter"). `js/unread.js` keeps the number current on a live page.
pub fn titled(total: i64, title: &str) -> String {
    if total > 0 {
        format!("({}) {title}", count(total))
    } else {
        title.to_string()
    }
}

/// The divider before the first unread message. Its id is what room links point at.
pub fn divider() -> Markup {
    html! {
        div #unread.unread-divider role="separator" aria-label="New messages" {
            span { "New messages" }
        }
    }
}

/// "Mark all read" on home: a plain form, so it works without JavaScript.
pub fn mark_all_read(csrf: &str) -> Markup {
    html! {
        form.mark-all-read method="post" action="/home/read" {
            (csrf_field(csrf))
            button.button.small.subtle type="submit" { "Mark all read" }
        }
    }
}

/// A room's new messages by others since a browser's last activity frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// How many (counts stop at `UNREAD_CAP`, as shown).
    pub count: i64,
    /// The first one's seq.
    pub first: i64,
    /// The last one's seq.
    pub last: i64,
    /// How many of them mention the browser's person.
    pub mentions: i64,
}

/// One live activity frame for one browser: for each room (by id), how many new messages
/// others wrote since the last frame, the first and last of their seqs, and how many of them
/// mention the browser's person, as `id:count:first:last:mentions` in one attribute. Only `js/unread.js` reads it (it is not swapped
/// into the page); a page counts only what lies above the seq its rail already counted, so a
/// frame that arrives twice (two instances, two tabs relaying) counts once.
pub fn activity_frame(rooms: &std::collections::BTreeMap<i64, Run>) -> Markup {
    let runs: Vec<String> = rooms
        .iter()
        .map(|(id, r)| format!("{id}:{}:{}:{}:{}", r.count, r.first, r.last, r.mentions))
        .collect();
    html! { template data-activity=(runs.join(" ")) {} }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_show_up_to_99_then_99_plus() {
        assert_eq!(count(0), "0");
        assert_eq!(count(7), "7");
        assert_eq!(count(99), "99");
        assert_eq!(count(100), "99+");
        assert_eq!(count(i64::MAX), "99+");
        assert_eq!(titled(0, "Rooms"), "Rooms");
        assert_eq!(titled(3, "Rooms"), "(3) Rooms");
        assert_eq!(titled(250, "Rooms"), "(99+) Rooms");
    }
}
