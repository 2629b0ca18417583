//! Signing in, choosing a username, the profile, and the per-user stylesheet.

use maud::{Markup, html};

use super::{
    layout::{Nav, Page, csrf_field, field_error},
    times::time,
    tokens::{TokenPanel, token_panel},
};
use crate::{
    domain::{Username, notify::Notify},
    store::{ApiToken, User},
};

/// How the landing page offers to sign in.
pub struct SignInOptions<'a> {
    /// The provider's name ("Google"), when an OAuth client is configured.
    pub provider: Option<&'a str>,
    /// Whether development sign-in is on.
    pub dev_login: bool,
    /// A CSRF token for the development sign-in form (pre-session).
    pub csrf: &'a str,
    /// Where to go after signing in, as a local path.
    pub next: Option<&'a str>,
    /// `/auth/login` with `next` carried along.
    pub login_url: &'a str,
}

/// `GET /` for someone signed out: one sentence, the sign-in button, nothing else competing.
pub fn landing(o: &SignInOptions) -> Markup {
    let content = html! {
        section.hero aria-labelledby="landing-title" {
            h1 #landing-title { "Rooms for the people you talk to." }
            p.lede { "natter is a calm, fast group chat. Sign in, open a room, share its code, and talk in real time." }
            @if let Some(provider) = o.provider {
                a.button.primary.large href=(o.login_url) {
                    "Sign in with " (provider)
                }
            }
            @if o.dev_login {
                (dev_sign_in_form(o.csrf, "", None, o.next, false))
            }
            @if o.provider.is_none() && !o.dev_login {
                div.card.notice {
                    h2 { "Sign-in is not configured yet" }
                    p {
                        "Set " code { "NATTER_OAUTH_CLIENT_ID" } " and " code { "NATTER_OAUTH_CLIENT_SECRET" }
                        " to sign in with Google (or any OpenID Connect provider), or start natter with "
                        code { "--dev-login" } " on your own machine to try it. The README explains both."
                    }
                }
            }
        }
    };
    Page {
        title: "Welcome",
        nav: Nav::Guest,
        body_class: "page-landing",
        content,
    }
    .render()
}

/// The development sign-in form; `page` when it is the page's main content (its title is the
/// page's `h1`), otherwise a section under the landing page's own heading.
fn dev_sign_in_form(
    csrf: &str,
    email: &str,
    error: Option<&str>,
    next: Option<&str>,
    page: bool,
) -> Markup {
    html! {
        section.card.dev-sign-in aria-labelledby="dev-title" {
            @if page {
                h1 #dev-title { span.badge { "Development" } " Sign in with any email" }
            } @else {
                h2 #dev-title { span.badge { "Development" } " Sign in with any email" }
            }
            p.muted { "This form exists because natter runs with development sign-in on this machine. There is no password: never enable it on a server." }
            form method="post" action="/auth/dev" novalidate {
                (csrf_field(csrf))
                @if let Some(next) = next { input type="hidden" name="next" value=(next); }
                // The spaces keep label, field and button apart in a text browser (natter.css sets
                // each on its own line).
                label for="dev-email" { "Email" }
                " "
                input #dev-email type="email" name="email" value=(email) autocomplete="email" required
                    aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| "dev-email-error")];
                (field_error("dev-email-error", error))
                " "
                button.button type="submit" { "Sign in" }
            }
        }
    }
}

/// `/auth/dev`: the development sign-in form on its own page, with what was typed and why it
/// was refused, if it was.
pub fn dev_sign_in(csrf: &str, email: &str, error: Option<&str>, next: Option<&str>) -> Markup {
    Page {
        title: "Development sign-in",
        nav: Nav::Guest,
        body_class: "page-narrow",
        content: dev_sign_in_form(csrf, email, error, next, true),
    }
    .render()
}

/// A sign-in that did not finish, with a way to try again.
pub fn sign_in_problem(title: &str, text: &str) -> Markup {
    Page {
        title,
        nav: Nav::Guest,
        body_class: "page-narrow",
        content: html! {
            section.card aria-labelledby="problem-title" {
                h1 #problem-title { (title) }
                p { (text) }
                p { a.button.primary href="/" { "Try again" } }
            }
        },
    }
    .render()
}

/// `/username`: choose the name people will see, with what was typed and why it was refused.
pub fn username(csrf: &str, typed: &str, error: Option<&str>, next: Option<&str>) -> Markup {
    let content = html! {
        section.card aria-labelledby="username-title" {
            h1 #username-title { "Choose your username" }
            p { "This is how people in your rooms will see you. You can change it later on your profile, once a day." }
            form method="post" action="/username" novalidate {
                (csrf_field(csrf))
                @if let Some(next) = next { input type="hidden" name="next" value=(next); }
                label for="username" { "Username" }
                " "
                input #username type="text" name="username" value=(typed) required
                    minlength=(Username::MIN) maxlength=(Username::MAX)
                    autocomplete="username" autocapitalize="none" spellcheck="false" autofocus
                    aria-invalid=[error.map(|_| "true")]
                    aria-describedby={ "username-help" @if error.is_some() { " username-error" } };
                p.help #username-help { "3–24 letters, digits, underscore, dash or dot." }
                (field_error("username-error", error))
                " "
                button.button.primary type="submit" { "Continue" }
            }
        }
    };
    Page {
        title: "Choose your username",
        nav: Nav::Newcomer { csrf },
        body_class: "page-narrow",
        content,
    }
    .render()
}

