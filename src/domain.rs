//! Validated input. Everything a person types becomes one of these types before it reaches the
//! store, so the store never sees a raw string and every rule lives in exactly one place.

pub mod agent;
pub mod mention;
pub mod notify;
pub mod search;

use std::{borrow::Cow, fmt};

use thiserror::Error;

/// Why a typed value was refused; the text is shown to the person next to the field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct Invalid(pub &'static str);

/// A unique, case-insensitively compared name chosen at first sign-in (DESIGN.md §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

/// Names nobody may take, in any case: they impersonate staff or the system, or read as commands.
const RESERVED_USERNAMES: &[&str] = &[
    "abuse",
    "admin",
    "administrator",
    "anonymous",
    "api",
    "assets",
    "auth",
    "bot",
    "channel",
    "everyone",
    "guest",
    "help",
    "here",
    "home",
    "hostmaster",
    "info",
    "login",
    "logout",
    "me",
    "mod",
    "moderator",
    "natter",
    "noreply",
    "null",
    "official",
    "owner",
    "postmaster",
    "profile",
    "root",
    "rooms",
    "security",
    "settings",
    "signin",
    "signout",
    "staff",
    "support",
    "system",
    "undefined",
    "username",
    "webmaster",
];

impl Username {
    /// Fewest characters.
    pub const MIN: usize = 3;
    /// Most characters.
    pub const MAX: usize = 24;

    /// Accepts 3–24 ASCII letters, digits, `_`, `-`, `.`, starting with a letter or digit, not a
    /// reserved name. Surrounding spaces are forgiven; the case typed is kept for display.
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let name = input.trim();
        if name.is_empty() {
            return Err(Invalid("Choose a username."));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(Invalid(
                "Use only letters a–z, digits, underscore, dash and dot (no spaces or accents).",
            ));
        }
        if name.len() < Self::MIN || name.len() > Self::MAX {
            return Err(Invalid("A username has 3 to 24 characters."));
        }
        if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(Invalid("A username starts with a letter or a digit."));
        }
        if RESERVED_USERNAMES.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(Invalid("That name is reserved. Please choose another."));
        }
        Ok(Self(name.to_string()))
    }

    /// The username as typed.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form that uniqueness is enforced on (`users.username_key`).
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address as typed on the development sign-in form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// A light check: one `@` with text on both sides, a dot in the domain, no spaces or
    /// control characters, at most 254 characters. Stored lower-cased.
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let email = input.trim().to_lowercase();
        let invalid = Invalid("Enter an email address like ada@example.org.");
        if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid);
        }
        match email.split_once('@') {
            Some((local, domain))
                if !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !email.contains(['<', '>', '"', '\'']) =>
            {
                Ok(Self(email))
            }
            _ => Err(invalid),
        }
    }

    /// The address, trimmed.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The short code that names a room and invites to it: 8 Crockford base32 characters, shown as
/// `ABCD-EFGH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoomCode([u8; 8]);

/// Crockford's base32: digits and capitals without I, L, O and U (no look-alikes, no accidental
/// words).
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

impl RoomCode {
    /// A fresh code from the thread-local CSPRNG: 40 bits, so guessing one of a million rooms
    /// takes about a million tries (and failed joins are rate-limited).
    pub fn random() -> Self {
        let mut code = [0u8; 8];
        for c in &mut code {
            *c = CROCKFORD[rand::random_range(0..CROCKFORD.len())];
        }
        Self(code)
    }

    /// Forgiving parse: any case, spaces and dashes anywhere, O read as 0, I and L as 1.
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let invalid = Invalid("A room code has 8 letters and digits, like ABCD-EFGH.");
        let mut code = [0u8; 8];
        let mut n = 0;
        for c in input.chars() {
            let c = match c.to_ascii_uppercase() {
                '-' | '–' | '_' => continue,
                c if c.is_whitespace() => continue,
                'O' => '0',
                'I' | 'L' => '1',
                c => c,
            };
            if !c.is_ascii() || !CROCKFORD.contains(&(c as u8)) || n == code.len() {
                return Err(invalid);
            }
            code[n] = c as u8;
            n += 1;
        }
        if n != code.len() {
            return Err(invalid);
        }
        Ok(Self(code))
    }

    /// `ABCD-EFGH`: the one spelling used in URLs, pages and the database.
    pub fn canonical(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for RoomCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The bytes are always from CROCKFORD, so they are ASCII.
        let s = std::str::from_utf8(&self.0).map_err(|_| fmt::Error)?;
        write!(f, "{}-{}", &s[..4], &s[4..])
    }
}

