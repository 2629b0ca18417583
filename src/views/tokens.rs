//! The "API tokens" section of the profile page: list, create (the text shown once), revoke.

use maud::{Markup, html};

use super::{
    layout::{csrf_field, field_error},
    times::time,
};
use crate::{domain::TokenName, store::ApiToken};

/// What the token panel shows besides the list.
#[derive(Default)]
pub struct TokenPanel<'a> {
    /// The name as typed, kept after a refusal.
    pub typed: &'a str,
    /// Why the name was refused.
    pub error: Option<&'a str>,
    /// A token just created: its name and its text, shown this once.
    pub created: Option<(&'a str, &'a str)>,
}

/// The "API tokens" section of the profile page.
pub fn token_panel(tokens: &[ApiToken], csrf: &str, panel: &TokenPanel) -> Markup {
    html! {
        section.card.api-tokens aria-labelledby="tokens-title" {
            h2 #tokens-title { "API tokens" }
            p {
                "A token lets a script use natter's " a href="/api/docs" { "JSON API" }
                " as you: it can read your rooms and post in them. Keep it secret, and revoke any you no longer use."
            }
            @if let Some((name, token)) = panel.created {
                div.token-created role="status" aria-labelledby="token-created-title" {
                    h3 #token-created-title { "Your new token \u{201c}" (name) "\u{201d}" }
                    p { strong { "Copy it now: it won't be shown again." } }
                    p { code.token-value #new-token { (token) } }
                    p.muted.small { "Send it as " code { "Authorization: Bearer " (token) } }
                }
            }
            @if tokens.is_empty() {
                p.muted { "You have no API tokens." }
            } @else {
                table.token-list {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Created" } th scope="col" { "Last used" } th scope="col" { span.visually-hidden { "Actions" } } } }
                    tbody {
                        @for token in tokens {
                            tr id={ "token-" (token.id) } {
                                td { bdi { (token.name) } }
                                td { (time(token.created_at, false)) }
                                td {
                                    @match token.last_used_at {
                                        Some(at) => (time(at, false)),
                                        None => span.muted { "never" },
                                    }
                                }
                                td {
                                    form.inline-form method="post" action={ "/profile/tokens/" (token.id) "/revoke" } {
                                        (csrf_field(csrf))
                                        button.button.small.danger type="submit" aria-label={ "Revoke " (token.name) } { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form method="post" action="/profile/tokens" novalidate {
                (csrf_field(csrf))
                // The spaces keep label, field and button apart in a text browser (natter.css sets
                // each on its own line).
                label for="token-name" { "New token name" }
                " "
                input #token-name type="text" name="name" value=(panel.typed) required
                    maxlength=(TokenName::MAX) autocomplete="off"
                    aria-invalid=[panel.error.map(|_| "true")]
                    aria-describedby={ "token-name-help" @if panel.error.is_some() { " token-name-error" } };
                p.help #token-name-help { "What the token is for, such as \u{201c}deploy bot\u{201d}. Up to 60 characters." }
                (field_error("token-name-error", panel.error))
                " "
                button.button.primary type="submit" { "Create token" }
            }
        }
    }
}
