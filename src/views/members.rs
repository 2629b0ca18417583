//! The member list and its live changes.
//!
//! Member-list changes are *upserts* into `#members`: every entry arrives through
//! `<ul id="members" hx-swap-oob="beforeend">`, and `assets/js/members.js` first removes the entry with the
//! same id (or drops an offline newcomer when the list is capped). Replacing entries by id
//! instead would make htmx log an error whenever the entry is not on the page (big rooms show
//! only the first 100 members; races between joins and list renders), and the target
//! `#members` always exists.

use maud::{Markup, html};

use super::status::room_status;
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
        }
    }
}

/// The member list, online members first, at most `MEMBER_LIST_CAP` entries.
pub fn member_list(members: &[Member], is_online: impl Fn(i64) -> bool) -> Markup {
    let mut sorted: Vec<(&Member, bool)> =
        members.iter().map(|m| (m, is_online(m.user_id))).collect();
    sorted.sort_by_key(|(_, online)| !online);
    let hidden = sorted.len().saturating_sub(MEMBER_LIST_CAP);
    html! {
        ul #members.member-list data-capped[hidden > 0] {
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
    let Counts { online, members } = counts;
    html! {
        span #member-summary {
            (online) " online · " (members) (if members == 1 { " member" } else { " members" })
        }
    }
}

/// The live frame a (re)connecting socket gets first: a fresh list (presence is not in the
/// seq stream, so it may have changed meanwhile), the counts, and an empty status line.
pub fn list_frame(members: &[Member], is_online: impl Fn(i64) -> bool, counts: Counts) -> Markup {
    html! {
        (member_list(members, is_online))
        (member_summary(counts))
        (room_status(""))
    }
}

/// The live frame for one member's change (joined, came online, went offline).
pub fn upsert_frame(member: &Member, online: bool, counts: Counts) -> Markup {
    html! {
        ul #members hx-swap-oob="beforeend" { (member_item(member, online)) }
        (member_summary(counts))
    }
}

/// The live frame for a batch of presence changes in a big room; where the list is `capped`
/// only the counts change (a page gets a fresh list when it reconnects).
pub fn batch_frame<'a>(
    changes: impl Iterator<Item = (&'a Member, bool)>,
    capped: bool,
    counts: Counts,
) -> Markup {
    html! {
        @if !capped {
            ul #members hx-swap-oob="beforeend" {
                @for (member, online) in changes { (member_item(member, online)) }
            }
        }
        (member_summary(counts))
    }
}

/// The live frame for a member who left: their entry is hidden everywhere.
pub fn departed_frame(user_id: i64, counts: Counts) -> Markup {
    html! {
        ul #members hx-swap-oob="beforeend" { (departed_item(user_id)) }
        (member_summary(counts))
    }
}
