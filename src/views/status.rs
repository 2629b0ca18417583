//! The room's status line: connection state, and the notices the live socket sends.

use maud::{Markup, html};

/// The live-status line (connection state and notices).
pub fn room_status(text: &str) -> Markup {
    html! { p #room-status.room-status role="status" aria-live="polite" { (text) } }
}

/// The status line as a live frame's element, replacing the page's.
pub fn room_status_oob(text: &str) -> Markup {
    html! { p #room-status.room-status role="status" aria-live="polite" hx-swap-oob="true" { (text) } }
}

/// The notice a socket too far behind sends before closing with 4409: the page should reload.
pub fn away_notice(code: &str) -> Markup {
    html! {
        p #room-status.room-status role="status" aria-live="polite" hx-swap-oob="true" {
            "You were away for a while. " a href={ "/rooms/" (code) } { "Reload to see everything." }
        }
    }
}
