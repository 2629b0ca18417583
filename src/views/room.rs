//! The room page and its parts: the header, the rail of my rooms, the conversation, the
//! member panel and the composer.

use maud::{Markup, PreEscaped, html};

use super::{
    layout::{Nav, Page, csrf_field},
    members::{Counts, member_list, member_summary},
    messages::{cursor, older_link},
    page_cache::NewestPage,
    settings::heading,
    status::room_status,
    typing::{typing_placeholder, typing_signal},
    unread,
};
use crate::{
    assets,
    config::FilesConfig,
    domain::{MessageBody, notify::Notify},
    store::{Heading, Marks, Member, Room, RoomLink, RoomNotify},
};

/// A fresh random `client_id` for a composer: a double click or a resubmitted form with it
/// posts once.
pub fn fresh_client_id() -> String {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

/// The composer. A fresh one carries a new random `client_id`; after a refused post it keeps
/// the typed text and says why. `limits` are the server's, for `js/attach.js` to refuse a file
/// before uploading it in vain.
pub fn composer(
    limits: &FilesConfig,
    code: &str,
    csrf: &str,
    body: &str,
    error: Option<&str>,
    client_id: Option<&str>,
    focus: bool,
) -> Markup {
    let fresh_id;
    let client_id = match client_id {
        Some(id) => id,
        None => {
            fresh_id = fresh_client_id();
            &fresh_id
        }
    };
    let action = format!("/rooms/{code}/messages");
    html! {
        form #composer.composer method="post" action=(action) enctype="multipart/form-data"
            hx-post=(action) hx-encoding="multipart/form-data" hx-target="this" hx-swap="outerHTML" {
            (csrf_field(csrf))
            label.visually-hidden for="composer-body" { "Message" }
            textarea #composer-body name="body" rows="1" maxlength=(MessageBody::MAX)
                placeholder="Write a message" autocomplete="off" autofocus[focus]
                aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| "composer-error")]
                { (body) }
            (file_picker(Some(limits)))
            button.button.primary.send type="submit" { "Send" }
            (composer_state(client_id, error))
        }
    }
}

/// The composer's file input: any number of files (the server says when there are too many or
/// one is too large). Without JavaScript it is the browser's own picker; `js/attach.js` adds
/// pasting, dropping, a list with remove buttons and a progress bar, and reads `limits` (none
/// where no script runs: the composer frame) to refuse what the server would.
pub fn file_picker(limits: Option<&FilesConfig>) -> Markup {
    html! {
        label.attach for="composer-files" {
            span.visually-hidden { "Attach files" }
            input #composer-files.attach-input type="file" name="files" multiple
                data-max-upload=[limits.map(|l| l.max_upload)]
                data-max-files=[limits.map(|l| l.max_files)];
        }
    }
}

/// The part of the composer a post changes: the next `client_id` and the error, if any.
fn composer_state(client_id: &str, error: Option<&str>) -> Markup {
    html! {
        div #composer-state {
            input type="hidden" name="client_id" value=(client_id);
            @if let Some(error) = error {
                p #composer-error.field-error role="alert" { (error) }
            }
        }
    }
}

/// The answer to a post htmx made that succeeded: only a fresh `client_id` (and no error),
/// out of band; the form itself stays, so focus and whatever was typed meanwhile are
/// untouched (`assets/js/composer.js` emptied the text when it sent).
pub fn posted() -> Markup {
    html! {
        div #composer-state hx-swap-oob="true" {
            input type="hidden" name="client_id" value=(fresh_client_id());
        }
    }
}

