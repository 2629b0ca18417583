//! Messages: one `message` function renders a message for the room page, the older-messages
//! fragment and page, the page around a linked message, and the live frame alike. Each is
//! rendered once for everyone: nothing in it depends on who looks (own messages are marked by
//! `/me.css` through `data-author`); the room's code, in its link, is the same for all.

use maud::{Markup, html};

use super::times::time;
use crate::{
    domain::{
        mention::{Piece, pieces},
        without_bidi_controls,
    },
    files::{human_size, name::url_segment},
    store::{Action, Attachment, Attachments, Mentions, Message, MessagePage},
};

/// Messages per page of history.
pub const PAGE_SIZE: i64 = 50;

/// Consecutive messages of one person within this many milliseconds share one name line.
const GROUP_WINDOW_MS: i64 = 5 * 60 * 1000;

fn utc_day(ms: i64) -> Option<time::Date> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .map(|t| t.date())
}

/// Messages in order, each grouped under the previous one when the same person wrote it within
/// a few minutes, with a day divider wherever the (UTC) date changes. `previous` is the message
/// just before the first, if known; `code` is their room's.
pub fn message_items(code: &str, previous: Option<&Message>, messages: &[Message]) -> Markup {
    html! {
        @for (i, m) in messages.iter().enumerate() {
            @let prev = if i == 0 { previous } else { messages.get(i - 1) };
            @let new_day = prev.is_none_or(|p| utc_day(p.created_at) != utc_day(m.created_at));
            @let continued = !new_day && prev.is_some_and(|p| follows(p, m));
            @if new_day { (day_divider(m.created_at)) }
            (message(code, m, continued))
        }
    }
}

/// Whether `m` shares the name line of `p`, the message just before it: the same person, within
/// a few minutes, neither of them deleted.
fn follows(p: &Message, m: &Message) -> bool {
    !p.is_system()
        && !m.is_system()
        && p.user_id == m.user_id
        && !p.is_deleted()
        && !m.is_deleted()
        && m.created_at - p.created_at < GROUP_WINDOW_MS
}

fn day_divider(ms: i64) -> Markup {
    let Some(day) = utc_day(ms) else {
        return html! {};
    };
    let label = day
        .format(time::macros::format_description!(
            "[weekday repr:long], [day padding:none] [month repr:long] [year]"
        ))
        .unwrap_or_default();
    html! {
        div.day-divider role="separator" aria-label=(label) {
            time datetime=(day.to_string()) data-style="day" { (label) }
        }
    }
}

/// One message of room `code`. Rendered once and shared by every viewer: nothing in it
/// depends on who looks (own messages are marked by `/me.css` through `data-author`, which also
/// shows their "Edit" and "Delete"; the room's creator sees "Delete" on every message through
/// the page's `can-moderate` class).
///
/// Its time links to it from anywhere (`permalink`); "Copy link" copies that link with
/// JavaScript (`js/copy.js` adds it where the clipboard can be written).
pub fn message(code: &str, m: &Message, continued: bool) -> Markup {
    if m.is_system() {
        return super::settings::system_line(m);
    }
    html! {
        article.message.continued[continued] id={ "msg-" (m.seq) } data-seq=(m.seq) data-author=(m.user_id) {
            (message_content(code, m))
        }
    }
}

/// What is inside a message's `<article>`: all that an edit or a delete changes, so a change
/// replaces exactly this (`message_changed`) and the article keeps its place and grouping.
pub fn message_content(code: &str, m: &Message) -> Markup {
    let seq = m.seq;
    html! {
        header.message-meta {
            span.author { (m.author) }
            " "
            a.permalink href=(permalink(code, seq)) { (time(m.created_at, true)) }
            @if let (Some(edited), false) = (m.edited_at, m.is_deleted()) {
                " "
                span.edited tabindex="0" { "(edited" span.edited-at { ", " (time(edited, false)) } ")" }
            }
        }
        @if m.is_deleted() {
            p.message-body.message-deleted { "Message deleted" }
        } @else {
            @if !m.body.is_empty() {
                div.message-body dir="auto" { (linkify(&m.body, &m.mentions)) }
            }
            @if !m.attachments.is_empty() {
                (attachments(&m.attachments))
            }
        }
        div.message-actions {
            (super::direct::message_privately(m.user_id, &m.author))
            " "
            @if !m.is_deleted() {
                a.edit-link href={ "/rooms/" (code) "/messages/" (seq) "/edit" } { "Edit" }
                " "
                a.delete-link href={ "/rooms/" (code) "/messages/" (seq) "/delete" } { "Delete" }
            }
        }
    }
}