/// What the profile shows.
pub struct Profile<'a> {
    /// The person.
    pub user: &'a User,
    /// Their username (chosen: the profile is for people who have one).
    pub username: &'a str,
    /// How many browsers they are signed in on.
    pub sessions: i64,
    /// How many rooms they are in.
    pub rooms: usize,
    /// Their API tokens.
    pub tokens: &'a [ApiToken],
    /// The token panel's state (a refused name, a token just created).
    pub panel: TokenPanel<'a>,
    /// What they want to hear about by default, and why a choice was refused, if it was.
    pub notify: (Notify, Option<&'a str>),
    /// This browser's notifications and "do not disturb".
    pub push: super::push::PushPanel<'a>,
}

/// `/profile`: who you are here, sessions, API tokens.
pub fn profile(nav: Nav, csrf: &str, p: &Profile) -> Markup {
    let content = html! {
        section.card.profile aria-labelledby="profile-title" {
            h1 #profile-title { (p.username) }
            dl.facts {
                dt { "Username" } dd { (p.username) }
                dt { "Email" } dd { (p.user.email) }
                dt { "Member since" } dd { (time(p.user.created_at, false)) }
                dt { "Rooms" } dd { (p.rooms) }
            }
        }
        section.card aria-labelledby="sessions-title" {
            h2 #sessions-title { "Sessions" }
            p {
                "You are signed in on " (p.sessions) " "
                (if p.sessions == 1 { "browser or device" } else { "browsers or devices" }) "."
            }
            // Tokens are for scripts, which a lost phone does not hold: signing out leaves them
            // alone, so the page says so where the button is, and read with the button.
            p #sign-out-everywhere-note {
                "Signing out everywhere ends every browser's session. API tokens keep working: "
                a href="#tokens-title" { "revoke them below" } "."
            }
            p { a href="/profile/sessions" { "See each session, and end any one of them" } }
            form method="post" action="/auth/logout/everywhere" {
                (csrf_field(csrf))
                button.button.danger type="submit" aria-describedby="sign-out-everywhere-note" {
                    "Sign out everywhere"
                }
            }
        }
        section.card aria-labelledby="account-title" {
            h2 #account-title { "Your account" }
            ul.account-links {
                li { a href="/profile/username" { "Change your username" } }
                li { a href="/profile/export" download { "Download your data" } " " span.muted { "(JSON: profile, rooms, your messages)" } }
                li { a href="/profile/delete" { "Delete your account" } }
            }
        }
        (notify_default_form(csrf, p.notify.0, p.notify.1))
        (super::push::panel(csrf, &p.push))
        (token_panel(p.tokens, csrf, &p.panel))
    };
    Page {
        title: "Profile",
        nav,
        body_class: "page-narrow",
        content,
    }
    .render()
}

/// The profile's default notification setting (each room may choose its own).
fn notify_default_form(csrf: &str, notify: Notify, error: Option<&str>) -> Markup {
    html! {
        section.card aria-labelledby="notify-title" {
            h2 #notify-title { "Notifications" }
            form method="post" action="/profile/notify" {
                (csrf_field(csrf))
                label for="notify-default" { "By default, notify me about" }
                " "
                select #notify-default name="notify" aria-describedby={ "notify-help" @if error.is_some() { " notify-error" } }
                    aria-invalid=[error.map(|_| "true")] {
                    @for choice in Notify::CHOICES {
                        option value=(choice.as_str()) selected[choice == notify] { (choice.label()) }
                    }
                }
                p.help #notify-help { "Each room can choose otherwise, in its member panel. Unread marks follow it." }
                (field_error("notify-error", error))
                " "
                button.button type="submit" { "Save" }
            }
        }
    }
}

/// Goes into `/me.css`'s address: a browser keeps the stylesheet a day, so a change to its
/// rules changes this, and pages ask for the new one at once.
pub const ME_CSS_REVISION: u32 = 3;

/// `/me.css`: the viewer's own messages get an accent (and their "Edit" and "Delete"), and so do
/// the mentions of them and the
/// messages holding one. Messages are rendered once for everyone with `data-author` and
/// `.mention[data-user]`; this tiny per-user stylesheet is the only per-viewer part (the
/// colours are natter.css's, light and dark).
pub fn me_css(user_id: i64) -> String {
    format!(
        ".message[data-author=\"{id}\"]{{--message-accent:var(--accent)}}\
         .message[data-author=\"{id}\"] .message-actions :is(.edit-link,.delete-link){{display:inline-block}}\
         .message[data-author=\"{id}\"] .author::after{{content:\" (you)\";color:var(--muted);font-weight:400}}\
         #member-{id} .member-name::after{{content:\" (you)\";color:var(--muted)}}\
         .mention[data-user=\"{id}\"]{{background:var(--mention-me-bg);color:var(--mention-me-text);font-weight:650}}\
         article:has(.mention[data-user=\"{id}\"]){{--message-accent:var(--mention-me-line);background:var(--mention-me-soft)}}\
         .typer[data-user=\"{id}\"]{{display:none}}\
         .dm-link[data-user=\"{id}\"]{{display:none}}",
        id = user_id
    )
}
