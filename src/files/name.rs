//! Filenames as people typed them, made safe to keep, to show and to send back. natter stores and
//! finds a file by its id, so a name is only ever shown: it keeps the characters people chose
//! (CJK, emoji, even `<script>`, which the views escape) and loses only what could mislead or
//! break something: paths, control characters, direction overrides, hidden-file dots.

use crate::domain::is_bidi_control;

/// The longest name kept, in characters.
pub const MAX_NAME_CHARS: usize = 120;

/// The longest part after the last dot still treated as an extension when a long name is cut: a
/// longer one is more likely part of the name than a type, and cut with it.
const MAX_EXTENSION_CHARS: usize = 16;

/// The name shown for a file whose name has nothing left once cleaned.
const FALLBACK_NAME: &str = "file";

/// A name fit to store and show: the last path component only (browsers and some clients send
/// `C:\Users\…\photo.jpg`; `../../etc/passwd` must not read as a path), no control or bidi
/// characters (an override makes `…\u{202E}fdp.exe` read `…exe.pdf`), no leading dots or spaces
/// (no hidden files, no `..`), no trailing ones (Windows drops them when saving, changing the
/// type), at most `MAX_NAME_CHARS` characters with the extension kept. Never empty.
pub fn clean_name(raw: &str) -> String {
    // `rsplit` always yields at least one piece; the fallback only satisfies the type.
    let last = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let visible: String = last
        .chars()
        .filter(|&c| !c.is_control() && !is_bidi_control(c))
        .collect();
    let trimmed = visible
        .trim_start_matches(['.', ' '])
        .trim_end_matches(['.', ' ']);
    let capped = cap_length(trimmed);
    if capped.is_empty() {
        FALLBACK_NAME.to_owned()
    } else {
        capped
    }
}

/// `name` cut to `MAX_NAME_CHARS` characters, cutting the stem so the extension (what the file
/// opens with once downloaded) survives. Counts and cuts whole characters, never bytes.
fn cap_length(name: &str) -> String {
    if name.chars().count() <= MAX_NAME_CHARS {
        return name.to_owned();
    }
    let extension = name
        .rsplit_once('.')
        .map(|(_, extension)| extension)
        .filter(|extension| extension.chars().count() <= MAX_EXTENSION_CHARS);
    match extension {
        Some(extension) => {
            let stem_chars = MAX_NAME_CHARS - 1 - extension.chars().count();
            let stem: String = name.chars().take(stem_chars).collect();
            // The cut may leave the stem ending in spaces or dots (`a . .png`); drop them as
            // `clean_name` drops them at the end of a name.
            format!("{}.{extension}", stem.trim_end_matches(['.', ' ']))
        }
        None => {
            let cut: String = name.chars().take(MAX_NAME_CHARS).collect();
            cut.trim_end_matches(['.', ' ']).to_owned()
        }
    }
}

/// Whether a browser shows a served file in the page or saves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Shown in place: natter's own re-encoded thumbnails.
    Inline,
    /// Saved as a download: everything a user uploaded as it came.
    Attachment,
}

/// The `Content-Disposition` value that makes a browser save or show a file under `name`
/// (RFC 6266): `filename*` (RFC 5987) carries the name exactly, percent-encoded UTF-8; `filename`
/// is an ASCII stand-in for clients that ignore `filename*`. Always visible ASCII, so it is a
/// valid header value whatever `name` holds.
pub fn content_disposition(disposition: Disposition, name: &str) -> String {
    let kind = match disposition {
        Disposition::Inline => "inline",
        Disposition::Attachment => "attachment",
    };
    format!(
        "{kind}; filename=\"{}\"; filename*=UTF-8''{}",
        ascii_fallback(name),
        percent_encode(name, is_attr_char)
    )
}

/// `name` as one segment of a URL path, for `/files/{id}/{name}` links: the server finds files by
/// id, the name is there so a saved link or a download reads well. Nothing in it can end the
/// segment (`/`), start a query (`?`) or fragment (`#`), or read as an escape (`%`); the
/// characters kept plainly are those RFC 5987 and RFC 3986 both allow.
pub fn url_segment(name: &str) -> String {
    // A segment of only dots is a dot-segment that browsers resolve away (`/files/7/..` is
    // `/files/`), escaped (`%2E`) or not, so it is replaced, as `clean_name` would.
    if name.trim_start_matches('.').is_empty() {
        return FALLBACK_NAME.to_owned();
    }
    percent_encode(name, is_segment_char)
}