/// A message's files: images as their thumbnails (sized, so nothing jumps when they load),
/// linking to the full image; other files as a card with name, size and type that downloads.
/// Every name is escaped like any text; the links are natter's own (`/files/{token}/{name}`).
fn attachments(list: &Attachments) -> Markup {
    html! {
        ul.attachments {
            @for a in &list.0 {
                @let href = file_href(a);
                li {
                    @if let Some(image) = a.image {
                        a.attachment-image href=(href) {
                            img src={ (href) "?v=thumb" } alt=(a.name) loading="lazy"
                                width=(image.thumb_width) height=(image.thumb_height);
                        }
                    } @else {
                        a.file-card href=(href) download=(a.name) {
                            span.file-icon aria-hidden="true" { (file_badge(&a.mime)) }
                            span.file-text {
                                span.file-name dir="auto" { (a.name) }
                                span.file-meta { (human_size(a.size.max(0) as u64)) " · " (file_label(&a.mime)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Where a file is served: its token finds it, its name is there for people and for the
/// browser's "save as".
pub fn file_href(a: &Attachment) -> String {
    format!("/files/{}/{}", a.token, url_segment(&a.name))
}

/// A file's type in words, from its sniffed type.
fn file_label(mime: &str) -> &'static str {
    match mime {
        "image/png" => "PNG image",
        "image/jpeg" => "JPEG image",
        "image/gif" => "GIF image",
        "image/webp" => "WebP image",
        "application/pdf" => "PDF document",
        "application/zip" => "ZIP archive",
        "application/gzip" => "gzip archive",
        m if m.starts_with("text/plain") => "Text",
        _ => "File",
    }
}

/// The few letters on a file card's icon.
fn file_badge(mime: &str) -> &'static str {
    match mime {
        "application/pdf" => "PDF",
        "application/zip" | "application/gzip" => "ZIP",
        m if m.starts_with("text/") => "TXT",
        m if m.starts_with("image/") => "IMG",
        _ => "FILE",
    }
}

/// A message changed (edited or deleted) as a live frame: its content replaces the content of
/// `#msg-{seq}` where the page shows it, and the page's cursor moves to the change's seq
/// (`cursor`). A page that does not show the message (it is further back) swaps it into the
/// hidden `#edit-sink` instead: htmx reports an out-of-band swap without a target as an
/// error, and a socket does not know which messages its page shows.
pub fn message_changed(code: &str, m: &Message) -> Markup {
    html! {
        article id={ "msg-" (m.seq) } hx-swap-oob={ "innerHTML:#msg-" (m.seq) ",#edit-sink" } {
            (message_content(code, m))
        }
        (cursor(m.event, true))
    }
}

/// The newest room event the page shows: where its live socket resumes. The newest message's
/// `data-seq` says it too until a message is edited or deleted (a change takes a seq of its own
/// but adds no message); `js/live.js` resumes after the larger of the two.
pub fn cursor(seq: i64, oob: bool) -> Markup {
    html! { data #room-cursor value=(seq) hx-swap-oob=[oob.then_some("true")] {} }
}

/// Events read from the store as one live frame: new messages appended in order, changed
/// ones in place (a socket's replay and gap fill).
pub fn events_frame(code: &str, events: &[Message]) -> String {
    if !events.iter().any(Message::is_change) {
        return messages_append(code, None, events).into_string();
    }
    let mut appended: Vec<Message> = Vec::new();
    let mut frame = String::new();
    for m in events {
        if m.is_change() {
            frame.push_str(&message_changed(code, m).into_string());
        } else {
            appended.push(m.clone());
        }
    }
    if !appended.is_empty() {
        let append = messages_append(code, None, &appended).into_string();
        frame.insert_str(0, &append);
    }
    frame
}

/// The link to message `seq` of room `code`, for any page and anyone (`web::room::message`
/// finds the page it is on). It carries `#msg-{seq}`, so whichever page answers, the browser
/// scrolls to the message and highlights it (`:target`), without JavaScript.
pub fn permalink(code: &str, seq: i64) -> String {
    format!("/rooms/{code}/messages/{seq}#msg-{seq}")
}

/// Text with its http(s) URLs as links and its mentions marked. Everything is escaped by
/// maud; only the two URL schemes become links, so `javascript:` stays text. A link's text is
/// isolated (`<bdi>`) and shown without direction controls, so it reads in the order it is
/// typed and cannot reorder its neighbours: `https://x.org/\u{202E}fdp.exe` shows as
/// `…/fdp.exe`, not `…/exe.pdf`.
///
/// A mention (`domain::mention`) of someone the message mentions (`mentions`, as stored when
/// it was posted) is `<span class="mention" data-user="{id}">@name</span>`, as typed, the same
/// for every viewer; `/me.css` accents the viewer's own. Other `@name`s stay text.
fn linkify(text: &str, mentions: &Mentions) -> Markup {
    html! {
        @for piece in pieces(text) {
            @match piece {
                Piece::Url(url) => {
                    a href=(url) rel="noopener nofollow ugc" target="_blank" { bdi { (without_bidi_controls(url)) } }
                }
                Piece::Mention { text, name } => {
                    @if let Some(id) = mentions.user(name) {
                        span.mention data-user=(id) { (text) }
                    } @else { (text) }
                }
                Piece::Text(text) => (text),
            }
        }
    }
}

/// Messages appended live: the frame the hub renders once per message and sends to every
/// socket, and what a socket replays from the store.
///
/// A frame with system lines also brings the page's heading up to date, as the newest of them
/// left it (out of band: `settings::heading`).
pub fn messages_append(code: &str, previous: Option<&Message>, messages: &[Message]) -> Markup {
    let heading = messages
        .iter()
        .rev()
        .find_map(Action::of)
        .map(|action| action.heading);
    html! {
        div #messages hx-swap-oob="beforeend" { (message_items(code, previous, messages)) }
        @if let Some(heading) = heading { (super::settings::heading(&heading, true)) }
    }
}

/// The "Load older messages" link above the oldest message shown: a link without JS, and
/// with htmx the request that replaces it with the next link and prepends the messages.
pub fn older_link(code: &str, before: i64) -> Markup {
    let href = format!("/rooms/{code}/messages?before={before}");
    html! {
        a #load-older.load-older href=(href) hx-get=(href) hx-target="this" hx-swap="outerHTML" {
            "Load older messages"
        }
    }
}

/// The answer to htmx's "Load older messages": the next link (if there is more), and the
/// messages prepended to `#messages` out of band.
pub fn older_fragment(code: &str, messages: &[Message], has_older: bool) -> Markup {
    html! {
        @if has_older { @if let Some(first) = messages.first() { (older_link(code, first.seq)) } }
        div #messages hx-swap-oob="afterbegin" { (message_items(code, None, messages)) }
    }
}

/// A page of history without JavaScript: older messages, or those around a linked one. Links
/// lead back, further back and forward; forward ends in the room itself, at the next message,
/// once that is on the room's newest page (whose first message is `newest_first`).
pub fn history(
    code: &str,
    room_name: &str,
    page: &MessagePage,
    newest_first: Option<i64>,
) -> Markup {
    let messages = &page.messages;
    html! {
        section.card.history-page aria-labelledby="history-title" {
            h1 #history-title { "Earlier in " bdi { (room_name) } }
            p { a href={ "/rooms/" (code) } { "Back to the latest messages" } }
            @if page.has_older { @if let Some(first) = messages.first() {
                p { a href={ "/rooms/" (code) "/messages?before=" (first.seq) } { "Load older messages" } }
            } }
            div.messages-static { (message_items(code, None, messages)) }
            @if messages.is_empty() { p.muted { "Nothing earlier." } }
            @if let Some(last) = messages.last() {
                p { a href=(newer_href(code, last.seq, newest_first)) { "Newer messages" } }
            }
        }
    }
}

/// Where "Newer messages" after message `last` leads: the next page of history, or the room
/// at the next message once that is on its newest page.
fn newer_href(code: &str, last: i64, newest_first: Option<i64>) -> String {
    let next = last + 1;
    if newest_first.is_none_or(|first| next >= first) {
        format!("/rooms/{code}#msg-{next}")
    } else {
        format!("/rooms/{code}/messages?before={}", last + PAGE_SIZE + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: i64, user_id: i64, at: i64, body: &str) -> Message {
        Message {
            room_id: 1,
            seq,
            user_id,
            author: format!("u{user_id}"),
            body: body.into(),
            created_at: at,
            edited_at: None,
            deleted_at: None,
            event: seq,
            action: None,
            mentions: Mentions::default(),
            attachments: Default::default(),
        }
    }

    #[test]
    fn hostile_text_is_escaped_everywhere() {
        for body in [
            "<script>alert(1)</script>",
            "\"><img src=x onerror=alert(1)>",
            "<div hx-swap-oob=\"true\" id=\"messages\">x</div>",
        ] {
            let html = message("ABCD-EFGH", &msg(1, 1, 0, body), false).into_string();
            assert!(
                !html.contains("<script>")
                    && !html.contains("<img")
                    && !html.contains("<div hx-swap-oob"),
                "{html}"
            );
        }
    }

    #[test]
    fn only_http_urls_become_links() {
        let html = linkify(
            "see https://example.org/a?b=1&c=<2>, or javascript:alert(1) and http://x.org.",
            &Mentions::default(),
        )
        .into_string();
        assert!(html.contains(r#"<a href="https://example.org/a?b=1&amp;c=" rel="noopener nofollow ugc" target="_blank">"#), "{html}");
        assert!(html.contains(r#"<a href="http://x.org" rel"#), "{html}");
        assert!(
            html.contains(r#"target="_blank"><bdi>http://x.org</bdi></a>."#),
            "{html}"
        );
        assert!(!html.contains("href=\"javascript"), "{html}");
        assert_eq!(
            linkify("http:// nothing", &Mentions::default()).into_string(),
            "http:// nothing"
        );
    }

    #[test]
    fn link_text_reads_as_typed_and_cannot_reorder_its_neighbours() {
        let html = linkify(
            "get https://x.org/\u{202e}fdp.exe now\u{200f}",
            &Mentions::default(),
        )
        .into_string();
        assert_eq!(
            html,
            "get <a href=\"https://x.org/\u{202e}fdp.exe\" rel=\"noopener nofollow ugc\" \
             target=\"_blank\"><bdi>https://x.org/fdp.exe</bdi></a> now\u{200f}"
        );
    }

    #[test]
    fn mentions_of_mentioned_members_are_marked_and_nothing_else() {
        let mentions = Mentions(vec![(7, "ada".into()), (9, "Bob.b".into())]);
        let html = linkify(
            "@ADA, x@ada.org @carol https://x.org/@ada @bob.b. <b>@ada</b>",
            &mentions,
        )
        .into_string();
        assert_eq!(
            html,
            "<span class=\"mention\" data-user=\"7\">@ADA</span>, x@ada.org @carol \
             <a href=\"https://x.org/@ada\" rel=\"noopener nofollow ugc\" target=\"_blank\">\
             <bdi>https://x.org/@ada</bdi></a> <span class=\"mention\" data-user=\"9\">@bob.b</span>. \
             &lt;b&gt;<span class=\"mention\" data-user=\"7\">@ada</span>&lt;/b&gt;"
        );
    }

    #[test]
    fn a_message_links_to_its_own_page_in_every_rendering() {
        let html = message("ABCD-EFGH", &msg(7, 1, 0, "hi"), true).into_string();
        assert!(
            html.contains(r##"href="/rooms/ABCD-EFGH/messages/7#msg-7""##),
            "{html}"
        );
        let frame = messages_append("ABCD-EFGH", None, &[msg(8, 1, 0, "hi")]).into_string();
        assert!(
            frame.contains("/rooms/ABCD-EFGH/messages/8#msg-8"),
            "{frame}"
        );
    }

    #[test]
    fn newer_leads_forward_until_the_newest_page_then_into_the_room() {
        let code = "ABCD-EFGH";
        assert_eq!(
            newer_href(code, 100, Some(500)),
            "/rooms/ABCD-EFGH/messages?before=151"
        );
        assert_eq!(newer_href(code, 499, Some(500)), "/rooms/ABCD-EFGH#msg-500");
        assert_eq!(newer_href(code, 600, Some(500)), "/rooms/ABCD-EFGH#msg-601");
    }

    #[test]
    fn consecutive_messages_group_and_days_divide() {
        let day = 86_400_000;
        let items = message_items(
            "ABCD-EFGH",
            None,
            &[
                msg(1, 1, 0, "a"),
                msg(2, 1, 1000, "b"),
                msg(3, 2, 2000, "c"),
                msg(4, 2, day, "d"),
            ],
        )
        .into_string();
        assert_eq!(items.matches("day-divider").count(), 2, "{items}");
        assert_eq!(items.matches("message continued").count(), 1, "{items}");
    }
}
