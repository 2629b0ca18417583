//! A message's text as it is shown: plain text, links and mentions, found by one function
//! (`pieces`) that both the store (which names a message mentions, `mentioned_names`) and the
//! views (how it is rendered) use, so a name is stored as mentioned exactly when it is shown
//! as one.
//!
//! A mention is `@` and a username as people type it (3–24 ASCII letters, digits, `_`, `-`,
//! `.`, starting with a letter or digit), compared case-insensitively. What is not one:
//! anything inside a link (`https://x.org/@ada`), an address (`x@ada.org`: the `@` follows a
//! name character), `@ada.org@x` (followed by another `@`), a longer word (`@adaé`, or more
//! than 24 characters). Dots that end it are the sentence's (`@ada.` is `ada`); commas and
//! other punctuation are never part of a name. Whether the name is a member of the room is
//! decided when the message is posted (`store`), not here.

use std::ops::Range;

use super::Username;

/// One piece of a message's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Plain text.
    Text(&'a str),
    /// An `http://` or `https://` URL, without the punctuation that ended its sentence.
    Url(&'a str),
    /// `@name`: `text` as typed (with the `@`), `name` without it.
    Mention {
        /// `@name` as typed.
        text: &'a str,
        /// The name, as typed (compare it case-insensitively).
        name: &'a str,
    },
}

/// The most distinct names one message mentions; later ones stay plain text. A message of
/// 4,000 characters could otherwise name some 800 people, each a row to write.
pub const MAX_MENTIONS: usize = 50;

/// `text` cut into plain text, links and (possible) mentions, in order; concatenated, the
/// pieces' texts are `text` again.
pub fn pieces(text: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = 0;
    for url in urls(text) {
        mentions_in(text, rest..url.start, &mut out);
        out.push(Piece::Url(&text[url.clone()]));
        rest = url.end;
    }
    mentions_in(text, rest..text.len(), &mut out);
    out
}

/// The names `text` mentions, each once (the first spelling of it), at most `MAX_MENTIONS`.
/// The store keeps those that name members of the room.
pub fn mentioned_names(text: &str) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for piece in pieces(text) {
        if let Piece::Mention { name, .. } = piece
            && !names.iter().any(|n| n.eq_ignore_ascii_case(name))
        {
            if names.len() == MAX_MENTIONS {
                break;
            }
            names.push(name);
        }
    }
    names
}

/// The byte ranges of `text`'s http(s) URLs: from the scheme to the first space, `<`, `>` or
/// `"`, without the punctuation that ends a sentence or a bracket. A bare scheme is no URL.
fn urls(text: &str) -> Vec<Range<usize>> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(start) = find_scheme(&text[from..]).map(|s| from + s) {
        let tail = &text[start..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"'))
            .unwrap_or(tail.len());
        let url = tail[..end].trim_end_matches(['.', ',', ';', ':', '!', '?', ')', ']', '}', '\'']);
        let scheme_len = if url.starts_with("https://") { 8 } else { 7 };
        if url.len() <= scheme_len {
            from = start + end.max(1);
            continue;
        }
        found.push(start..start + url.len());
        from = start + url.len();
    }
    found
}

fn find_scheme(text: &str) -> Option<usize> {
    let http = text.find("http://");
    let https = text.find("https://");
    match (http, https) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Whether a username may hold `c`.
fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// Whether an `@` right after `c` starts no mention: it is inside a word, an address or a
/// path (`x@ada.org`, `@@ada`, `/@ada`).
fn glued(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '@' | '/' | '+' | '=' | '&' | '%')
}

/// The plain text `text[range]` (outside links) cut into text and mentions, onto `out`.
fn mentions_in<'a>(text: &'a str, range: Range<usize>, out: &mut Vec<Piece<'a>>) {
    let mut plain = range.start;
    let mut at = range.start;
    while let Some(found) = text[at..range.end].find('@') {
        let i = at + found;
        let before = text[..i].chars().next_back();
        let name = if before.is_some_and(glued) {
            None
        } else {
            name_after(&text[i + 1..range.end])
        };
        match name {
            Some(len) => {
                if plain < i {
                    out.push(Piece::Text(&text[plain..i]));
                }
                let end = i + 1 + len;
                out.push(Piece::Mention {
                    text: &text[i..end],
                    name: &text[i + 1..end],
                });
                plain = end;
                at = end;
            }
            None => at = i + 1,
        }
    }
    if plain < range.end {
        out.push(Piece::Text(&text[plain..range.end]));
    }
}