/// The room's notification setting, in the member panel: a plain form (303 back to the room),
/// `error` when a value was refused.
pub fn notify_form(code: &str, csrf: &str, notify: RoomNotify, error: Option<&str>) -> Markup {
    let own = notify.own.map_or("default", Notify::as_str);
    html! {
        // `data-notify`: what applies, for `js/notify.js`'s desktop notifications.
        form #notify-form.notify-form method="post" action={ "/rooms/" (code) "/notify" }
            data-notify=(notify.effective().as_str()) {
            (csrf_field(csrf))
            label for="notify" { "Notify me about" }
            select #notify name="notify"
                aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| "notify-error")] {
                option value="default" selected[own == "default"] {
                    "Default: " (notify.default.as_str())
                }
                @for choice in Notify::CHOICES {
                    option value=(choice.as_str()) selected[own == choice.as_str()] { (choice.label()) }
                }
            }
            button.button.small type="submit" { "Save" }
            @if let Some(error) = error {
                p #notify-error.field-error role="alert" { (error) }
            }
        }
    }
}

/// The left rail: my rooms, then my direct conversations under the other person's name, this
/// one marked, the others with their unread counts (this one's is read by opening it).
/// `data-room-id` and `data-seq` let `js/unread.js` count live activity above what the count
/// already holds.
pub fn rooms_rail(links: &[RoomLink], current: &str) -> Markup {
    let (directs, rooms): (Vec<&RoomLink>, Vec<&RoomLink>) =
        links.iter().partition(|r| r.direct.is_some());
    html! {
        nav.rooms-rail aria-label="Your rooms" {
            h2.rail-title { "Rooms" }
            ul {
                @for r in rooms { (rail_link(r, current, &unread::room_href(&r.code, r.marks().shown()), r.display_name())) }
            }
            a.rail-home href="/home" { "+ New or join" }
            @if !directs.is_empty() {
                h2.rail-title.rail-direct-title { "Direct messages" }
                ul.rail-direct {
                    @for r in directs {
                        @let name = r.direct.as_deref().unwrap_or_default();
                        (rail_link(r, current, &super::direct::href(name, r.marks().shown()), name))
                    }
                }
            }
        }
    }
}

/// One entry of the rail.
fn rail_link(r: &RoomLink, current: &str, href: &str, name: &str) -> Markup {
    let here = r.code == current;
    let marks = if here {
        Marks {
            unread: 0,
            mentions: 0,
            ..r.marks()
        }
    } else {
        r.marks()
    };
    html! {
        li {
            a href=(href) aria-current=[here.then_some("page")]
                data-room-id=(r.id) data-seq=(r.last_seq) {
                span.rail-name { bdi { (name) } }
                (unread::badge(marks))
            }
        }
    }
}

/// Everything the room page shows.
pub struct RoomPage<'a> {
    /// The room, as read with its members.
    pub room: &'a Room,
    /// The header's account links (the viewer).
    pub nav: Nav<'a>,
    /// A CSRF token for the page's forms.
    pub csrf: &'a str,
    /// The members, by name.
    pub members: &'a [Member],
    /// Who of them is online.
    pub online: &'a std::collections::HashSet<i64>,
    /// The newest page of messages, already rendered.
    pub history: &'a NewestPage,
    /// The viewer's rooms, for the rail.
    pub rooms: &'a [RoomLink],
    /// The composer, fresh or after a refused post.
    pub composer: Markup,
    /// A notice for the status line.
    pub notice: Option<&'a str>,
    /// Whether the viewer created the room: they may delete anyone's messages.
    pub moderator: bool,
    /// The viewer's notification setting for the room (`notify_form`).
    pub notify: Markup,
    /// The first message the viewer had not read when the page was asked for: the "New
    /// messages" divider goes before it (`None`: nothing unread, no divider).
    pub first_unread: Option<i64>,
    /// For a direct conversation, the other person's username: the page is titled with it,
    /// shows no code or invitation, and offers "Close" instead of "Leave room".
    pub direct: Option<&'a str>,
}