/// `name` with each character a quoted-string cannot carry plainly, or that a client might misread
/// (non-ASCII, controls, `"`, `\`, `;`), replaced by `_`.
fn ascii_fallback(name: &str) -> String {
    name.chars()
        .map(|c| {
            let plain = c.is_ascii() && !c.is_ascii_control() && !matches!(c, '"' | '\\' | ';');
            if plain { c } else { '_' }
        })
        .collect()
}

/// `text` as UTF-8 bytes, each byte `keep` refuses written `%XX`.
fn percent_encode(text: &str, keep: fn(u8) -> bool) -> String {
    let mut encoded = String::with_capacity(text.len());
    for &byte in text.as_bytes() {
        if keep(byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// RFC 5987 `attr-char`: ALPHA / DIGIT / `!#$&+-.^_`|~`.
fn is_attr_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte)
}

/// The attr-chars that RFC 3986 also allows plainly in a path segment: all but `#` (it would start
/// the fragment) and `^`, `` ` ``, `|` (not URI characters at all; strict parsers refuse them).
fn is_segment_char(byte: u8) -> bool {
    is_attr_char(byte) && !matches!(byte, b'#' | b'^' | b'`' | b'|')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names an uploader controls, beyond the shared fixture: paths, hidden files, overrides,
    /// controls, lengths.
    const TRICKY: &[&str] = &[
        "",
        ".",
        "..",
        "...",
        "   ",
        ". . .",
        "/",
        "\\",
        "a/",
        "../../etc/passwd",
        "..\\..\\Windows\\system32\\drivers\\etc\\hosts",
        "C:\\Users\\ana\\Pictures\\photo.jpg",
        "/home/ana/.ssh/id_ed25519",
        ".htaccess",
        "invoice\u{202E}fdp.exe",
        "\u{2066}name\u{2069}.txt",
        "a\u{0}b\u{7}c\u{1B}[31m\u{7F}\u{85}.txt",
        "line\nbreak\r\n.txt",
        "name. . .",
        "résumé \"final\"; v2.pdf",
        "報告書 2024 👩‍👩‍👧‍👦.xlsx",
        "<script>alert(1)<\\script>.html",
        "100% done?#top.png",
        "e\u{301}.txt",
    ];

    /// The hostile-input fixture (one input per line, `\n`, `\t`, `\r`, `\u` and four hex digits written as
    /// escapes): the repository's copy of the shared one, which the integration tests use too.
    fn hostile_inputs() -> Vec<String> {
        include_str!("../../tests/common/hostile-inputs.txt")
            .lines()
            .filter(|line| !line.starts_with('#'))
            // Each line both as written and with its escapes turned into the characters.
            .flat_map(|line| [line.to_owned(), unescape(line)])
            .collect()
    }

    /// `\n`, `\r`, `\t` and `\u` with four hex digits as the characters they name; anything else as written.
    fn unescape(line: &str) -> String {
        let mut out = String::new();
        let mut rest = line;
        while let Some(at) = rest.find('\\') {
            out.push_str(&rest[..at]);
            rest = &rest[at..];
            let escaped = match rest.as_bytes().get(1) {
                Some(b'n') => Some(('\n', 2)),
                Some(b'r') => Some(('\r', 2)),
                Some(b't') => Some(('\t', 2)),
                Some(b'u') => rest
                    .get(2..6)
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .and_then(char::from_u32)
                    .map(|c| (c, 6)),
                _ => None,
            };
            let (c, len) = escaped.unwrap_or(('\\', 1));
            out.push(c);
            rest = &rest[len..];
        }
        out.push_str(rest);
        out
    }

    fn all_inputs() -> Vec<String> {
        let long = [
            "a".repeat(500),
            format!("{}.jpeg", "x".repeat(300)),
            format!("{}.png", "日".repeat(200)),
            format!("{}.gif", "👩‍👩‍👧‍👦".repeat(40)),
            format!("{}.{}", "n".repeat(200), "e".repeat(17)),
            format!("{}.txt", "a .".repeat(100)),
        ];
        let mut inputs: Vec<String> = TRICKY.iter().map(|s| (*s).to_owned()).collect();
        inputs.extend(long);
        inputs.extend(hostile_inputs());
        inputs
    }

    /// `%XX` escapes back to bytes, for checking that an encoding loses nothing.
    fn percent_decode(encoded: &str) -> String {
        let bytes = encoded.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_shared_hostile_inputs_are_read_and_unescaped() {
        assert_eq!(unescape(r"a\u0000b\nc\td\re\q"), "a\0b\nc\td\re\\q");
        assert_eq!(unescape(r"\u202e (x)"), "\u{202E} (x)");
        assert_eq!(unescape(r"bad \uZZZZ end\"), r"bad \uZZZZ end\");
        let inputs = hostile_inputs();
        if !inputs.is_empty() {
            assert!(
                inputs.iter().any(|input| input.contains('\0')),
                "a NUL line is unescaped"
            );
            assert!(inputs.iter().any(|input| input.contains('\u{202E}')));
        }
    }

    #[test]
    fn a_clean_name_has_no_path_control_or_bidi_character_and_is_never_empty() {
        for input in all_inputs() {
            let name = clean_name(&input);
            assert!(!name.is_empty(), "{input:?}");
            assert!(!name.contains(['/', '\\']), "{input:?} -> {name:?}");
            assert!(
                !name.chars().any(|c| c.is_control() || is_bidi_control(c)),
                "{input:?} -> {name:?}"
            );
            assert!(!name.starts_with(['.', ' ']), "{input:?} -> {name:?}");
            assert!(!name.ends_with(['.', ' ']), "{input:?} -> {name:?}");
            assert!(
                name.chars().count() <= MAX_NAME_CHARS,
                "{input:?} -> {name:?}"
            );
        }
    }

    #[test]
    fn cleaning_a_clean_name_changes_nothing() {
        for input in all_inputs() {
            let once = clean_name(&input);
            assert_eq!(clean_name(&once), once, "{input:?}");
        }
    }

    #[test]
    fn only_the_last_path_component_is_kept() {
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(
            clean_name("C:\\Users\\ana\\Pictures\\photo.jpg"),
            "photo.jpg"
        );
        assert_eq!(clean_name("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(clean_name("a/b\\c/d.txt"), "d.txt");
        assert_eq!(clean_name("folder/"), "file");
    }

    #[test]
    fn hidden_files_dot_segments_and_blank_names_do_not_survive() {
        assert_eq!(clean_name(".htaccess"), "htaccess");
        assert_eq!(clean_name("..."), "file");
        assert_eq!(clean_name(". . .name"), "name");
        assert_eq!(clean_name("  report.pdf  "), "report.pdf");
        assert_eq!(clean_name("report.pdf. . ."), "report.pdf");
        assert_eq!(clean_name(""), "file");
        assert_eq!(clean_name("\u{0}\u{202E}"), "file");
    }

    #[test]
    fn controls_and_direction_overrides_are_removed() {
        assert_eq!(clean_name("invoice\u{202E}fdp.exe"), "invoicefdp.exe");
        assert_eq!(clean_name("a\u{0}b\tc\nd\u{85}e\u{7F}.txt"), "abcde.txt");
        assert_eq!(clean_name("\u{2067}x\u{2069}.png"), "x.png");
    }

    #[test]
    fn other_characters_are_kept_as_typed() {
        for name in [
            "報告書 2024 👩‍👩‍👧‍👦.xlsx",
            "<b>bold</b>",
            "e\u{301} \u{200B}.txt",
            "%2e%2e%2f",
        ] {
            let expected = name.rsplit('/').next().unwrap_or(name);
            assert_eq!(clean_name(name), expected);
        }
    }

    #[test]
    fn a_long_name_loses_the_end_of_its_stem_and_keeps_its_extension() {
        let name = clean_name(&format!("{}.jpeg", "x".repeat(300)));
        assert_eq!(name.chars().count(), MAX_NAME_CHARS);
        assert!(name.ends_with("xxx.jpeg"));
        // Multi-byte and multi-scalar characters are counted and cut whole.
        let name = clean_name(&format!("{}.png", "日".repeat(200)));
        assert_eq!(name, format!("{}.png", "日".repeat(MAX_NAME_CHARS - 4)));
        let name = clean_name(&"😀".repeat(200));
        assert_eq!(name, "😀".repeat(MAX_NAME_CHARS));
    }

    #[test]
    fn an_extension_longer_than_sixteen_characters_is_cut_like_the_rest() {
        let name = clean_name(&format!("{}.{}", "n".repeat(200), "e".repeat(17)));
        assert_eq!(name, "n".repeat(MAX_NAME_CHARS));
        let name = clean_name(&format!("{}.{}", "n".repeat(200), "e".repeat(16)));
        assert_eq!(
            name,
            format!("{}.{}", "n".repeat(MAX_NAME_CHARS - 17), "e".repeat(16))
        );
    }

    #[test]
    fn a_cut_stem_does_not_end_in_a_space_or_dot() {
        let name = clean_name(&format!("{}.txt", "a .".repeat(100)));
        assert!(name.ends_with("a.txt"), "{name:?}");
    }

    #[test]
    fn header_values_are_visible_ascii_that_poem_accepts() {
        for input in all_inputs() {
            for disposition in [Disposition::Inline, Disposition::Attachment] {
                for name in [input.clone(), clean_name(&input)] {
                    let value = content_disposition(disposition, &name);
                    assert!(
                        value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()),
                        "{value:?}"
                    );
                    assert!(
                        poem::http::HeaderValue::from_str(&value).is_ok(),
                        "{value:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_header_carries_the_exact_name_and_a_safe_ascii_fallback() {
        assert_eq!(
            content_disposition(Disposition::Attachment, "résumé \"final\"; v2.pdf"),
            "attachment; filename=\"r_sum_ _final__ v2.pdf\"; \
             filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22%3B%20v2.pdf"
        );
        assert_eq!(
            content_disposition(Disposition::Inline, "photo.jpg"),
            "inline; filename=\"photo.jpg\"; filename*=UTF-8''photo.jpg"
        );
        assert_eq!(
            content_disposition(Disposition::Attachment, "a\\b\u{7}.txt"),
            "attachment; filename=\"a_b_.txt\"; filename*=UTF-8''a%5Cb%07.txt"
        );
    }

    #[test]
    fn filename_star_decodes_back_to_the_name() {
        for input in all_inputs() {
            let value = content_disposition(Disposition::Attachment, &input);
            let Some((_, encoded)) = value.split_once("filename*=UTF-8''") else {
                panic!("no filename* in {value:?}");
            };
            assert_eq!(percent_decode(encoded), input);
        }
    }

    #[test]
    fn a_url_segment_cannot_leave_its_segment() {
        for input in all_inputs() {
            let segment = url_segment(&input);
            assert!(!segment.is_empty(), "{input:?}");
            assert!(
                !segment.contains(['/', '?', '#', '\\', '^', '`', '|']),
                "{segment:?}"
            );
            assert!(segment.bytes().all(|b| b.is_ascii_graphic()), "{segment:?}");
            // Every `%` starts an escape of two hex digits.
            for (at, _) in segment.match_indices('%') {
                let hex = segment.get(at + 1..at + 3).unwrap_or("");
                assert!(
                    hex.len() == 2 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
                    "{segment:?}"
                );
            }
            if segment != "file" {
                assert_eq!(percent_decode(&segment), input);
            }
        }
    }

    #[test]
    fn a_url_segment_reads_like_the_name() {
        assert_eq!(url_segment("photo.jpg"), "photo.jpg");
        assert_eq!(
            url_segment("100% done?#top.png"),
            "100%25%20done%3F%23top.png"
        );
        assert_eq!(url_segment("日.txt"), "%E6%97%A5.txt");
        assert_eq!(url_segment("../x"), "..%2Fx");
        assert_eq!(
            url_segment("a#b^c`d|e!f$g&h+i~j"),
            "a%23b%5Ec%60d%7Ce!f$g&h+i~j"
        );
    }

    #[test]
    fn a_dot_segment_never_becomes_a_url_segment() {
        for name in ["", ".", "..", "..."] {
            assert_eq!(url_segment(name), "file");
        }
    }
}
