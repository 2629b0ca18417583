//! What a search box's text means: words, "quoted phrases", `from:username` and `in:ROOM-CODE`.
//!
//! The text someone typed never reaches a full-text engine as syntax. It is cut here into
//! words (runs of letters and digits: what both engines index as words), and the store builds
//! the engine's query from those words alone, each quoted (`Query::fts5`, `Query::tsquery`).
//! So nothing typed can be an operator, and no query can be a syntax error.

use std::fmt::Write;

use super::{Invalid, RoomCode, Username};

/// The most characters a search may have.
pub const MAX_CHARS: usize = 200;
/// The most terms (words and phrases) searched; more are left out, and the page says so.
pub const MAX_TERMS: usize = 12;
/// Words shorter than this match only themselves, not every word they begin: a one- or
/// two-letter prefix would match a large part of every room.
pub const MIN_PREFIX_CHARS: usize = 3;

/// One thing every result must contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// This word exactly (a short word).
    Word(String),
    /// A word beginning so: `deplo` finds "deployment".
    Prefix(String),
    /// These words, one after the other (typed in quotes, or joined by punctuation as in
    /// `e-mail`).
    Phrase(Vec<String>),
}

/// A parsed search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Every result contains all of them.
    pub terms: Vec<Term>,
    /// Only messages by this person: their case-folded username (as `users.username_key`),
    /// empty when what was typed cannot be a username (then nothing is found).
    pub from: Option<String>,
    /// Only messages of this room: its canonical code, empty when what was typed cannot be a
    /// code (then nothing is found).
    pub room: Option<String>,
    /// Whether terms beyond `MAX_TERMS` were left out.
    pub truncated: bool,
}

impl Query {
    /// Reads what was typed. Refuses only text longer than `MAX_CHARS`; anything else means
    /// something, possibly nothing (`is_empty`).
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        if input.chars().count() > MAX_CHARS {
            return Err(Invalid(
                "A search can be at most 200 characters long. Shorten it and search again.",
            ));
        }
        let mut query = Query::default();
        let mut rest = input;
        while let Some(start) = rest.find(|c: char| !c.is_whitespace()) {
            rest = &rest[start..];
            if let Some(quoted) = rest.strip_prefix('"') {
                // A phrase runs to the next quote, or to the end when it is not closed.
                let (phrase, after) = quoted.split_once('"').unwrap_or((quoted, ""));
                query.push(words(phrase));
                rest = after;
                continue;
            }
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '"')
                .unwrap_or(rest.len());
            let token = &rest[..end];
            rest = &rest[end..];
            let lower = token.to_ascii_lowercase();
            // A filter that cannot match (no such name or code could exist) is kept as an
            // empty text, which matches nothing: what was typed never reaches the database.
            if let Some(name) = token
                .get(5..)
                .filter(|n| lower.starts_with("from:") && !n.is_empty())
            {
                let name = name.trim_start_matches('@');
                query.from = Some(Username::parse(name).map(|u| u.key()).unwrap_or_default());
            } else if let Some(code) = token
                .get(3..)
                .filter(|c| lower.starts_with("in:") && !c.is_empty())
            {
                query.room = Some(
                    RoomCode::parse(code)
                        .map(|c| c.canonical())
                        .unwrap_or_default(),
                );
            } else {
                query.push(words(token));
            }
        }
        Ok(query)
    }

    /// Adds the term made of `words` (nothing when there are none).
    fn push(&mut self, words: Vec<String>) {
        let term = match <[String; 1]>::try_from(words) {
            Ok([word]) if word.chars().count() >= MIN_PREFIX_CHARS => Term::Prefix(word),
            Ok([word]) => Term::Word(word),
            Err(words) if words.is_empty() => return,
            Err(words) => Term::Phrase(words),
        };
        if self.terms.len() == MAX_TERMS {
            self.truncated = true;
        } else if !self.terms.contains(&term) {
            self.terms.push(term);
        }
    }

    /// Whether there is nothing to search for: then the page shows just the form.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty() && self.from.is_none() && self.room.is_none()
    }

    /// The terms as an SQLite FTS5 query: every word in double quotes (a quoted string is
    /// only ever text to FTS5), prefixes marked `*`, terms joined by spaces (AND). `None`
    /// without terms.
    pub fn fts5(&self) -> Option<String> {
        let mut out = String::new();
        for term in &self.terms {
            if !out.is_empty() {
                out.push(' ');
            }
            // Words hold letters and digits only, never a quote: see `words`.
            let _ = match term {
                Term::Word(w) => write!(out, "\"{w}\""),
                Term::Prefix(w) => write!(out, "\"{w}\"*"),
                Term::Phrase(ws) => write!(out, "\"{}\"", ws.join(" ")),
            };
        }
        (!out.is_empty()).then_some(out)
    }

    /// The terms as a PostgreSQL `to_tsquery` text: every word in single quotes, prefixes
    /// `:*`, phrases joined by `<->`, terms by `&`. `None` without terms.
    pub fn tsquery(&self) -> Option<String> {
        let quoted = |w: &String| format!("'{w}'");
        let parts: Vec<String> = self
            .terms
            .iter()
            .map(|term| match term {
                Term::Word(w) => quoted(w),
                Term::Prefix(w) => format!("{}:*", quoted(w)),
                Term::Phrase(ws) => {
                    format!(
                        "({})",
                        ws.iter().map(quoted).collect::<Vec<_>>().join(" <-> ")
                    )
                }
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join(" & "))
    }

    /// What a result's words are compared with to highlight them: each searched word, folded
    /// (`fold`), and whether a word it begins counts.
    pub fn needles(&self) -> Vec<(String, bool)> {
        let mut needles = Vec::new();
        for term in &self.terms {
            match term {
                Term::Word(w) => needles.push((fold(w), false)),
                Term::Prefix(w) => needles.push((fold(w), true)),
                Term::Phrase(ws) => needles.extend(ws.iter().map(|w| (fold(w), false))),
            }
        }
        needles
    }
}

