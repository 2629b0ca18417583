//! The member list and its live changes.
//!
//! Member-list changes are *upserts* into `#members`: every entry arrives through
//! `<ul id="members" hx-swap-oob="beforeend">`, and `assets/js/members.js` first removes the entry with the
//! same id (or drops an offline newcomer when the list is capped). Replacing entries by id
//! instead would make htmx log an error whenever the entry is not on the page (big rooms show
//! only the first 100 members; races between joins and list renders), and the target
//! `#members` always exists.

use maud::{Markup, html};

use super::status::room_status_oob;
use crate::store::Member;

/// The most members listed at once; the rest are counted ("and 9,900 more"). Online
/// members come first, so the cap hides the absent; the list is sent to every (re)connecting
/// socket, so it stays small.
pub const MEMBER_LIST_CAP: usize = 100;

/// How many of a room's members are online, and how many there are: the summary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Members with the room open somewhere.
    pub online: usize,
    /// All members.
    pub members: usize,
}

/// One member in the list, with presence.
pub fn member_item(member: &Member, online: bool) -> Markup {
    html! {
        li.member id={ "member-" (member.user_id) } data-online=(if online { "true" } else { "false" }) {
            span.member-name { (member.username) }
            span.visually-hidden { (if online { ", online" } else { ", offline" }) }
            // Apart from the name in a text browser (a flex item's gap on screen).
            " "
            (super::direct::message_privately(member.user_id, &member.username))
        }
    }
}

/// The member list, online members first, at most `MEMBER_LIST_CAP` entries.
pub fn member_list(members: &[Member], is_online: impl Fn(i64) -> bool) -> Markup {
    list(members, is_online, false)
}

/// The member list; `oob`: as a live frame's element, replacing the page's list.
fn list(members: &[Member], is_online: impl Fn(i64) -> bool, oob: bool) -> Markup {
    let mut sorted: Vec<(&Member, bool)> =
        members.iter().map(|m| (m, is_online(m.user_id))).collect();
    sorted.sort_by_key(|(_, online)| !online);
    let hidden = sorted.len().saturating_sub(MEMBER_LIST_CAP);
    html! {
        ul #members.member-list hx-swap-oob=[oob.then_some("true")] data-capped[hidden > 0] {
            @for (member, online) in sorted.iter().take(MEMBER_LIST_CAP) { (member_item(member, *online)) }
            @if hidden > 0 {
                li.member-more { "and " (hidden) " more" }
            }
        }
    }
}

/// What replaces a departed member's entry: hidden, so it vanishes from every list.
fn departed_item(user_id: i64) -> Markup {
    html! { li.member id={ "member-" (user_id) } data-online="false" hidden {} }
}

/// "3 online · 12 members".
pub fn member_summary(counts: Counts) -> Markup {
    summary(counts, false)
}

/// The summary line; `oob`: as a live frame's element, replacing the page's.
fn summary(counts: Counts, oob: bool) -> Markup {
    let Counts { online, members } = counts;
    html! {
        span #member-summary hx-swap-oob=[oob.then_some("true")] {
            (online) " online · " (members) (if members == 1 { " member" } else { " members" })
        }
    }
}

/// The live frame a (re)connecting socket gets first: a fresh list (presence is not in the
/// seq stream, so it may have changed meanwhile), the counts, and an empty status line.
/// Every element of a live frame names its swap (`hx-swap-oob`): the ws extension swaps a
/// frame's elements by id without it, but Server-Sent Events go through htmx's ordinary swap,
/// which swaps only the elements that say so.
pub fn list_frame(members: &[Member], is_online: impl Fn(i64) -> bool, counts: Counts) -> Markup {
    html! {
        (list(members, is_online, true))
        (summary(counts, true))
        (room_status_oob(""))
    }
}

/// One entry of a member-list change.
#[derive(Debug, Clone, Copy)]
pub enum Entry<'a> {
    /// A member as they are now, and whether they are online.
    Member(&'a Member, bool),
    /// Someone who is no longer a member (by user id): their entry is hidden everywhere.
    Departed(i64),
}

/// The live frame for a batch of member-list changes (joins, leaves, presence): each changed
/// entry as it is now, upserted into `#members`, and the counts (each element naming its swap,
/// as in `list_frame`). With no entries (presence in a capped list) only the counts change; a
/// page gets a fresh list when it (re)connects.
pub fn changes_frame<'a>(entries: impl IntoIterator<Item = Entry<'a>>, counts: Counts) -> Markup {
    let entries: Vec<Entry> = entries.into_iter().collect();
    html! {
        @if !entries.is_empty() {
            ul #members hx-swap-oob="beforeend" {
                @for entry in &entries {
                    @match entry {
                        Entry::Member(member, online) => (member_item(member, *online)),
                        Entry::Departed(user_id) => (departed_item(*user_id)),
                    }
                }
            }
        }
        (summary(counts, true))
    }
}
