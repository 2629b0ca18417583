//! What a file is, judged from its first bytes only. A name and a Content-Type are whatever the
//! uploader chose, so an `x.png` holding HTML, or an upload labelled `image/png` that is an SVG,
//! must not be shown inline: natter renders inline only the four raster formats its thumbnailer
//! re-encodes, and serves everything else (SVG, HTML and scripts included) as a download.

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sniffed {
    /// The Content-Type natter serves the file with (and stores next to it).
    pub mime: &'static str,
    /// A short human name for the type, shown next to a download link.
    pub label: &'static str,
    /// Whether natter shows it inline (through a re-encoded thumbnail), not only as a download.
    pub image: bool,
}

/// How many leading bytes `sniff` looks at.
pub const SNIFF_LEN: usize = 512;

const PNG: Sniffed = Sniffed {
    mime: "image/png",
    label: "PNG image",
    image: true,
};
const JPEG: Sniffed = Sniffed {
    mime: "image/jpeg",
    label: "JPEG image",
    image: true,
};
const GIF: Sniffed = Sniffed {
    mime: "image/gif",
    label: "GIF image",
    image: true,
};
const WEBP: Sniffed = Sniffed {
    mime: "image/webp",
    label: "WebP image",
    image: true,
};
const PDF: Sniffed = Sniffed {
    mime: "application/pdf",
    label: "PDF document",
    image: false,
};
const ZIP: Sniffed = Sniffed {
    mime: "application/zip",
    label: "ZIP archive",
    image: false,
};
const GZIP: Sniffed = Sniffed {
    mime: "application/gzip",
    label: "gzip archive",
    image: false,
};
const TEXT: Sniffed = Sniffed {
    mime: "text/plain; charset=utf-8",
    label: "Text",
    image: false,
};
const FILE: Sniffed = Sniffed {
    mime: "application/octet-stream",
    label: "File",
    image: false,
};

/// The type of a file from its first bytes (pass at least `SNIFF_LEN` of them when the file has
/// that many; more are ignored). Anything not recognised is an opaque download.
pub fn sniff(head: &[u8]) -> Sniffed {
    let head = &head[..head.len().min(SNIFF_LEN)];
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        PNG
    } else if head.starts_with(b"\xFF\xD8\xFF") {
        JPEG
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        GIF
    } else if is_webp(head) {
        WEBP
    } else if head.starts_with(b"%PDF-") {
        PDF
    } else if head.starts_with(b"PK\x03\x04") {
        ZIP
    } else if head.starts_with(b"\x1F\x8B") {
        GZIP
    } else if is_text(head) {
        TEXT
    } else {
        FILE
    }
}

/// A RIFF container (`RIFF`, a 4-byte size) whose form type is `WEBP`.
fn is_webp(head: &[u8]) -> bool {
    head.len() >= 12 && head.starts_with(b"RIFF") && &head[8..12] == b"WEBP"
}

/// UTF-8 without the control bytes that mark binary data. A full-length head may end inside a
/// multi-byte character (the cut is ours, not the file's); a shorter head is the whole file, so
/// there the same cut means the file is not UTF-8.
fn is_text(head: &[u8]) -> bool {
    let valid = match std::str::from_utf8(head) {
        Ok(_) => true,
        // `error_len() == None`: the only fault is a character left unfinished by the end.
        Err(error) => error.error_len().is_none() && head.len() == SNIFF_LEN,
    };
    // An empty file is not text, just an empty download.
    !head.is_empty() && valid && !head.iter().any(|&b| is_binary_control(b))
}

