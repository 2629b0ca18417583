//! Home (create a room, join one by code, my rooms) and the invitation page.

use maud::{Markup, html};

use super::{
    layout::{Nav, Page, csrf_field, field_error, text_separator},
    times::time,
    unread,
};
use crate::{
    domain::RoomName,
    store::{DirectSummary, RoomSummary},
};

/// What the home forms show after a refused submission: the typed values and the reasons.
#[derive(Default)]
pub struct HomeForms<'a> {
    /// The room name typed into "Start a room".
    pub name: &'a str,
    /// Why that room was not created.
    pub name_error: Option<&'a str>,
    /// The code typed into "Join with a code".
    pub code: &'a str,
    /// Why that room was not joined.
    pub code_error: Option<&'a str>,
}

/// The home page.
pub fn home(
    nav: Nav,
    csrf: &str,
    rooms: &[RoomSummary],
    directs: &[DirectSummary],
    forms: &HomeForms,
) -> Markup {
    let total: i64 = rooms.iter().map(|r| r.marks().shown()).sum::<i64>()
        + directs.iter().map(|d| d.marks().shown()).sum::<i64>();
    let content = html! {
        h1.visually-hidden { "Your rooms" }
        div.actions {
            section.card.action aria-labelledby="create-title" {
                h2 #create-title { "Start a room" }
                p.muted { "You get a short code to share with the people you invite." }
                form method="post" action="/rooms" novalidate {
                    (csrf_field(csrf))
                    // The spaces keep label, field and button apart in a text browser (natter.css sets
                    // each on its own line).
                    label for="room-name" { "Room name " span.optional { "(optional)" } }
                    " "
                    input #room-name type="text" name="name" value=(forms.name) maxlength=(RoomName::MAX) autocomplete="off"
                        placeholder="Book club"
                        aria-invalid=[forms.name_error.map(|_| "true")] aria-describedby=[forms.name_error.map(|_| "room-name-error")];
                    (field_error("room-name-error", forms.name_error))
                    " "
                    button.button.primary type="submit" { "Create room" }
                }
            }
            section.card.action aria-labelledby="join-title" {
                h2 #join-title { "Join with a code" }
                p.muted { "Someone sent you a code like " code { "ABCD-EFGH" } "? Enter it here." }
                form method="post" action="/rooms/join" novalidate {
                    (csrf_field(csrf))
                    label for="join-code" { "Room code" }
                    " "
                    input #join-code.code-input type="text" name="code" value=(forms.code) required autocomplete="off"
                        autocapitalize="characters" spellcheck="false" placeholder="ABCD-EFGH" maxlength="40"
                        aria-invalid=[forms.code_error.map(|_| "true")] aria-describedby=[forms.code_error.map(|_| "join-code-error")];
                    (field_error("join-code-error", forms.code_error))
                    " "
                    button.button type="submit" { "Join room" }
                }
            }
        }
        section.my-rooms aria-labelledby="rooms-title" {
            div.my-rooms-head {
                h2 #rooms-title { "My rooms" }
                @if total > 0 { (unread::mark_all_read(csrf)) }
            }
            @if rooms.is_empty() {
                div.empty-state {
                    p { strong { "No rooms yet." } }
                    p.muted { "Start a room above and share its code, or join one with a code someone sent you." }
                }
            } @else {
                ul.room-list {
                    @for r in rooms { (room_row(r)) }
                }
            }
        }
        (super::direct::home_section(directs))
    };
    Page {
        title: &unread::titled(total, "Rooms"),
        nav,
        body_class: "page-home",
        content,
    }
    .render()
}

/// One of my rooms: name, latest message, code and time (apart on screen; separated by " · "
/// in a text browser, the unread badge bringing its own).
fn room_row(r: &RoomSummary) -> Markup {
    html! {
        li {
            a.room-row href=(unread::room_href(&r.code, r.marks().shown())) {
                span.room-row-main {
                    span.room-row-name { bdi { (r.display_name()) } }
                    (text_separator())
                    span.room-row-preview {
                        @match (&r.last_author, &r.last_body) {
                            (Some(author), Some(_)) if r.last_deleted => { span.preview-author { (author) ": " } em { "Message deleted" } },
                            // Only a message of files alone has no text and is not deleted.
                            (Some(author), Some(body)) if body.is_empty() => { span.preview-author { (author) ": " } em { "Sent files" } },
                            (Some(author), Some(body)) => { span.preview-author { (author) ": " } (preview(body)) },
                            _ => { span.muted { "No messages yet" } },
                        }
                    }
                }
                span.room-row-side {
                    (unread::badge(r.marks()))
                    (text_separator())
                    code.code-chip { (r.code) }
                    (text_separator())
                    (time(r.last_activity_at, false))
                }
            }
        }
    }
}

/// The first line of a message, shortened for the room list.
fn preview(body: &str) -> String {
    let line = body.lines().next().unwrap_or_default();
    let mut short: String = line.chars().take(90).collect();
    if short.len() < line.len() || body.lines().nth(1).is_some() {
        short.push('…');
    }
    short
}

/// The invitation for someone signed out: sign in first, then come back (`next`, encoded).
pub fn invitation_signed_out(next: &str) -> Markup {
    invitation_page(
        Nav::Guest,
        html! {
            h1 #invite-title { "You're invited to a room" }
            p { "Someone shared a natter room with you. Sign in to see it and join." }
            a.button.primary href={ "/?next=" (next) } { "Sign in to join" }
        },
    )
}

/// The invitation for a signed-in non-member: the room's name and a join button.
pub fn invitation(nav: Nav, csrf: &str, name: &str, code: &str) -> Markup {
    invitation_page(
        nav,
        html! {
            h1 #invite-title { "Join " bdi { (name) } "?" }
            p { "Room " code.code-chip { (code) } }
            form method="post" action="/rooms/join" {
                (csrf_field(csrf))
                input type="hidden" name="code" value=(code);
                button.button.primary type="submit" { "Join room" }
                " "
                a.button.subtle href="/home" { "Not now" }
            }
        },
    )
}

fn invitation_page(nav: Nav, body: Markup) -> Markup {
    Page {
        title: "Invitation",
        nav,
        body_class: "page-narrow",
        content: html! { section.card.invitation aria-labelledby="invite-title" { (body) } },
    }
    .render()
}
