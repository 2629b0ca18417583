//! Times as people read them: `<time>` elements with the UTC instant for machines and
//! `assets/js/times.js` (which shows it in the reader's zone), and a readable UTC fallback without JS.

use maud::{Markup, html};

/// `<time>` with the UTC instant for machines (and `times.js`, which shows it in local time) and
/// a readable UTC fallback for people without JavaScript.
pub fn time(ms: i64, short: bool) -> Markup {
    use std::fmt::Write;
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return html! {};
    };
    // Written by hand: a room page has fifty of these, and `time`'s formatter interprets its
    // format descriptions at run time.
    let (y, mo, d) = (at.year(), u8::from(at.month()), at.day());
    let (h, mi, sec, milli) = (at.hour(), at.minute(), at.second(), at.millisecond());
    let mut iso = String::with_capacity(24);
    let _ = write!(
        iso,
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}.{milli:03}Z"
    );
    const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let weekday = WEEKDAYS[usize::from(at.weekday().number_days_from_monday())];
    let month = MONTHS[usize::from(mo - 1)];
    let mut full = String::with_capacity(28);
    let _ = write!(full, "{weekday} {d} {month} {y}, {h:02}:{mi:02} UTC");
    let mut hm = String::with_capacity(5);
    let _ = write!(hm, "{h:02}:{mi:02}");
    let shown = if short { &hm } else { &full };
    html! { time datetime=(iso) title=(full) data-style=(if short { "short" } else { "long" }) { (shown) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_machine_readable_and_short_for_people() {
        // 2026-11-25 06:47:03.214 UTC, a Wednesday.
        let ms = 1_795_589_223_214;
        let short = time(ms, true).into_string();
        assert_eq!(
            short,
            r#"<time datetime="2026-11-25T06:47:03.214Z" title="Wed 25 Nov 2026, 06:47 UTC" data-style="short">06:47</time>"#
        );
        assert!(
            time(ms, false)
                .into_string()
                .ends_with(">Wed 25 Nov 2026, 06:47 UTC</time>")
        );
        assert_eq!(time(i64::MAX, true).into_string(), "");
    }
}