/// The C0 controls that do not occur in text (every one but tab, line feed, form feed and
/// carriage return), NUL included.
fn is_binary_control(byte: u8) -> bool {
    byte < 0x20 && !matches!(byte, b'\t' | b'\n' | b'\x0C' | b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_inline_image_formats_are_images() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), PNG);
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0\0\x10JFIF\0"), JPEG);
        assert_eq!(sniff(b"GIF87a\x01\0\x01\0"), GIF);
        assert_eq!(sniff(b"GIF89a\x01\0\x01\0"), GIF);
        assert_eq!(sniff(b"RIFF\x24\0\0\0WEBPVP8L"), WEBP);
        for sniffed in [PNG, JPEG, GIF, WEBP] {
            assert!(sniffed.image);
            assert!(sniffed.mime.starts_with("image/"));
        }
    }

    #[test]
    fn documents_and_archives_are_downloads() {
        assert_eq!(sniff(b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n"), PDF);
        assert_eq!(sniff(b"PK\x03\x04\x14\0\0\0\x08\0"), ZIP);
        assert_eq!(sniff(b"\x1F\x8B\x08\0\0\0\0\0"), GZIP);
        for sniffed in [PDF, ZIP, GZIP] {
            assert!(!sniffed.image);
        }
    }

    #[test]
    fn a_riff_that_is_not_webp_is_a_file() {
        assert_eq!(sniff(b"RIFF\x24\0\0\0WAVEfmt "), FILE);
        assert_eq!(sniff(b"RIFF\x24\0\0\0WEB"), FILE);
    }

    #[test]
    fn markup_and_scripts_are_plain_text_never_images() {
        let svg = b"<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\">\n\
                    <script>alert(document.cookie)</script></svg>\n";
        let html = b"<!doctype html>\r\n<html><body onload=\"alert(1)\">hi</body></html>";
        let script = b"fetch('/auth/logout', {method: 'POST'});\n";
        for head in [&svg[..], &html[..], &script[..]] {
            let sniffed = sniff(head);
            assert_eq!(sniffed, TEXT);
            assert!(!sniffed.image);
        }
    }

    #[test]
    fn the_content_decides_whatever_the_name_claims() {
        // `sniff` never sees a name: a PNG uploaded as `x.html` and an HTML page uploaded as
        // `photo.png` (with `Content-Type: image/png`) are judged by their bytes alone.
        let png_named_html = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        let html_named_png = b"<html><img src=x onerror=alert(1)></html>";
        assert_eq!(sniff(png_named_html), PNG);
        assert_eq!(sniff(html_named_png), TEXT);
        // A signature must be at the start: an image's magic later in a text is just text.
        assert_eq!(sniff(b"see \x89PNG"), FILE);
        assert_eq!(sniff(b"hello GIF89a"), TEXT);
    }

    #[test]
    fn utf8_text_with_tabs_and_line_breaks_is_text() {
        assert_eq!(sniff(b"name\tcount\r\nkiwi\t3\n\x0Cnext page"), TEXT);
        assert_eq!(sniff("日本語のテキスト 👩‍👩‍👧‍👦\n".as_bytes()), TEXT);
        assert_eq!(sniff("\u{FEFF}with a byte order mark".as_bytes()), TEXT);
        assert_eq!(sniff(b" "), TEXT);
    }

    #[test]
    fn nul_and_other_controls_make_a_file() {
        assert_eq!(sniff(b"text\0with a NUL"), FILE);
        assert_eq!(sniff(b"\x1B[31mred\x1B[0m"), FILE);
        assert_eq!(sniff(b"\x01\x02\x03"), FILE);
        assert_eq!(sniff(b"\x7FELF\x02\x01\x01"), FILE);
    }

    #[test]
    fn invalid_utf8_is_a_file() {
        assert_eq!(sniff(b"caf\xE9 latin-1"), FILE);
        assert_eq!(sniff(b"\xC3\x28"), FILE);
        assert_eq!(sniff(b"\xFF\xFE\0h\0i"), FILE);
    }

    #[test]
    fn the_empty_file_is_a_file() {
        assert_eq!(sniff(b""), FILE);
    }

    #[test]
    fn a_character_cut_by_the_end_of_a_full_head_is_still_text() {
        // 511 ASCII bytes and the first byte of "é" (C3 A9): the head ends mid-character.
        let mut head = vec![b'a'; SNIFF_LEN - 1];
        head.push(0xC3);
        assert_eq!(sniff(&head), TEXT);
        // Three bytes of a four-byte emoji.
        let mut head = vec![b'a'; SNIFF_LEN - 3];
        head.extend_from_slice(&"😀".as_bytes()[..3]);
        assert_eq!(sniff(&head), TEXT);
    }

    #[test]
    fn a_cut_character_is_not_text_in_a_short_file_or_mid_head() {
        // The whole file is 2 bytes: nothing was cut, so a lone lead byte is broken UTF-8.
        assert_eq!(sniff(b"a\xC3"), FILE);
        // Broken UTF-8 before the end of a full head is broken whatever follows.
        let mut head = vec![b'a'; SNIFF_LEN];
        head[100] = 0xC3;
        assert_eq!(sniff(&head), FILE);
    }

    #[test]
    fn only_the_first_sniff_len_bytes_count() {
        // A NUL after the head does not turn a text into a file, and the cut at SNIFF_LEN
        // may split a character.
        let mut long = vec![b'a'; SNIFF_LEN - 1];
        long.extend_from_slice("é".as_bytes());
        long.push(0);
        assert_eq!(sniff(&long), TEXT);
    }
}
