//! Room settings: the room's heading (name, topic, code), which a system line's frame swaps
//! into every open page; the system line itself; and the settings page, a set of plain forms
//! for the room's owner.

use maud::{Markup, html};

use super::{
    layout::{Nav, Page, csrf_field, field_error},
    times::time,
};
use crate::{
    domain::{RoomName, RoomTopic},
    store::{Action, GONE_NAME, Heading, Member, Message, Room, What},
};

impl Heading {
    /// The heading of `room` as it is.
    pub fn of(room: &Room) -> Self {
        Heading {
            name: room.name.clone(),
            topic: room.topic.clone(),
            code: room.code.clone(),
        }
    }
}

/// The room page's heading: its name (or code), its topic, its code and invitation link.
/// `data-code` is the code the page's live connection uses (`js/live.js` reads it on every
/// reconnect, so a page whose room got a new code follows it). Out of band (`oob`) in the frame
/// of a system line: the same for every reader, so it is rendered once with the line.
pub fn heading(h: &Heading, oob: bool) -> Markup {
    html! {
        div #room-heading.room-title data-code=(h.code) hx-swap-oob=[oob.then_some("true")] {
            h1 { bdi { (h.display_name()) } }
            @if !h.topic.is_empty() {
                p.room-topic dir="auto" { (h.topic) }
            }
            p.room-code {
                span.visually-hidden { "Room code " }
                code.code-chip #room-code { (h.code) }
                " "
                a.invite-link href={ "/join/" (h.code) } { "Invitation link" }
            }
        }
    }
}

/// A system line: who changed what, small and centered, never grouped with messages, never
/// editable. Its words are the line's stored sentence (plain text, escaped like any text; no
/// links, no mentions).
///
/// A username change is marked `data-renamed`: `js/members.js` then shows the new name (the
/// line's author) on that person's earlier messages in the page, as a fresh load would. A
/// deleted account's line is marked `data-gone` with the name its messages take ("deleted
/// user"), and `js/members.js` shows that, without the "Message privately" link.
pub fn system_line(m: &Message) -> Markup {
    let what = Action::of(m).map(|a| a.what);
    let renamed = what == Some(What::Username);
    let gone = (what == Some(What::Gone)).then_some(GONE_NAME);
    html! {
        article.system-line id={ "msg-" (m.seq) } data-seq=(m.seq) data-author=(m.user_id) data-renamed[renamed] data-gone=[gone] {
            p {
                span.author { (m.author) }
                " "
                span.system-text dir="auto" { (m.body) }
                " "
                span.system-time { (time(m.created_at, false)) }
            }
        }
    }
}

/// What the settings page shows.
pub struct SettingsPage<'a> {
    /// The header's account links.
    pub nav: Nav<'a>,
    /// A CSRF token for the forms.
    pub csrf: &'a str,
    /// The room.
    pub room: &'a Room,
    /// Its members, by name.
    pub members: &'a [Member],
    /// The name and topic in the form (as typed, after a refusal).
    pub name: &'a str,
    /// The topic in the form.
    pub topic: &'a str,
    /// Why the name and topic were refused.
    pub error: Option<&'a str>,
    /// Why a member action (remove, hand over) was refused.
    pub member_error: Option<&'a str>,
}

impl SettingsPage<'_> {
    /// The page.
    pub fn render(self) -> Markup {
        let v = self;
        let code = v.room.code.as_str();
        let base = format!("/rooms/{code}");
        let title = format!("Settings · {}", v.room.display_name());
        let content = html! {
            section.card.settings-page aria-labelledby="settings-title" {
                p { a href=(base) { "← Back to " bdi { (v.room.display_name()) } } }
                h1 #settings-title { "Room settings" }
                form.settings-form method="post" action={ (base) "/settings" } {
                    (csrf_field(v.csrf))
                    label for="settings-name" { "Name" }
                    input #settings-name type="text" name="name" value=(v.name) maxlength=(RoomName::MAX)
                        autocomplete="off" aria-invalid=[v.error.map(|_| "true")]
                        aria-describedby=[v.error.map(|_| "settings-error")];
                    label for="settings-topic" { "Topic" }
                    input #settings-topic type="text" name="topic" value=(v.topic) maxlength=(RoomTopic::MAX)
                        autocomplete="off" aria-invalid=[v.error.map(|_| "true")]
                        aria-describedby=[v.error.map(|_| "settings-error")];
                    (field_error("settings-error", v.error))
                    div.form-actions {
                        button.button.primary type="submit" { "Save" }
                    }
                }
                h2 { "Members" }
                (field_error("member-error", v.member_error))
                ul.settings-members {
                    @for m in v.members {
                        li {
                            span.member-name { bdi { (m.username) } }
                            @if m.user_id == v.room.created_by {
                                " " span.owner-badge { "owner" }
                            } @else {
                                form.inline-form method="post" action={ (base) "/owner" } {
                                    (csrf_field(v.csrf))
                                    input type="hidden" name="username" value=(m.username);
                                    button.button.small type="submit" { "Make owner" span.visually-hidden { " " (m.username) } }
                                }
                                form.inline-form method="post"
                                    action={ (base) "/members/" (url_segment(&m.username)) "/remove" } {
                                    (csrf_field(v.csrf))
                                    button.button.small.danger type="submit" { "Remove" span.visually-hidden { " " (m.username) } }
                                }
                            }
                        }
                    }
                }
                h2 { "Room code" }
                p { "The code is " code.code-chip { (code) } "." }
                form method="post" action={ (base) "/settings/rotate" } {
                    (csrf_field(v.csrf))
                    p.warning {
                        "A new code stops the current code and invitation link from working at once. \
                         Members stay; anyone else needs the new code to join."
                    }
                    button.button.danger type="submit" { "Change the code" }
                }
            }
        };
        Page {
            title: &title,
            nav: v.nav,
            body_class: "page-narrow",
            content,
        }
        .render()
    }
}

/// A username as a path segment. Usernames are ASCII letters, digits, `_`, `-` and `.`
/// (`domain::Username`), all safe in a path; anything else is percent-encoded all the same.
fn url_segment(name: &str) -> String {
    crate::files::name::url_segment(name)
}
