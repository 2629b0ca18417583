//! The one layout every page shares, and small pieces used across pages.

use maud::{DOCTYPE, Markup, html};
use poem::{
    Response,
    http::{StatusCode, header},
};

use super::assets;

/// htmx settings (DESIGN.md §8, §10): no eval and no injected styles (the CSP forbids both), no
/// script tags from swapped content, and 422/429 answers swapped so the composer can show why a
/// post was refused with the typed text kept.
const HTMX_CONFIG: &str = r#"{"allowEval":false,"allowScriptTags":false,"includeIndicatorStyles":false,"historyCacheSize":0,"responseHandling":[{"code":"204","swap":false},{"code":"[23]..","swap":true},{"code":"422","swap":true,"error":false},{"code":"429","swap":true,"error":false},{"code":"[45]..","swap":false,"error":true}]}"#;

/// Who the page is for, as far as the header is concerned.
pub enum Nav<'a> {
    /// Signed out: no account links.
    Guest,
    /// Signed in without a username yet: only "sign out".
    Newcomer { csrf: &'a str },
    /// Signed in.
    Member {
        username: &'a str,
        user_id: i64,
        csrf: &'a str,
    },
}

/// A whole page.
pub struct Page<'a> {
    pub title: &'a str,
    pub nav: Nav<'a>,
    /// A class on `<body>` for page-specific layout (e.g. the full-height room).
    pub body_class: &'a str,
    pub content: Markup,
}

impl Page<'_> {
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
                    title { (self.title) " · natter" }
                    link rel="stylesheet" href=(assets::url("natter.css"));
                    @if let Nav::Member { user_id, .. } = &self.nav {
                        // Marks the viewer's own messages without rendering them per viewer.
                        link rel="stylesheet" href={ "/me.css?u=" (user_id) };
                    }
                    link rel="icon" type="image/svg+xml" href=(assets::url("icon.svg"));
                    meta name="htmx-config" content=(HTMX_CONFIG);
                    script src=(assets::url("htmx.min.js")) defer {}
                    script src=(assets::url("ws.min.js")) defer {}
                    script src=(assets::url("natter.js")) defer {}
                }
                body class=(self.body_class) hx-headers=[hx_headers] {
                    a.skip-link href="#main" { "Skip to content" }
                    header.site-header {
                        a.brand href="/" {
                            span.brand-mark aria-hidden="true" { "n" }
                            span.brand-name { "natter" }
                        }
                        (nav(&self.nav))
                    }
                    main #main tabindex="-1" { (self.content) }
                }
            }
        }
    }
}

fn nav(nav: &Nav) -> Markup {
    match nav {
        Nav::Guest => html! {},
        Nav::Newcomer { csrf } => html! {
            nav.site-nav aria-label="Account" {
                (sign_out_button(csrf))
            }
        },
        Nav::Member { username, csrf, .. } => html! {
            nav.site-nav aria-label="Account" {
                a href="/home" { "Rooms" }
                a href="/profile" { span.visually-hidden { "Profile of " } (username) }
                (sign_out_button(csrf))
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

/// A complete HTML response.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(markup.into_string())
}

/// `303 See Other` to `location` (after a successful form post), or for htmx an `HX-Redirect`
/// (a plain redirect would be followed by the XHR and swapped into the target).
pub fn see_other(location: &str, htmx: bool) -> Response {
    if htmx {
        Response::builder()
            .status(StatusCode::OK)
            .header("HX-Redirect", location)
            .finish()
    } else {
        Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(header::LOCATION, location)
            .finish()
    }
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

/// `<time>` with the UTC instant for machines (and natter.js, which shows it in local time) and
/// a readable UTC fallback for people without JavaScript.
pub fn time(ms: i64, short: bool) -> Markup {
    use std::fmt::Write;
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return html! {};
    };
    // Written by hand: a room page has fifty of these, and `time`'s formatter interprets its
    // format descriptions at run time.
    let (y, mo, d) = (at.year(), u8::from(at.month()), at.day());
    let (h, mi, sec, milli) = (at.hour(), at.minute(), at.second(), at.millisecond());
    let mut iso = String::with_capacity(24);
    let _ = write!(
        iso,
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}.{milli:03}Z"
    );
    const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let weekday = WEEKDAYS[usize::from(at.weekday().number_days_from_monday())];
    let month = MONTHS[usize::from(mo - 1)];
    let mut full = String::with_capacity(28);
    let _ = write!(full, "{weekday} {d} {month} {y}, {h:02}:{mi:02} UTC");
    let mut hm = String::with_capacity(5);
    let _ = write!(hm, "{h:02}:{mi:02}");
    let shown = if short { &hm } else { &full };
    html! { time datetime=(iso) title=(full) data-style=(if short { "short" } else { "long" }) { (shown) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_machine_readable_and_short_for_people() {
        // 2026-11-25 06:47:03.214 UTC, a Wednesday.
        let ms = 1_795_589_223_214;
        let short = time(ms, true).into_string();
        assert_eq!(
            short,
            r#"<time datetime="2026-11-25T06:47:03.214Z" title="Wed 25 Nov 2026, 06:47 UTC" data-style="short">06:47</time>"#
        );
        assert!(
            time(ms, false)
                .into_string()
                .ends_with(">Wed 25 Nov 2026, 06:47 UTC</time>")
        );
        assert_eq!(time(i64::MAX, true).into_string(), "");
    }
}