impl RoomPage<'_> {
    /// The whole page. Its live socket resumes after the newest room event it shows.
    pub fn render(self) -> Markup {
        let v = self;
        let code = v.room.code.as_str();
        let online_count = v
            .members
            .iter()
            .filter(|m| v.online.contains(&m.user_id))
            .count();
        let counts = Counts {
            online: online_count,
            members: v.members.len(),
        };
        // This room is read up to the page's newest message as it opens; the title counts
        // the others.
        let elsewhere: i64 = v
            .rooms
            .iter()
            .filter(|r| r.code != code)
            .map(|r| r.marks().shown())
            .sum();
        let me = match v.nav {
            Nav::Member { user_id, .. } => user_id,
            _ => 0,
        };
        let content = html! {
            div.room.can-moderate[v.moderator] hx-ext="ws" ws-connect={ "/rooms/" (code) "/ws?after=" (v.history.cursor) }
                data-room=(code) data-me=(me) data-read=(v.history.last_seq) data-direct[v.direct.is_some()] {
                @if let Some(other) = v.direct {
                    (super::direct::header(other, v.csrf))
                } @else {
                    header.room-header {
                        (heading(&Heading::of(v.room), false))
                        @if v.moderator {
                            a.button.subtle.settings-link href={ "/rooms/" (code) "/settings" } { "Settings" }
                        }
                        form.leave-form method="post" action={ "/rooms/" (code) "/leave" } {
                            (csrf_field(v.csrf))
                            button.button.subtle type="submit" { "Leave room" }
                        }
                    }
                }
                div.room-body {
                    (rooms_rail(v.rooms, code))
                    section.conversation aria-label="Conversation" {
                        (room_status(v.notice.unwrap_or("")))
                        div.scroller {
                            div.history {
                                @if v.history.has_older {
                                    @if let Some(first) = v.history.first_seq { (older_link(code, first)) }
                                }
                                div #messages role="log" aria-live="polite" aria-label="Messages" {
                                    @let html = v.history.html.as_str();
                                    @match divider_at(v.history, v.first_unread) {
                                        Some(at) => {
                                            (PreEscaped(&html[..at])) (unread::divider()) (PreEscaped(&html[at..]))
                                        }
                                        None => (PreEscaped(html)),
                                    }
                                }
                                @if v.history.first_seq.is_none() {
                                    @if let Some(other) = v.direct {
                                        p.empty-hint { "No messages yet. Only you and " (other) " see this conversation." }
                                    } @else {
                                        p.empty-hint { "No messages yet. Say hello, then share the room code so others can join." }
                                    }
                                }
                                (cursor(v.history.cursor, false))
                                div #edit-sink hidden {}
                            }
                        }
                        (typing_placeholder())
                        (v.composer)
                        (typing_signal())
                        // Without JavaScript the conversation arrives live in a streamed
                        // document, and the composer posts in a frame of its own beside it.
                        // With it, none of this is parsed: no extra connection.
                        noscript {
                            link rel="stylesheet" href=(assets::url("no-js.css"));
                            iframe.live-frame src={ "/rooms/" (code) "/live" } title="Messages, live" {}
                            iframe.compose-frame src={ "/rooms/" (code) "/compose" } title="Write a message" {}
                        }
                    }
                    aside.members-panel aria-labelledby="members-title" {
                        details.members-details {
                            summary #members-title {
                                span.visually-hidden { "Members: " }
                                (member_summary(counts))
                            }
                            (member_list(v.members, |id| v.online.contains(&id)))
                            (v.notify)
                        }
                    }
                }
            }
        };
        Page {
            title: &unread::titled(elsewhere, v.direct.unwrap_or(v.room.display_name())),
            nav: v.nav,
            body_class: "page-room",
            content,
        }
        .render()
    }
}

/// Where in the page's messages (rendered once for every viewer, `NewestPage`) this viewer's
/// "New messages" divider goes: in front of `first_unread`'s article (below its day divider,
/// if it has one), or at the top when it is further back than the page. `None` when nothing
/// on the page is unread.
fn divider_at(history: &NewestPage, first_unread: Option<i64>) -> Option<usize> {
    let first = first_unread.filter(|seq| *seq <= history.last_seq)?;
    if history.first_seq.is_none_or(|oldest| first <= oldest) {
        return Some(0);
    }
    let html = history.html.as_str();
    let article = html.find(&format!(" id=\"msg-{first}\""))?;
    html[..article].rfind("<article")
}
