//! The profile's notification panel: desktop notifications and Web Push on this browser (the
//! button is added by `js/notify.js`: without JavaScript there is nothing to turn on), and
//! "do not disturb until" (a plain form).

use maud::{Markup, html};

use super::{
    layout::{csrf_field, field_error},
    times::time,
};

/// How long "do not disturb" lasts, as the form offers it: the value posted, the label, and
/// the duration in minutes (0: off).
pub const DND_CHOICES: [(&str, &str, i64); 6] = [
    ("off", "Off", 0),
    ("1h", "For 1 hour", 60),
    ("4h", "For 4 hours", 4 * 60),
    ("8h", "For 8 hours", 8 * 60),
    ("24h", "For 24 hours", 24 * 60),
    ("1w", "For a week", 7 * 24 * 60),
];

/// What the panel shows.
pub struct PushPanel<'a> {
    /// The server's VAPID public key (base64url), for `PushManager.subscribe`.
    pub vapid_key: &'a str,
    /// Whether this browser's session has a push subscription.
    pub subscribed: bool,
    /// "Do not disturb" until then (Unix ms), when it is still on.
    pub dnd_until: Option<i64>,
    /// Why a "do not disturb" choice was refused, if one was.
    pub error: Option<&'a str>,
}

/// The panel: this browser's notifications, and "do not disturb until".
pub fn panel(csrf: &str, p: &PushPanel) -> Markup {
    html! {
        section.card #notifications aria-labelledby="push-title" {
            h2 #push-title { "Notifications on this browser" }
            p.help #push-help {
                "natter can tell you about mentions and direct messages (and every message in rooms set to "
                "“All messages”) when its tab is hidden or closed. Turning this on asks your browser for permission."
            }
            // js/notify.js puts its button and status here; without JavaScript the sentence says why
            // there is none.
            div #push-controls data-vapid-key=(p.vapid_key) data-subscribed=(p.subscribed) {
                p.push-status.muted role="status" {
                    "Desktop notifications need JavaScript."
                }
            }
            form.dnd-form method="post" action="/profile/dnd" {
                (csrf_field(csrf))
                p #dnd-state {
                    @if let Some(until) = p.dnd_until {
                        "Do not disturb is on until " (time(until, false)) "."
                    } @else {
                        "Do not disturb is off."
                    }
                }
                label for="dnd" { "Do not disturb" }
                " "
                select #dnd name="dnd" aria-describedby={ "dnd-state" @if p.error.is_some() { " dnd-error" } }
                    aria-invalid=[p.error.map(|_| "true")] {
                    @for (value, label, _) in DND_CHOICES {
                        option value=(value) selected[value == "off" && p.dnd_until.is_none()] { (label) }
                    }
                }
                (field_error("dnd-error", p.error))
                " "
                button.button type="submit" { "Save" }
            }
        }
    }
}