/// The runs of letters and digits in `text`: the words both engines index (SQLite's
/// `unicode61` and PostgreSQL's parser after natter turns punctuation into spaces).
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// `word` as compared for highlighting: lower case, accents removed (`é` → `e`), as SQLite's
/// `unicode61 remove_diacritics 2` compares.
pub fn fold(word: &str) -> String {
    use unicode_normalization::{UnicodeNormalization, char::is_combining_mark};
    word.nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(input: &str) -> Vec<Term> {
        Query::parse(input).unwrap().terms
    }

    #[test]
    fn words_are_prefixes_and_short_words_exact() {
        assert_eq!(
            terms("deplo  of x"),
            vec![
                Term::Prefix("deplo".into()),
                Term::Word("of".into()),
                Term::Word("x".into())
            ]
        );
    }

    #[test]
    fn quotes_make_phrases_and_an_unclosed_quote_runs_to_the_end() {
        assert_eq!(
            terms(r#"ship "the new build" now"#),
            vec![
                Term::Prefix("ship".into()),
                Term::Phrase(vec!["the".into(), "new".into(), "build".into()]),
                Term::Prefix("now".into()),
            ]
        );
        assert_eq!(
            terms(r#""half open"#),
            vec![Term::Phrase(vec!["half".into(), "open".into()])]
        );
        assert_eq!(terms(r#""""  " " "#), vec![]);
    }

    #[test]
    fn punctuation_joins_words_into_a_phrase_and_is_never_syntax() {
        assert_eq!(
            terms("e-mail"),
            vec![Term::Phrase(vec!["e".into(), "mail".into()])]
        );
        assert_eq!(
            terms("NEAR(a b) OR * ^ - : ()"),
            vec![
                Term::Phrase(vec!["NEAR".into(), "a".into()]),
                Term::Word("b".into()),
                Term::Word("OR".into()),
            ]
        );
        let q = Query::parse(r#"it's "x' OR 1=1 --" \' ; DROP"#).unwrap();
        let fts = q.fts5().unwrap();
        let ts = q.tsquery().unwrap();
        for w in q.terms.iter().flat_map(|t| match t {
            Term::Word(w) | Term::Prefix(w) => vec![w.clone()],
            Term::Phrase(ws) => ws.clone(),
        }) {
            assert!(w.chars().all(char::is_alphanumeric), "{w}");
        }
        assert_eq!(fts.matches('"').count() % 2, 0);
        assert_eq!(ts.matches('\'').count() % 2, 0);
    }

    #[test]
    fn filters_are_read_out_of_the_text() {
        let q = Query::parse("From:@Ada in:abcd-efgh deploy").unwrap();
        assert_eq!(q.from.as_deref(), Some("ada"));
        assert_eq!(q.room.as_deref(), Some("ABCD-EFGH"));
        assert_eq!(q.terms, vec![Term::Prefix("deploy".into())]);
        let q = Query::parse("in:nope from:").unwrap();
        assert_eq!(
            q.room.as_deref(),
            Some(""),
            "an impossible code finds nothing"
        );
        assert_eq!(q.from, None);
        assert_eq!(q.terms, vec![Term::Prefix("from".into())]);
        assert!(!q.is_empty());
        let q = Query::parse("from:a\u{0}b").unwrap();
        assert_eq!(
            q.from.as_deref(),
            Some(""),
            "an impossible name finds nothing"
        );
        assert!(Query::parse("  \t\n ").unwrap().is_empty());
        assert!(Query::parse("!!! ...").unwrap().is_empty());
    }

    #[test]
    fn engine_queries_quote_every_word() {
        let q = Query::parse(r#"deplo "new build" of"#).unwrap();
        assert_eq!(q.fts5().unwrap(), r#""deplo"* "new build" "of""#);
        assert_eq!(
            q.tsquery().unwrap(),
            "'deplo':* & ('new' <-> 'build') & 'of'"
        );
        assert_eq!(Query::parse("from:ada").unwrap().fts5(), None);
        assert_eq!(Query::parse("from:ada").unwrap().tsquery(), None);
    }

    #[test]
    fn at_most_twelve_terms_and_two_hundred_characters() {
        let q = Query::parse(
            &(1..=20)
                .map(|n| format!("w{n:03}"))
                .collect::<Vec<_>>()
                .join(" "),
        )
        .unwrap();
        assert_eq!(q.terms.len(), MAX_TERMS);
        assert!(q.truncated);
        assert!(Query::parse(&"é".repeat(200)).is_ok());
        assert!(Query::parse(&"é".repeat(201)).is_err());
        // Repeats count once.
        assert_eq!(terms("abc abc ABC").len(), 2);
    }

    #[test]
    fn folding_ignores_case_and_accents() {
        assert_eq!(fold("Café"), "cafe");
        assert_eq!(fold("ÉCOLE"), "ecole");
        assert_eq!(fold("straße"), "straße");
    }
}
