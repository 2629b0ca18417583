//! The error page: what went wrong in words, the request id people can quote, and (when
//! natter could not handle a posted form) what was typed, ready to send again.

use maud::{Markup, html};

use super::layout::{Nav, Page};

/// A posted form, echoed back when it could not be handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormEcho {
    /// Where it was posted.
    pub action: String,
    /// Its fields as posted (with a fresh CSRF token), in order.
    pub fields: Vec<(String, String)>,
}

/// The error page itself; with `echo`, the refused form again, ready to resend.
pub fn error_page(title: &str, message: &str, id: &str, echo: Option<&FormEcho>) -> Markup {
    Page {
        title,
        nav: Nav::Guest,
        body_class: "page-narrow",
        content: html! {
            section.card.error-card aria-labelledby="error-title" {
                h1 #error-title { (title) }
                p { (message) }
                @if let Some(echo) = echo {
                    (resend_form(echo))
                }
                p { a.button href="/" { "Go to natter's start page" } }
                p.muted.small { "Request id: " code { (id) } }
            }
        },
    }
    .render()
}

/// What was typed, back in a form that posts it again (its CSRF token included, so it works
/// once the database is back). Free text is editable; other fields ride along hidden.
fn resend_form(echo: &FormEcho) -> Markup {
    let visible = |name: &str| matches!(name, "body" | "name" | "code" | "username" | "email");
    html! {
        form.resend method="post" action=(echo.action) {
            p { strong { "Nothing was saved." } " Here is what you sent; send it again in a moment." }
            @for (name, value) in &echo.fields {
                @if visible(name) {
                    label for={ "resend-" (name) } { (name) }
                    textarea id={ "resend-" (name) } name=(name) rows="3" { (value) }
                } @else {
                    input type="hidden" name=(name) value=(value);
                }
            }
            button.button.primary type="submit" { "Send again" }
        }
    }
}
