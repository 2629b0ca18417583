//! Care of one's account: the sessions page, the username change, the account deletion.

use maud::{Markup, html};

use super::{
    layout::{Nav, Page, csrf_field, field_error},
    times::time,
};
use crate::{
    domain::{Username, agent::Agent},
    store::{ApiToken, SessionInfo},
};

/// `/profile/sessions`: every signed-in browser (this one marked) and every API token, each
/// with a way to end it.
pub fn sessions(
    nav: Nav,
    csrf: &str,
    list: &[SessionInfo],
    this: &[u8],
    tokens: &[ApiToken],
) -> Markup {
    let content = html! {
        p.back { a href="/profile" { "← Profile" } }
        section.card aria-labelledby="sessions-title" {
            h1 #sessions-title { "Your sessions" }
            p { "Each browser you signed in with. Ending a session signs that browser out at once; its open rooms stop being live." }
            ul.session-list {
                @for s in list {
                    @let here = s.token_hash == this;
                    @let agent = Agent::parse(&s.user_agent).describe();
                    li.session id={ "session-" (s.public_id) } {
                        div.session-what {
                            strong { (agent) }
                            @if here { " " span.badge { "This browser" } }
                        }
                        p.muted.small {
                            "Signed in " (time(s.created_at, false)) " · last active " (time(s.last_seen_at, false))
                        }
                        form.inline-form method="post" action={ "/profile/sessions/" (s.public_id) "/end" } {
                            (csrf_field(csrf))
                            // The accessible name starts with the visible words (WCAG 2.5.3).
                            @if here {
                                button.button.small.danger type="submit" aria-label={ "Sign out here (" (agent) ", this browser)" } { "Sign out here" }
                            } @else {
                                button.button.small.danger type="submit" aria-label={ "End session (" (agent) ")" } { "End session" }
                            }
                        }
                    }
                }
            }
        }
        section.card aria-labelledby="session-tokens-title" {
            h2 #session-tokens-title { "API tokens" }
            @if tokens.is_empty() {
                p.muted { "You have no API tokens. " a href="/profile#tokens-title" { "Create one on your profile" } "." }
            } @else {
                ul.session-list {
                    @for token in tokens {
                        li.session id={ "session-token-" (token.id) } {
                            div.session-what { strong { bdi { (token.name) } } " " span.muted { "(API token)" } }
                            p.muted.small {
                                "Created " (time(token.created_at, false)) " · last used "
                                @match token.last_used_at {
                                    Some(at) => (time(at, false)),
                                    None => "never",
                                }
                            }
                            form.inline-form method="post" action={ "/profile/tokens/" (token.id) "/revoke" } {
                                (csrf_field(csrf))
                                button.button.small.danger type="submit" aria-label={ "Revoke " (token.name) } { "Revoke" }
                            }
                        }
                    }
                }
            }
        }
    };
    Page {
        title: "Sessions",
        nav,
        body_class: "page-narrow",
        content,
    }
    .render()
}

/// What the username page says besides the form.
pub struct RenameForm<'a> {
    /// The name now.
    pub current: &'a str,
    /// What was typed (the current name at first).
    pub typed: &'a str,
    /// Why it was refused.
    pub error: Option<&'a str>,
    /// When the next change is possible, if not now (Unix ms).
    pub next_at: Option<i64>,
}

/// `/profile/username`: change the name people see, at most once a day.
pub fn username(nav: Nav, csrf: &str, f: &RenameForm) -> Markup {
    let content = html! {
        p.back { a href="/profile" { "← Profile" } }
        section.card aria-labelledby="rename-title" {
            h1 #rename-title { "Change your username" }
            p #rename-help-1 {
                "You are " strong { (f.current) } ". Your rooms will say you changed it, and what it was. "
                "Mentions of you keep pointing at you. You can change it once a day."
            }
            @if let Some(next) = f.next_at {
                p.notice #rename-wait role="status" {
                    "You changed your username recently. You can change it again after " (time(next, false)) "."
                }
            }
            form method="post" action="/profile/username" novalidate {
                (csrf_field(csrf))
                label for="username" { "New username" }
                " "
                input #username type="text" name="username" value=(f.typed) required
                    minlength=(Username::MIN) maxlength=(Username::MAX)
                    autocomplete="username" autocapitalize="none" spellcheck="false"
                    aria-invalid=[f.error.map(|_| "true")]
                    aria-describedby={ "username-help" @if f.error.is_some() { " username-error" } };
                p.help #username-help { "3–24 letters, digits, underscore, dash or dot." }
                (field_error("username-error", f.error))
                " "
                button.button.primary type="submit" { "Change username" }
            }
        }
    };
    Page {
        title: "Change your username",
        nav,
        body_class: "page-narrow",
        content,
    }
    .render()
}