/// True for characters that render as nothing: whitespace, zero-width and bidi controls, BOM.
/// A text made only of these looks empty, so it counts as empty.
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(c,
            '\u{00AD}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Control characters other than newline and tab: refused, not stripped, so nothing typed is
/// silently changed (and PostgreSQL cannot store NUL in text).
fn has_forbidden_control(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
}

/// The characters that only steer bidirectional text: embeddings and overrides
/// (U+202A–U+202E), isolates (U+2066–U+2069) and marks (U+200E, U+200F, U+061C). An override
/// reorders the text after it up to the end of its paragraph, so in a name it would reverse
/// whatever the name is shown next to (`Name · natter` in `<title>`, a line of the rail), and in
/// a link's text it makes `…/\u{202E}fdp.exe` read `…/exe.pdf`. No name needs one (pages isolate
/// each name with `<bdi>`), so names refuse them all.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `text` without direction controls, for places that cannot isolate it (a `<title>`) or must
/// show it in the order typed (a link's text).
pub fn without_bidi_controls(text: &str) -> Cow<'_, str> {
    if text.contains(is_bidi_control) {
        Cow::Owned(text.chars().filter(|c| !is_bidi_control(*c)).collect())
    } else {
        Cow::Borrowed(text)
    }
}

/// A room's display name: optional, up to 80 characters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoomName(String);

impl RoomName {
    /// Most characters.
    pub const MAX: usize = 80;

    /// Empty (or invisible-only) input means "no name"; the room is then shown by its code.
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let name = input.trim();
        if has_forbidden_control(name) || name.contains(['\n', '\t']) {
            return Err(Invalid(
                "A room name is one line of text without control characters.",
            ));
        }
        if name.chars().any(is_bidi_control) {
            return Err(Invalid(
                "A room name cannot contain text direction controls (such as U+202E or U+200F): \
                 they would reorder the text around it.",
            ));
        }
        if name.chars().count() > Self::MAX {
            return Err(Invalid("A room name has at most 80 characters."));
        }
        if name.chars().all(is_invisible) {
            return Ok(Self::default());
        }
        Ok(Self(name.to_string()))
    }

    /// The name, trimmed (empty: none).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A room's topic, shown under its name: optional, one line of up to 200 characters. Line
/// breaks and other control characters are taken out (a pasted paragraph becomes one line);
/// text direction controls are refused, as in a name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoomTopic(String);

impl RoomTopic {
    /// Most characters.
    pub const MAX: usize = 200;

    /// Empty (or invisible-only) input means "no topic".
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let line: String = input
            .chars()
            .map(|c| if c == '\n' || c == '\t' { ' ' } else { c })
            .filter(|c| !c.is_control())
            .collect();
        let topic = line.trim();
        if topic.chars().any(is_bidi_control) {
            return Err(Invalid(
                "A topic cannot contain text direction controls (such as U+202E or U+200F): \
                 they would reorder the text around it.",
            ));
        }
        if topic.chars().count() > Self::MAX {
            return Err(Invalid("A topic has at most 200 characters."));
        }
        if topic.chars().all(is_invisible) {
            return Ok(Self::default());
        }
        Ok(Self(topic.to_string()))
    }

    /// The topic, trimmed (empty: none).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The label a person gives an API token ("deploy bot"), so they can tell their tokens apart on
/// the profile page and revoke the right one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenName(String);

impl TokenName {
    /// Most characters.
    pub const MAX: usize = 60;

    /// One line of 1–60 characters, surrounding spaces forgiven, something visible in it.
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let name = input.trim();
        if has_forbidden_control(name) || name.contains(['\n', '\t']) {
            return Err(Invalid(
                "A token name is one line of text without control characters.",
            ));
        }
        if name.chars().any(is_bidi_control) {
            return Err(Invalid(
                "A token name cannot contain text direction controls (such as U+202E or U+200F): \
                 they would reorder the text around it.",
            ));
        }
        if name.chars().all(is_invisible) {
            return Err(Invalid("Give the token a name, such as “deploy bot”."));
        }
        if name.chars().count() > Self::MAX {
            return Err(Invalid("A token name has at most 60 characters."));
        }
        Ok(Self(name.to_string()))
    }

    /// The name, trimmed.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A chat message's text (DESIGN.md §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody(String);

impl MessageBody {
    /// Most Unicode scalar values.
    pub const MAX: usize = 4000;

