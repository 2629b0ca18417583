//! The search page (`/search`) and the header's search box: results with their room, author,
//! time and the words that matched marked, newest first, each linking to its message.

use maud::{Markup, html};

use super::{
    layout::{Nav, Page, field_error, text_separator},
    messages::permalink,
    times::time,
};
use crate::{
    actions::SearchResults,
    domain::search::{MAX_CHARS, MAX_TERMS, fold},
    store::SearchHit,
};

/// Characters of a long message shown around its first match.
const SNIPPET_CHARS: usize = 280;

/// The header's search box: a plain GET form, so it works without JavaScript (on phones, a
/// link to the search page). `q` is the search shown on the page, if any.
pub fn header_box(q: &str) -> Markup {
    html! {
        form.header-search role="search" method="get" action="/search" aria-label="Search messages" {
            label.visually-hidden for="header-q" { "Search messages in my rooms" }
            input #header-q type="search" name="q" value=(q) maxlength=(MAX_CHARS)
                placeholder="Search messages" autocomplete="off" enterkeyhint="search";
            " "
            button.button.header-search-button type="submit" { "Search" }
        }
        // Phones have no room for the box in the header: a link to the search page instead.
        a.header-search-link href="/search" { "Search" }
    }
}

/// What the search page shows.
pub struct SearchPage<'a> {
    /// What was typed (shown back in the boxes, even when refused).
    pub q: &'a str,
    /// The results, when the search ran.
    pub results: Option<&'a SearchResults>,
    /// Why the search did not run (too long, too many searches).
    pub error: Option<&'a str>,
    /// Whether this page continues an earlier one (`before=`).
    pub continued: bool,
}

/// The search page.
pub fn page(nav: Nav, search: &SearchPage) -> Markup {
    let content = html! {
        section.search-page aria-labelledby="search-title" {
            h1 #search-title { "Search" }
            form.search-form method="get" action="/search" novalidate {
                label for="search-q" { "Search the messages of your rooms" }
                " "
                div.search-row {
                    input #search-q type="search" name="q" value=(search.q) maxlength=(MAX_CHARS)
                        autocomplete="off"
                        aria-invalid=[search.error.map(|_| "true")]
                        aria-describedby={ "search-help" @if search.error.is_some() { " search-error" } };
                    " "
                    button.button.primary type="submit" { "Search" }
                }
                (field_error("search-error", search.error))
                p.muted #search-help {
                    "Words match their beginnings (" code { "deplo" } " finds “deployment”). "
                    "Put a phrase in quotes: " code { "\"release notes\"" } ". "
                    "Narrow with " code { "from:username" } " or " code { "in:ABCD-EFGH" } "."
                }
            }
            @if let Some(results) = search.results {
                (result_list(search.q, results, search.continued))
            }
        }
    };
    Page {
        title: if search.q.trim().is_empty() {
            "Search"
        } else {
            "Search results"
        },
        nav,
        body_class: "page-search",
        content,
    }
    .render()
}

fn result_list(q: &str, results: &SearchResults, continued: bool) -> Markup {
    let needles = results.query.needles();
    html! {
        @if results.query.is_empty() {
            // Only what was typed as words counts; punctuation alone searches for nothing.
        } @else {
            h2.visually-hidden #results-title { "Results" }
            @if results.query.truncated {
                p.notice role="status" { "Only the first " (MAX_TERMS) " words were searched." }
            }
            @if results.hits.is_empty() {
                div.empty-state role="status" {
                    p { strong { @if continued { "No more messages found." } @else { "No messages found." } } }
                    p.muted { "Only the rooms you are a member of are searched. Try fewer or shorter words." }
                }
            } @else {
                ol.search-results aria-labelledby="results-title" {
                    @for hit in &results.hits { (result(hit, &needles)) }
                }
                @if let Some(next) = results.next {
                    nav.search-more aria-label="More results" {
                        a.button href={ "/search?q=" (encode(q)) "&before=" (next) } { "Older results" }
                    }
                }
            }
        }
    }
}

/// One result: where it was said, by whom and when, and the text with its matches marked;
/// the whole of it links to the message in its room.
fn result(hit: &SearchHit, needles: &[(String, bool)]) -> Markup {
    html! {
        li.search-result {
            a.search-hit href=(permalink(&hit.code, hit.seq)) {
                span.search-meta {
                    span.search-room { bdi { (hit.room_display_name()) } }
                    (text_separator())
                    span.author { (hit.author) }
                    (text_separator())
                    (time(hit.created_at, false))
                    @if hit.edited_at.is_some() { " " span.edited { "(edited)" } }
                }
                span.search-body dir="auto" { (highlight(&snippet(&hit.body, needles), needles)) }
            }
        }
    }
}

