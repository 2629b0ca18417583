//! Editing and deleting a message: the pages that work without JavaScript (an edit form, a
//! confirmation), and the inline edit form htmx swaps into the message itself.

use maud::{Markup, html};

use super::{
    layout::{Nav, Page, csrf_field, field_error},
    messages::{message, permalink},
};
use crate::{domain::MessageBody, store::Message};

/// Where an edit of message `seq` of room `code` is posted (and its form page lives).
fn edit_action(code: &str, seq: i64) -> String {
    format!("/rooms/{code}/messages/{seq}/edit")
}

/// A page about one message (editing it, deleting it): its heading, the message as it is,
/// then `rest` (the form).
fn change_page(nav: Nav, title: &str, code: &str, m: &Message, rest: Markup) -> Markup {
    let content = html! {
        section.card.change-page aria-labelledby="change-title" {
            h1 #change-title { (title) }
            div.messages-static { (message(code, m, false)) }
            (rest)
        }
    };
    Page {
        title,
        nav,
        body_class: "page-narrow",
        content,
    }
    .render()
}

/// The edit page: the message as it is, and a form with its text (or the text typed before a
/// refusal, and why).
pub fn edit_page(
    nav: Nav,
    csrf: &str,
    code: &str,
    m: &Message,
    text: &str,
    error: Option<&str>,
) -> Markup {
    let form = html! {
        form method="post" action=(edit_action(code, m.seq)) {
            (csrf_field(csrf))
            label for="edit-body" { "Message" }
            textarea #edit-body name="body" rows="4" maxlength=(MessageBody::MAX) required
                aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| "edit-error")]
                { (text) }
            (field_error("edit-error", error))
            div.form-actions {
                button.button.primary type="submit" { "Save" }
                " "
                a.button.subtle href=(permalink(code, m.seq)) { "Cancel" }
            }
        }
    };
    change_page(nav, "Edit your message", code, m, form)
}

/// The form htmx swaps into the message in place of its content (JavaScript on): saving
/// answers the message's new content, Escape or "Cancel" (`js/edit.js`) puts the old one back.
pub fn inline_edit(code: &str, m: &Message, text: &str, error: Option<&str>) -> Markup {
    let action = edit_action(code, m.seq);
    let target = format!("#msg-{}", m.seq);
    let field = format!("edit-body-{}", m.seq);
    let error_id = format!("edit-error-{}", m.seq);
    html! {
        form.inline-edit method="post" action=(action) hx-post=(action) hx-target=(target) hx-swap="innerHTML" {
            label.visually-hidden for=(field) { "Edit message" }
            textarea id=(field) name="body" rows="2" maxlength=(MessageBody::MAX) required
                aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| error_id.as_str())]
                { (text) }
            (field_error(&error_id, error))
            div.form-actions {
                button.button.small.primary type="submit" { "Save" }
                a.button.small.subtle.edit-cancel href=(permalink(code, m.seq)) { "Cancel" }
                span.muted.edit-hint { "Enter to save · Esc to cancel" }
            }
        }
    }
}

/// The confirmation before deleting a message (with or without JavaScript).
pub fn delete_page(nav: Nav, csrf: &str, code: &str, m: &Message, own: bool) -> Markup {
    let action = format!("/rooms/{code}/messages/{}/delete", m.seq);
    let form = html! {
        p {
            @if own { "Its text is removed for everyone in the room" }
            @else { "You created this room, so you can delete anyone's message. Its text is removed for everyone" }
            ", and \u{201c}Message deleted\u{201d} is shown in its place. This cannot be undone."
        }
        form method="post" action=(action) {
            (csrf_field(csrf))
            div.form-actions {
                button.button.danger type="submit" { "Delete message" }
                " "
                a.button.subtle href=(permalink(code, m.seq)) { "Cancel" }
            }
        }
    };
    change_page(nav, "Delete this message?", code, m, form)
}
