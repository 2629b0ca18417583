//! The hostile-inputs fixture read as the strings it stands for, for tests that try every one.

/// The inputs of the hostile-inputs fixture (a copy of `shared/fixtures/hostile-inputs.txt`) as
/// real strings (`\n`, `\t`, `\r`, `\uXXXX` decoded), without comments.
///
/// The fixture annotates some lines, and the annotations mean more than "drop the brackets":
/// `value (explanation)` is the value; ` (only spaces)` is a space (the value is the line's
/// leading blank); `a / b / c (…)` is three inputs; and `AAA… (4000 …) / (4001 …)` is one run
/// of `A`s per bracketed length.
pub fn hostile_inputs() -> Vec<String> {
    include_str!("hostile-inputs.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .flat_map(hostile_line)
        .collect()
}

/// The inputs one fixture line stands for.
fn hostile_line(line: &str) -> Vec<String> {
    let (value, note) = match line.find(" (") {
        Some(i) if line.ends_with(')') => (&line[..i], &line[i + 1..]),
        _ => (line, ""),
    };
    if value.is_empty() {
        // " (only spaces)": the separator's space was the value.
        return vec![" ".to_string()];
    }
    if let Some(run) = value.strip_suffix('…') {
        // "AAAA… (4000 characters: …) / (4001 characters: …)": the run, once per length.
        let unit = run.chars().next().unwrap_or('A');
        return note
            .split('(')
            .filter_map(|part| part.split(|c: char| !c.is_ascii_digit()).next())
            .filter_map(|digits| digits.parse::<usize>().ok())
            .map(|n| unit.to_string().repeat(n))
            .collect();
    }
    if value.contains(" / ") {
        // "admin / Admin / ADMIN": each spelling is its own input.
        return value.split(" / ").map(decode_escapes).collect();
    }
    vec![decode_escapes(value)]
}

fn decode_escapes(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('u') => {
                let hex: String = (0..4).filter_map(|_| chars.next()).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(c) => out.push(c),
                    None => out.push_str(&format!("\\u{hex}")),
                }
            }
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}
