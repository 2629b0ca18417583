//! The one layout every page shares, and the small form pieces used across pages.

use maud::{DOCTYPE, Markup, html};

use crate::{assets, domain::without_bidi_controls};

/// htmx settings (DESIGN.md §8, §10): no eval and no injected styles (the CSP forbids both), no
/// script tags from swapped content, and 409/422/429 answers swapped so the composer (and an
/// inline edit) can show why a post was refused with the typed text kept.
const HTMX_CONFIG: &str = r#"{"allowEval":false,"allowScriptTags":false,"includeIndicatorStyles":false,"historyCacheSize":0,"responseHandling":[{"code":"204","swap":false},{"code":"[23]..","swap":true},{"code":"409","swap":true,"error":false},{"code":"413","swap":true,"error":false},{"code":"422","swap":true,"error":false},{"code":"429","swap":true,"error":false},{"code":"[45]..","swap":false,"error":true}]}"#;

/// Who the page is for, as far as the header is concerned.
pub enum Nav<'a> {
    /// Signed out: no account links.
    Guest,
    /// Signed in without a username yet: only "sign out".
    Newcomer {
        /// A CSRF token for the sign-out form.
        csrf: &'a str,
    },
    /// Signed in.
    Member {
        /// Their username.
        username: &'a str,
        /// Their id (for `/me.css`).
        user_id: i64,
        /// A CSRF token for the sign-out form.
        csrf: &'a str,
    },
}

/// A whole page.
pub struct Page<'a> {
    /// The page title (before " · natter").
    pub title: &'a str,
    /// The header's account links.
    pub nav: Nav<'a>,
    /// A class on `<body>` for page-specific layout (e.g. the full-height room).
    pub body_class: &'a str,
    /// The page's main content.
    pub content: Markup,
}

impl Page<'_> {
    /// The whole document.
    pub fn render(self) -> Markup {
        let csrf = match &self.nav {
            Nav::Guest => None,
            Nav::Newcomer { csrf } | Nav::Member { csrf, .. } => Some(*csrf),
        };
        // htmx sends this header with every request it makes; JSON, not code (no eval).
        let hx_headers = csrf.map(|c| format!(r#"{{"X-CSRF-Token":"{c}"}}"#));
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    meta name="color-scheme" content="light dark";
                    // Plain text, where no `<bdi>` can isolate a room's name: names refuse
                    // direction controls, but one stored before they did must not reverse
                    // " · natter".
                    title { (without_bidi_controls(self.title)) " · natter" }
                    link rel="stylesheet" href=(assets::url("natter.css"));
                    @if let Nav::Member { user_id, .. } = &self.nav {
                        // Marks the viewer's own messages without rendering them per viewer.
                        link rel="stylesheet" href={ "/me.css?u=" (user_id) "&v=" (super::account::ME_CSS_REVISION) };
                    }
                    link rel="icon" type="image/svg+xml" href=(assets::url("icon.svg"));
                    meta name="htmx-config" content=(HTMX_CONFIG);
                    // Deferred scripts and modules run in this order once the page is parsed,
                    // before DOMContentLoaded (when htmx connects): js/live.js can replace
                    // htmx.createWebSocket before the first connection.
                    script src=(assets::url("htmx.min.js")) defer {}
                    script src=(assets::url("ws.min.js")) defer {}
                    script src=(assets::url("sse.min.js")) defer {}
                    @for module in assets::modules() {
                        script type="module" src=(module) {}
                    }
                }
                body class=(self.body_class) hx-headers=[hx_headers] {
                    // Text browsers (w3m, lynx) ignore CSS: the skip link is a line of its own
                    // (the block is empty on screen, its link positioned away), and the logo's
                    // letter is drawn by natter.css, so the header reads "natter", not "nnatter".
                    div { a.skip-link href="#main" { "Skip to content" } }
                    header.site-header {
                        a.brand href="/" {
                            span.brand-mark aria-hidden="true" {}
                            span.brand-name { "natter" }
                        }
                        @if let Nav::Member { .. } = &self.nav { (super::search::header_box("")) }
                        (nav(&self.nav))
                    }
                    main #main tabindex="-1" { (self.content) }
                }
            }
        }
    }
}

/// The account links, as a list: a text browser shows one per line instead of running them
/// into one word ("RoomsProfile of adaSign out").
fn nav(nav: &Nav) -> Markup {
    match nav {
        Nav::Guest => html! {},
        Nav::Newcomer { csrf } => html! {
            nav.site-nav aria-label="Account" {
                ul { li { (sign_out_button(csrf)) } }
            }
        },
        Nav::Member { username, csrf, .. } => html! {
            nav.site-nav aria-label="Account" {
                ul {
                    li { a href="/home" { "Rooms" } }
                    li { a href="/profile" { span.visually-hidden { "Profile of " } (username) } }
                    li { (sign_out_button(csrf)) }
                }
            }
        },
    }
}

fn sign_out_button(csrf: &str) -> Markup {
    html! {
        form.inline-form method="post" action="/auth/logout" {
            input type="hidden" name="csrf" value=(csrf);
            button.link-button type="submit" { "Sign out" }
        }
    }
}

/// A separator only text browsers show (" · "), between pieces that natter.css lays out apart
/// but that would otherwise run into one word without CSS: hidden on screen (positioned away,
/// so flex and grid layouts do not see it) and from screen readers.
pub fn text_separator() -> Markup {
    html! { span.visually-hidden aria-hidden="true" { " · " } }
}

/// A hidden CSRF field.
pub fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

/// A field's error message, tied to the field by id (`aria-describedby`).
pub fn field_error(id: &str, error: Option<&str>) -> Markup {
    html! {
        @if let Some(error) = error {
            p.field-error id=(id) role="alert" { (error) }
        }
    }
}