/// The part of `body` shown in a result: all of it when short, else `SNIPPET_CHARS` around
/// its first match, with "…" where it was cut.
fn snippet(body: &str, needles: &[(String, bool)]) -> String {
    let total = body.chars().count();
    if total <= SNIPPET_CHARS {
        return body.to_string();
    }
    let first = spans(body)
        .find(|(word, at)| *word && matches(&body[at.clone()], needles))
        .map_or(0, |(_, at)| body[..at.start].chars().count());
    let start = first
        .saturating_sub(SNIPPET_CHARS / 4)
        .min(total - SNIPPET_CHARS);
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    out.extend(body.chars().skip(start).take(SNIPPET_CHARS));
    if start + SNIPPET_CHARS < total {
        out.push('…');
    }
    out
}

/// `text` escaped, with each word that a searched word matches (`needles`: folded words, and
/// whether a word they begin counts) inside `<mark>`. maud escapes every piece; the marks are
/// the only markup.
pub fn highlight(text: &str, needles: &[(String, bool)]) -> Markup {
    html! {
        @for (word, at) in spans(text) {
            @let piece = &text[at];
            @if word && matches(piece, needles) { mark { (piece) } } @else { (piece) }
        }
    }
}

/// Whether the word `word` is one a needle matches.
fn matches(word: &str, needles: &[(String, bool)]) -> bool {
    let folded = fold(word);
    needles.iter().any(|(n, prefix)| {
        if *prefix {
            folded.starts_with(n.as_str())
        } else {
            folded == *n
        }
    })
}

/// `text` cut into alternating runs of word characters (letters and digits) and the rest, as
/// (is a word, byte range).
fn spans(text: &str) -> impl Iterator<Item = (bool, std::ops::Range<usize>)> + '_ {
    let mut rest = text.char_indices().peekable();
    std::iter::from_fn(move || {
        let (start, first) = rest.next()?;
        let word = first.is_alphanumeric();
        let mut end = start + first.len_utf8();
        while let Some((i, c)) = rest.next_if(|(_, c)| c.is_alphanumeric() == word) {
            end = i + c.len_utf8();
        }
        Some((word, start..end))
    })
}

/// `q` for a query string.
fn encode(q: &str) -> String {
    url::form_urlencoded::byte_serialize(q.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::search::Query;

    fn marked(text: &str, q: &str) -> String {
        highlight(text, &Query::parse(q).unwrap().needles()).into_string()
    }

    #[test]
    fn matches_are_marked_after_escaping() {
        assert_eq!(
            marked("<script>alert('deploy')</script> Deployment", "deplo"),
            "&lt;script&gt;alert('<mark>deploy</mark>')&lt;/script&gt; <mark>Deployment</mark>"
        );
        assert_eq!(
            marked("<b>script</b>", "script"),
            "&lt;b&gt;<mark>script</mark>&lt;/b&gt;"
        );
    }

    #[test]
    fn marks_whole_words_ignoring_case_and_accents() {
        assert_eq!(
            marked("Café cafeteria scafe", "cafe"),
            "<mark>Café</mark> <mark>cafeteria</mark> scafe"
        );
        // Short words and phrase words match only themselves.
        assert_eq!(marked("to tomorrow", "to"), "<mark>to</mark> tomorrow");
        assert_eq!(
            marked("new build newer", "\"new build\""),
            "<mark>new</mark> <mark>build</mark> newer"
        );
        assert_eq!(marked("nothing here", ""), "nothing here");
    }

    #[test]
    fn long_messages_show_the_part_around_the_first_match() {
        let body = format!("{} needle {}", "a ".repeat(400), "b ".repeat(400));
        let needles = Query::parse("needle").unwrap().needles();
        let s = snippet(&body, &needles);
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
        assert!(s.contains("needle"));
        assert!(s.chars().count() <= SNIPPET_CHARS + 2);
        assert_eq!(snippet("short", &needles), "short");
        // No match (a filter-only search): the beginning.
        let s = snippet(&body, &[]);
        assert!(s.starts_with("a a") && s.ends_with('…'));
    }
}