/// What the deletion page shows.
pub struct DeleteForm<'a> {
    /// The person's username (what they type to confirm).
    pub username: &'a str,
    /// How many rooms they are in, and how many of those they own.
    pub rooms: (usize, usize),
    /// What was typed in the confirmation.
    pub typed: &'a str,
    /// The choice made for messages (`keep` first).
    pub messages: &'a str,
    /// Why it was refused.
    pub error: Option<&'a str>,
}

/// `/profile/delete`: a page that names exactly what deleting the account does.
pub fn delete(nav: Nav, csrf: &str, f: &DeleteForm) -> Markup {
    let delete_chosen = f.messages == "delete";
    let content = html! {
        p.back { a href="/profile" { "← Profile" } }
        section.card aria-labelledby="delete-title" {
            h1 #delete-title { "Delete your account" }
            p { "Deleting your account cannot be undone. This is what happens:" }
            ul.consequences {
                li { "Every browser you are signed in on is signed out, and your API tokens stop working." }
                li { "You leave your " (f.rooms.0) " " (if f.rooms.0 == 1 { "room" } else { "rooms" }) ". "
                     @if f.rooms.1 > 0 {
                         "The " (f.rooms.1) " " (if f.rooms.1 == 1 { "room you own passes" } else { "rooms you own pass" })
                         " to their longest-standing member."
                     } }
                li { "Your username " strong { (f.username) } " becomes free for anyone to choose." }
                li { "Your messages stay, shown as written by \u{201c}deleted user\u{201d}, or are deleted: you choose below." }
                li { "Signing in again later starts a new, empty account." }
            }
            p { "Your data is yours: " a href="/profile/export" download { "download it first" } " if you want to keep it." }
            form method="post" action="/profile/delete" novalidate {
                (csrf_field(csrf))
                fieldset.delete-choice {
                    legend { "Your messages" }
                    div.choice {
                        input #messages-keep type="radio" name="messages" value="keep" checked[!delete_chosen];
                        " "
                        label for="messages-keep" { "Keep them, shown as written by \u{201c}deleted user\u{201d}" }
                    }
                    div.choice {
                        input #messages-delete type="radio" name="messages" value="delete" checked[delete_chosen];
                        " "
                        label for="messages-delete" { "Delete them (each shows \u{201c}Message deleted\u{201d} in its room)" }
                    }
                }
                label for="confirm" { "Type your username, " strong { (f.username) } ", to confirm" }
                " "
                input #confirm type="text" name="confirm" value=(f.typed) required autocomplete="off"
                    autocapitalize="none" spellcheck="false"
                    aria-invalid=[f.error.map(|_| "true")]
                    aria-describedby=[f.error.map(|_| "confirm-error")];
                (field_error("confirm-error", f.error))
                " "
                button.button.danger type="submit" { "Delete my account" }
            }
        }
    };
    Page {
        title: "Delete your account",
        nav,
        body_class: "page-narrow",
        content,
    }
    .render()
}

/// After deletion: a signed-out page that says it is done.
pub fn deleted() -> Markup {
    Page {
        title: "Account deleted",
        nav: Nav::Guest,
        body_class: "page-narrow",
        content: html! {
            section.card aria-labelledby="deleted-title" {
                h1 #deleted-title { "Your account is deleted" }
                p { "You are signed out everywhere. Thank you for having talked here." }
                p { a.button href="/" { "Home" } }
            }
        },
    }
    .render()
}