/// The length of the username that `after` (the text after an `@`) starts with, if it starts
/// with one.
fn name_after(after: &str) -> Option<usize> {
    let run = after.find(|c: char| !name_char(c)).unwrap_or(after.len());
    let next = after[run..].chars().next();
    if next.is_some_and(|c| c == '@' || c.is_alphanumeric()) {
        return None;
    }
    let name = after[..run].trim_end_matches('.');
    let ok = (Username::MIN..=Username::MAX).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric());
    ok.then_some(name.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<&str> {
        mentioned_names(text)
    }

    #[test]
    fn names_are_found_where_people_write_them() {
        assert_eq!(names("@ada hi"), ["ada"]);
        assert_eq!(names("hi @ada"), ["ada"]);
        assert_eq!(names("hi @ada."), ["ada"]);
        assert_eq!(
            names("hi @ada, @bob: and (@carol)!"),
            ["ada", "bob", "carol"]
        );
        assert_eq!(names("@ada...?"), ["ada"]);
        assert_eq!(names("@ada's idea"), ["ada"]);
        assert_eq!(names("@j.doe_2-x said"), ["j.doe_2-x"]);
        assert_eq!(names("\"@ada\"\n@bob\t@carol"), ["ada", "bob", "carol"]);
        assert_eq!(names("@ada @ADA @Ada"), ["ada"], "once, case-insensitively");
        assert_eq!(names("«@ada»"), ["ada"]);
    }

    #[test]
    fn addresses_words_and_bad_names_are_not_mentions() {
        for text in [
            "x@ada.org",
            "mail ada@example.org",
            "@@ada",
            "@ab",
            "@_ada",
            "@.ada",
            "@-ada",
            "@ada@example.org",
            "@adaé",
            "é@ada",
            "@abcdefghijklmnopqrstuvwxy",
            "a+b@ada.org",
            "@",
            "@ ada",
            "@😀",
            "@ad\u{202e}a",
        ] {
            assert_eq!(names(text), Vec::<&str>::new(), "{text:?}");
        }
        assert_eq!(
            names("@abcdefghijklmnopqrstuvwx"),
            ["abcdefghijklmnopqrstuvwx"]
        );
    }

    #[test]
    fn links_keep_their_mentions_as_link_text() {
        assert_eq!(names("https://x.org/@ada"), Vec::<&str>::new());
        assert_eq!(names("https://x.org/?u=@ada"), Vec::<&str>::new());
        assert_eq!(
            pieces("@ada https://x.org/@bob, @carol."),
            [
                Piece::Mention {
                    text: "@ada",
                    name: "ada"
                },
                Piece::Text(" "),
                Piece::Url("https://x.org/@bob"),
                Piece::Text(", "),
                Piece::Mention {
                    text: "@carol",
                    name: "carol"
                },
                Piece::Text("."),
            ]
        );
        // A link runs to the next space; right after it, its sentence's punctuation.
        assert_eq!(
            pieces("https://x.org)@ada"),
            [Piece::Url("https://x.org)@ada")]
        );
        assert_eq!(
            pieces("(https://x.org/a), @ada"),
            [
                Piece::Text("("),
                Piece::Url("https://x.org/a"),
                Piece::Text("), "),
                Piece::Mention {
                    text: "@ada",
                    name: "ada"
                }
            ]
        );
        assert_eq!(
            pieces("http:// @ada"),
            [
                Piece::Text("http:// "),
                Piece::Mention {
                    text: "@ada",
                    name: "ada"
                }
            ]
        );
    }

    #[test]
    fn the_pieces_are_the_text() {
        let texts = [
            "",
            "plain",
            "@ada https://x.org/@bob, @carol. x@y.org @@zed @ÿ http://",
            "😀@ada😀 https://😀.org/@ada @ada",
            "<script>@ada</script>\"><img src=x onerror=alert(1)>@bob",
        ];
        for text in texts {
            let joined: String = pieces(text)
                .iter()
                .map(|p| match p {
                    Piece::Text(t) | Piece::Url(t) | Piece::Mention { text: t, .. } => *t,
                })
                .collect();
            assert_eq!(joined, text);
        }
    }

    #[test]
    fn one_message_mentions_at_most_fifty_names() {
        let text: String = (0..80).map(|i| format!("@user{i:03} ")).collect();
        assert_eq!(names(&text).len(), MAX_MENTIONS);
    }
}