    /// CRLF and CR become LF, the ends are trimmed, and the result must hold 1–4000 Unicode
    /// scalar values, something visible, and no control characters but LF and TAB.
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let text = input.replace("\r\n", "\n").replace('\r', "\n");
        let text = text.trim();
        if has_forbidden_control(text) {
            return Err(Invalid(
                "The message contains control characters (such as NUL) that cannot be sent.",
            ));
        }
        if text.chars().all(is_invisible) {
            return Err(Invalid("Write something first: the message is empty."));
        }
        if text.chars().count() > Self::MAX {
            return Err(Invalid("A message has at most 4000 characters."));
        }
        Ok(Self(text.to_string()))
    }

    /// The text of a message that carries files: as `parse`, but it may be empty.
    pub fn parse_caption(input: &str) -> Result<Self, Invalid> {
        match input.chars().all(is_invisible) {
            true => Ok(Self(String::new())),
            false => Self::parse(input),
        }
    }

    /// The text as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text as stored, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// Where to go after signing in: only a local absolute path, never another site.
pub fn safe_return_path(input: &str) -> Option<String> {
    let ok = input.starts_with('/')
        && !input.starts_with("//")
        && !input.contains('\\')
        && input.len() <= 512
        && !input.chars().any(|c| c.is_control() || c.is_whitespace())
        && !input.starts_with("/auth/");
    ok.then(|| input.to_string())
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_topic_is_one_line_without_controls_and_at_most_200_characters() {
        assert_eq!(
            RoomTopic::parse("  plans\r\nfor\u{0}  friday ")
                .unwrap()
                .as_str(),
            "plans for  friday"
        );
        assert_eq!(RoomTopic::parse(" \u{200B} ").unwrap().as_str(), "");
        assert!(RoomTopic::parse("a\u{202E}b").is_err());
        assert!(RoomTopic::parse(&"é".repeat(200)).is_ok());
        assert!(RoomTopic::parse(&"é".repeat(201)).is_err());
        assert_eq!(
            RoomTopic::parse("<b>&amp;</b>").unwrap().as_str(),
            "<b>&amp;</b>"
        );
    }
    use super::*;

    #[test]
    fn usernames_follow_the_rules() {
        assert_eq!(
            Username::parse("  Ada_L.ove-1 ").unwrap().as_str(),
            "Ada_L.ove-1"
        );
        assert_eq!(Username::parse("Ada").unwrap().key(), "ada");
        for bad in [
            "",
            "ab",
            &"a".repeat(25),
            "ada lovelace",
            "ädä",
            ".ada",
            "-ada",
            "a<b>",
            "ad\0a",
            "ｆｕｌｌ",
            "ada\u{202e}",
            "\u{2066}ada\u{2069}",
            "ada\u{200f}",
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?} should be refused");
        }
        for reserved in ["admin", "Admin", "ADMIN", "root", "Natter", "support"] {
            assert_eq!(
                Username::parse(reserved).unwrap_err().0,
                "That name is reserved. Please choose another."
            );
        }
        assert!(Username::parse(&"a".repeat(24)).is_ok());
        // The Turkish dotted capital I is not ASCII: refused rather than folded surprisingly.
        assert!(Username::parse("İstanbul").is_err());
    }

    #[test]
    fn room_codes_are_forgiving_and_canonical() {
        let code = RoomCode::parse("abcd-efgh").unwrap();
        assert_eq!(code.to_string(), "ABCD-EFGH");
        assert_eq!(RoomCode::parse(" ab cd ef gh ").unwrap(), code);
        assert_eq!(RoomCode::parse("ABCDEFGH").unwrap(), code);
        assert_eq!(
            RoomCode::parse("o0il-0000").unwrap().to_string(),
            "0011-0000"
        );
        for bad in [
            "",
            "ABCD-EFG",
            "ABCD-EFGHJ",
            "ABCD-EFGU",
            "ABCD/EFGH",
            "../../etc/passwd",
            "%2e%2e%2f",
            "ＡＢＣＤ-ＥＦＧＨ",
        ] {
            assert!(RoomCode::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn random_room_codes_use_the_alphabet_and_differ() {
        let codes: std::collections::HashSet<_> = (0..2000).map(|_| RoomCode::random()).collect();
        assert!(
            codes.len() > 1990,
            "codes repeat too often: {}",
            codes.len()
        );
        for code in &codes {
            let text = code.to_string();
            assert_eq!(RoomCode::parse(&text).unwrap(), *code);
            assert!(
                text.chars()
                    .all(|c| c == '-' || CROCKFORD.contains(&(c as u8))),
                "{text}"
            );
            assert!(!text.contains(['I', 'L', 'O', 'U']));
        }
    }

    #[test]
    fn message_bodies_are_normalised_and_bounded() {
        assert_eq!(
            MessageBody::parse("  hi\r\nthere\r ").unwrap().as_str(),
            "hi\nthere"
        );
        assert_eq!(MessageBody::parse("a\tb").unwrap().as_str(), "a\tb");
        assert!(MessageBody::parse(&"é".repeat(4000)).is_ok());
        assert!(MessageBody::parse(&"é".repeat(4001)).is_err());
        // 4000 emoji are 4000 scalar values (8000 UTF-16 units): allowed.
        assert!(MessageBody::parse(&"😀".repeat(4000)).is_ok());
        for empty in [
            "", "   ", "\t\t\t", "\r\n\r\n", "\u{200b}", "\u{feff}", "\u{202e}",
        ] {
            assert!(
                MessageBody::parse(empty).is_err(),
                "{empty:?} should be refused"
            );
        }
        for control in ["a\0b", "a\u{7}b", "a\u{1b}[31mb", "a\u{85}b"] {
            assert!(
                MessageBody::parse(control).is_err(),
                "{control:?} should be refused"
            );
        }
        assert_eq!(
            MessageBody::parse("<script>alert(1)</script>")
                .unwrap()
                .as_str(),
            "<script>alert(1)</script>"
        );
        assert!(MessageBody::parse("\u{202e}abc").is_ok());
    }

    #[test]
    fn room_names_are_optional_single_lines() {
        assert_eq!(RoomName::parse("   ").unwrap().as_str(), "");
        assert_eq!(RoomName::parse("\u{200b}").unwrap().as_str(), "");
        assert_eq!(
            RoomName::parse(" Book club ").unwrap().as_str(),
            "Book club"
        );
        assert!(RoomName::parse("a\nb").is_err());
        assert!(RoomName::parse("a\0b").is_err());
        assert!(RoomName::parse(&"x".repeat(81)).is_err());
        // Direction controls would reverse what the name is shown next to.
        for bidi in [
            "\u{202e}",
            "abc\u{202e}fdp.exe",
            "a\u{202a}b",
            "a\u{2066}b\u{2069}",
            "\u{2068}x",
            "x\u{200f}",
            "x\u{200e}",
            "\u{061c}x",
        ] {
            assert!(
                RoomName::parse(bidi)
                    .unwrap_err()
                    .0
                    .contains("direction controls"),
                "{bidi:?} should be refused"
            );
            assert!(
                TokenName::parse(bidi).is_err(),
                "{bidi:?} should be refused"
            );
        }
        // Right-to-left names are fine.
        assert_eq!(
            RoomName::parse("מועדון ספר 2").unwrap().as_str(),
            "מועדון ספר 2"
        );
        assert!(RoomName::parse("نادي الكتاب").is_ok());
    }

    #[test]
    fn token_names_are_short_single_lines() {
        assert_eq!(
            TokenName::parse("  deploy bot ").unwrap().as_str(),
            "deploy bot"
        );
        assert!(TokenName::parse(&"é".repeat(60)).is_ok());
        assert!(TokenName::parse(&"é".repeat(61)).is_err());
        assert_eq!(
            TokenName::parse("<script>alert(1)</script>")
                .unwrap()
                .as_str(),
            "<script>alert(1)</script>"
        );
        for bad in [
            "", "   ", "\u{200b}", "\u{feff}", "a\nb", "a\tb", "a\0b", "a\u{1b}b",
        ] {
            assert!(TokenName::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn emails_are_checked_lightly() {
        assert_eq!(
            Email::parse(" Ada@Example.org ").unwrap().as_str(),
            "ada@example.org"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.org",
            "ada@example",
            "a b@example.org",
            "a@b@c.org",
            "\"><img@x.org",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn return_paths_stay_on_this_site() {
        assert_eq!(
            safe_return_path("/rooms/ABCD-EFGH").as_deref(),
            Some("/rooms/ABCD-EFGH")
        );
        for bad in [
            "//evil.org",
            "https://evil.org",
            "/\\evil.org",
            "javascript:alert(1)",
            "/a b",
            "/auth/logout",
        ] {
            assert!(safe_return_path(bad).is_none(), "{bad:?}");
        }
    }
}
