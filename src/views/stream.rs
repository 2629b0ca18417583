//! The room for browsers without JavaScript: the conversation as one streamed document (an
//! `<iframe>` on the room page, `/rooms/{code}/live`) and a small composer frame beside it
//! (`/rooms/{code}/compose`). The stream is written in pieces that are each complete
//! elements: its head and newest page, then the live frames exactly as sockets get them
//! (`no-js.css` lays them out), then one of the endings below.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::{
    layout::csrf_field,
    messages::{cursor, older_link},
    page_cache::NewestPage,
};
use crate::{assets, domain::without_bidi_controls, store::Room};

/// The head of a frame's document: links in it open in the whole tab, not in the frame.
fn frame_head(title: &str, me: i64, refresh: Option<(u32, &str)>) -> Markup {
    html! {
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        meta name="color-scheme" content="light dark";
        title { (without_bidi_controls(title)) " · natter" }
        base target="_top";
        link rel="stylesheet" href=(assets::url("natter.css"));
        link rel="stylesheet" href=(assets::url("no-js.css"));
        link rel="stylesheet" href={ "/me.css?u=" (me) "&v=" (super::account::ME_CSS_REVISION) };
        link rel="icon" type="image/svg+xml" href=(assets::url("icon.svg"));
        @if let Some((secs, url)) = refresh {
            // Fires once the document has ended (natter closed the stream, or the connection
            // broke), `secs` after: the frame reloads itself and the stream goes on.
            meta http-equiv="refresh" content={ (secs) "; url=" (url) };
        }
    }
}

/// Where a stream that showed everything up to `cursor` reloads to.
pub fn resume_url(code: &str, cursor: i64) -> String {
    format!("/rooms/{code}/live?after={cursor}")
}

/// The stream's beginning, around the newest page's messages (`page.html`, shared, not copied
/// into every stream): what comes before them and what comes after, the log left open for what
/// comes live. `missed` says the reader was last shown `after`, and more came since than the
/// page holds.
pub fn stream_start(room: &Room, me: i64, page: &NewestPage, missed: bool) -> (String, String) {
    /// Where the page's messages go: a character no rendered markup contains.
    const MESSAGES: &str = "\u{0}";
    let code = room.code.as_str();
    let refresh = resume_url(code, page.cursor);
    let start = html! {
        (DOCTYPE)
        html lang="en" {
            head { (frame_head(room.display_name(), me, Some((0, &refresh)))) }
            // The body scrolls bottom-up (`no-js.css`), so the frame opens at the newest
            // message and stays there while a reader at the bottom watches new ones arrive.
            body.page-frame.page-stream {
                main.stream {
                    @if page.has_older {
                        @if let Some(first) = page.first_seq { (older_link(code, first)) }
                    }
                    @if missed {
                        p.stream-notice role="status" { "More was posted while this was away than fits here: see older messages above." }
                    }
                    div #log.stream-log role="log" aria-live="polite" aria-label="Messages" {
                        @if page.first_seq.is_none() {
                            p.empty-hint { "No messages yet. Say hello, then share the room code so others can join." }
                        }
                        (PreEscaped(MESSAGES))
                        (cursor(page.cursor, false))
                    }
                }
            }
        }
    };
    // maud closes every element; the log stays open for the live frames.
    let mut html = start.into_string();
    let open = html.rfind("</div></main></body>").unwrap_or(html.len());
    html.truncate(open);
    let (before, after) = html.split_once(MESSAGES).unwrap_or((&html, ""));
    (before.to_string(), after.to_string())
}

/// The end of a stream the browser should reload (the refresh in its head then fires).
pub const STREAM_END: &str = "</div></main></body></html>\n";

/// The end of a stream whose reader can no longer see the room: why, and where to go, with
/// nothing that reloads it again.
pub fn stream_ended(why: Ended) -> String {
    let notice = match why {
        Ended::SignedOut => html! {
            p.stream-notice role="status" { "You signed out. " a href="/" { "Sign in again" } }
        },
        Ended::Left => html! {
            p.stream-notice role="status" { "You are no longer in this room. " a href="/home" { "Your rooms" } }
        },
        Ended::Removed => html! {
            p.stream-notice role="status" { "You were removed from this room. " a href="/home" { "Your rooms" } }
        },
    };
    format!("</div>{}</main></body></html>\n", notice.into_string())
}

/// Why a reader's stream ended for good.
#[derive(Debug, Clone, Copy)]
pub enum Ended {
    /// Their session ended.
    SignedOut,
    /// They left the room.
    Left,
    /// The room's owner removed them.
    Removed,
}

/// A frame's whole document when no stream is opened: a notice with a way on, and, for a
/// reader over their stream limit, the newest page as it is now (`snapshot`).
pub fn frame_notice(
    title: &str,
    me: i64,
    text: &str,
    link: (&str, &str),
    snapshot: Option<&NewestPage>,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (frame_head(title, me, None)) }
            body.page-frame.page-stream {
                main.stream {
                    @if let Some(page) = snapshot {
                        div.stream-log role="log" aria-label="Messages" { (PreEscaped(&page.html)) }
                    }
                    p.stream-notice role="status" {
                        (text) " "
                        // A refresh link reloads the frame itself; others open in the tab.
                        @if link.0.contains("/live") {
                            a href=(link.0) target="_self" { (link.1) }
                        } @else {
                            a href=(link.0) { (link.1) }
                        }
                    }
                }
            }
        }
    }
}

/// The frame's document while natter shuts down: it tries again by itself in 2 s (behind a
/// proxy, another instance or this one restarted answers).
pub fn restarting(url: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (frame_head("Messages", 0, Some((2, url)))) }
            body.page-frame.page-stream {
                main.stream {
                    p.stream-notice role="status" { "natter is restarting: this reconnects by itself." }
                }
            }
        }
    }
}

/// The composer frame: a form that posts to itself and comes back empty (303), or with the
/// typed text and why it was refused.
pub fn compose_frame(
    code: &str,
    me: i64,
    csrf: &str,
    body: &str,
    error: Option<&str>,
    client_id: &str,
) -> Markup {
    let action = format!("/rooms/{code}/compose");
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (frame_head("Write a message", me, None)) }
            body.page-frame.page-compose {
                main { form.composer method="post" action=(action) target="_self" enctype="multipart/form-data" {
                    (csrf_field(csrf))
                    label.visually-hidden for="composer-body" { "Message" }
                    textarea #composer-body name="body" rows="1"
                        maxlength=(crate::domain::MessageBody::MAX)
                        placeholder="Write a message" autocomplete="off" autofocus[error.is_some()]
                        aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| "composer-error")]
                        { (body) }
                    (super::room::file_picker(None))
                    button.button.primary.send type="submit" { "Send" }
                    input type="hidden" name="client_id" value=(client_id);
                    @if let Some(error) = error {
                        p #composer-error.field-error role="alert" { (error) }
                    }
                } }
            }
        }
    }
}
