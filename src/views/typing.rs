//! "ada is typing…" under the conversation (with JavaScript only: the signal travels up the
//! room's socket). The line is rendered once per change for every viewer; each typer is an
//! element of their own, so `/me.css` hides the viewer's own without a render per viewer.

use maud::{Markup, html};

/// The most typers named; more make one "Several people are typing…".
pub const NAMED_TYPERS: usize = 4;

/// The typing line with these typers (user id, username), replacing the page's own.
pub fn typing_line(typers: &[(i64, &str)]) -> Markup {
    html! {
        div #typing.typing hx-swap-oob="true" { (typers_markup(typers)) }
    }
}

/// The page's typing line as the room opens: nobody is typing yet.
pub fn typing_placeholder() -> Markup {
    html! { div #typing.typing {} }
}

/// The hidden form whose submission (`ws-send`, triggered by `assets/js/typing.js`) tells
/// the room's socket "I am typing". Outside the composer, so the draft never travels with it.
pub fn typing_signal() -> Markup {
    html! {
        form #typing-signal hidden ws-send hx-trigger="natter:typing" {
            input type="hidden" name="typing" value="1";
        }
    }
}

fn typers_markup(typers: &[(i64, &str)]) -> Markup {
    html! {
        @if typers.len() > NAMED_TYPERS {
            span.typer { "Several people are typing…" }
        } @else {
            @for (id, name) in typers {
                span.typer data-user=(id) { b { bdi { (name) } } " is typing…" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_typer_is_named_escaped_and_many_are_summed_up() {
        let line = typing_line(&[(1, "ada"), (2, "<b>x</b>")]).into_string();
        assert!(line.starts_with("<div class=\"typing\" id=\"typing\" hx-swap-oob=\"true\">"));
        assert!(line.contains("<span class=\"typer\" data-user=\"1\"><b><bdi>ada</bdi></b>"));
        assert!(line.contains("&lt;b&gt;x&lt;/b&gt;") && !line.contains("<b>x"));
        let many: Vec<(i64, &str)> = (0..5).map(|i| (i, "p")).collect();
        let line = typing_line(&many).into_string();
        assert!(line.contains("Several people are typing") && !line.contains("data-user"));
        assert_eq!(
            typing_line(&[]).into_string(),
            "<div class=\"typing\" id=\"typing\" hx-swap-oob=\"true\"></div>"
        );
    }
}
