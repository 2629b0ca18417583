//! Direct conversations (issue 17): the header of one, the page that starts one, their list on
//! home, and the "Message privately" link beside a person's name.

use maud::{Markup, html};

use super::{
    layout::{Nav, Page, csrf_field, text_separator},
    times::time,
    unread,
};
use crate::store::{DirectSummary, GONE_NAME};

/// The address of the direct conversation with `name`: at its first unread message when there
/// is one (the page's divider has `id="unread"`), like a room's link.
pub fn href(name: &str, unread: i64) -> String {
    if unread > 0 {
        format!("/dm/{name}#unread")
    } else {
        format!("/dm/{name}")
    }
}

/// "Message privately" beside a person's name (a message's author, a member). A link, so it
/// works without JavaScript and needs no per-viewer token in markup rendered once for everyone:
/// `GET /dm/{name}` shows the conversation, or a button that opens it. `data-user` lets
/// `/me.css` hide it beside one's own name. "deleted user" is nobody to write to: no link.
pub fn message_privately(user_id: i64, name: &str) -> Markup {
    html! {
        @if !name.is_empty() && name != GONE_NAME {
            a.dm-link href={ "/dm/" (name) } data-user=(user_id) {
                "Message privately" span.visually-hidden { " with " (name) }
            }
        }
    }
}

/// The header of a direct conversation: the other person's name, and "Close" (it leaves my
/// list until a message arrives). No code and no invitation: nobody else can join.
pub fn header(other: &str, csrf: &str) -> Markup {
    html! {
        header.room-header {
            div.room-title {
                h1 { bdi { (other) } }
                p.room-code { "Direct messages: only the two of you see them." }
            }
            form.leave-form method="post" action={ "/dm/" (other) "/close" } {
                (csrf_field(csrf))
                button.button.subtle type="submit" { "Close" }
            }
        }
    }
}

/// `GET /dm/{name}` before the conversation exists: a button that opens it (a POST, so a link
/// followed by a crawler or a prefetch creates nothing).
pub fn start_page(nav: Nav, csrf: &str, other: &str) -> Markup {
    let content = html! {
        section.card aria-labelledby="dm-title" {
            h1 #dm-title { "Message " bdi { (other) } " privately" }
            p.muted { "A direct conversation is seen only by the two of you. It has no code, and nobody can join it." }
            form method="post" action={ "/dm/" (other) } {
                (csrf_field(csrf))
                button.button.primary type="submit" { "Start the conversation" }
            }
        }
    };
    Page {
        title: &format!("Message {other}"),
        nav,
        body_class: "page-narrow",
        content,
    }
    .render()
}

/// Home's list of my direct conversations (closed ones are not there).
pub fn home_section(directs: &[DirectSummary]) -> Markup {
    html! {
        @if !directs.is_empty() {
            section.my-rooms.my-directs aria-labelledby="directs-title" {
                div.my-rooms-head { h2 #directs-title { "Direct messages" } }
                ul.room-list {
                    @for d in directs {
                        li {
                            a.room-row href=(href(&d.other, d.marks().shown())) {
                                span.room-row-main {
                                    span.room-row-name { bdi { (d.other) } }
                                }
                                span.room-row-side {
                                    (unread::badge(d.marks()))
                                    (text_separator())
                                    (time(d.last_activity_at, false))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
