//! Every page as a text browser reads it: w3m (a Debian package, like lynx) shows a page without
//! CSS or JavaScript, in the order of its markup. What a person reads there, line by line: the
//! skip link, the name and the account links apart; a room's name, code and messages, each
//! under its author and time; no button that needs JavaScript; hostile text as text.
//!
//! Skips (saying why) without w3m; `NATTER_TEST_REQUIRE=w3m` makes that a failure.

use std::{
    io::Write,
    process::{Command, Stdio},
};

use crate::common::{Backend, Browser, TestApp, hostile_inputs};

/// Whether `w3m` is installed; otherwise skips (or fails when required).
fn w3m_installed() -> bool {
    crate::common::tool_installed("w3m", "-version", "w3m")
}

/// `html` as w3m shows it 100 columns wide: `w3m -dump -T text/html -cols 100`, in UTF-8
/// whatever the locale.
fn w3m(html: &str) -> String {
    let mut child = Command::new("w3m")
        .args(["-dump", "-T", "text/html", "-cols", "100"])
        .args(["-I", "UTF-8", "-O", "UTF-8"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("w3m starts");
    let mut stdin = child.stdin.take().expect("w3m's stdin");
    // Written from another thread: w3m may answer before it has read everything.
    let html = html.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(html.as_bytes()));
    let out = child.wait_with_output().expect("w3m runs");
    writer.join().expect("writer").expect("page written to w3m");
    assert!(out.status.success(), "w3m failed: {out:?}");
    String::from_utf8(out.stdout).expect("w3m writes UTF-8")
}

/// What a person reads on page `path` as `who` (status `status`).
async fn read(who: &Browser, path: &str, status: u16) -> String {
    let page = who.get(path).await;
    assert_eq!(page.status, status, "{path}: {}", page.body);
    w3m(&page.body)
}

/// The lines of a dump that hold something, without trailing blanks.
fn lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect()
}

/// The header as a person reads it: "Skip to content" alone, then "natter" alone, then for a
/// member (who has Rooms) the search box on its line and the search page's link (the phones' one),
/// then the account links (`nav`) one per line as a list.
fn assert_header(path: &str, text: &str, nav: &[&str]) {
    let lines = lines(text);
    let mut expected = vec!["Skip to content".to_string(), "natter".to_string()];
    if nav.contains(&"Rooms") {
        let search_box = lines.get(2).copied().unwrap_or_default();
        let (label, button) = search_box.split_once('[').unwrap_or_default();
        assert_eq!(label, "Search messages in my rooms", "{path}:\n{text}");
        assert!(button.ends_with("] Search"), "{path}:\n{text}");
        expected.extend([search_box.to_string(), "Search".to_string()]);
    }
    expected.extend(nav.iter().map(|item| format!("  • {item}")));
    assert_eq!(
        lines[..expected.len().min(lines.len())],
        expected,
        "{path} starts with its header, each part on its own line:\n{text}"
    );
}

/// Nothing on any page that only JavaScript makes work, nor the words of a hidden badge.
fn assert_no_script_only_text(path: &str, text: &str) {
    for words in ["Copy code", "Copy link", "@0", "0 unread"] {
        assert!(!text.contains(words), "{path} shows {words:?}:\n{text}");
    }
}

/// Whether `s` is a short time as people read it, `14:05`.
fn is_short_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 5 && b[2] == b':' && [0, 1, 3, 4].iter().all(|&i| b[i].is_ascii_digit())
}

/// Whether `s` is a full time as people read it, `Wed 25 Nov 2026, 06:47 UTC`.
fn is_full_time(s: &str) -> bool {
    let format = time::macros::format_description!(
        "[weekday repr:short] [day padding:none] [month repr:short] [year], [hour]:[minute] UTC"
    );
    time::PrimitiveDateTime::parse(s, format).is_ok()
}

/// The hostile inputs that a text browser shows exactly as typed (printable ASCII, no runs
/// of spaces it would fold), short enough for one line.
fn printable_hostile_inputs() -> Vec<String> {
    hostile_inputs()
        .into_iter()
        .filter(|i| i.len() < 90 && !i.contains("  ") && i.trim() == i)
        .filter(|i| !i.is_empty() && i.bytes().all(|b| b == b' ' || b.is_ascii_graphic()))
        .collect()
}

/// Two people in a room named with hostile text: ada's two messages (the second edited), bob's
/// hostile ones, and a second room of ada's with nothing in it.
struct Chat {
    app: TestApp,
    ada: Browser,
    bob: Browser,
    code: String,
    name: String,
    hostile: Vec<String>,
}

async fn chat() -> Option<Chat> {
    if !w3m_installed() {
        return None;
    }
    let app = TestApp::spawn_with(Backend::Sqlite, &[("NATTER_LIMIT_POSTS", "1000/1s")]).await?;
    let name = hostile_inputs()
        .into_iter()
        .find(|i| i.starts_with("\"><img"))
        .expect("the <img> input");
    let ada = app.signed_in("ada@example.org", "ada").await;
    let bob = app.signed_in("bob@example.org", "bob").await;
    let code = app.create_room(&ada, &name).await;
    app.create_room(&ada, "Quiet").await;
    bob.join(&code).await;
    ada.say(&code, "Hello bob, see https://example.org/a?b=1")
        .await;
    let edited = ada.say(&code, "A typo").await;
    let edit = format!("/rooms/{code}/messages/{edited}/edit");
    let r = ada.post_form(&edit, &edit, &[("body", "No typo")]).await;
    assert_eq!(r.status, 303, "edit: {}", r.body);
    let hostile = printable_hostile_inputs();
    assert!(hostile.len() > 15, "{hostile:?}");
    for input in &hostile {
        bob.say(&code, input).await;
    }
    Some(Chat {
        app,
        ada,
        bob,
        code,
        name,
        hostile,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_starts_with_its_header_apart_and_shows_nothing_that_needs_javascript() {
    let Some(Chat { app, ada, code, .. }) = chat().await else {
        return;
    };
    let guest = app.browser();
    let newcomer = app.browser();
    newcomer.dev_sign_in("cyd@example.org").await;
    let member = ["Rooms", "Profile of ada", "Sign out"];
    let pages: [(&Browser, String, u16, &[&str]); 12] = [
        (&guest, "/".into(), 200, &[]),
        (&guest, "/auth/dev".into(), 200, &[]),
        (&guest, format!("/join/{code}"), 200, &[]),
        (&guest, "/no/such/page".into(), 404, &[]),
        (&newcomer, "/username".into(), 200, &["Sign out"]),
        (&ada, "/home".into(), 200, &member),
        (&ada, format!("/rooms/{code}"), 200, &member),
        (&ada, "/profile".into(), 200, &member),
        (
            &ada,
            format!("/rooms/{code}/messages?before=3"),
            200,
            &member,
        ),
        (&ada, format!("/rooms/{code}/messages/1/edit"), 200, &member),
        (
            &ada,
            format!("/rooms/{code}/messages/1/delete"),
            200,
            &member,
        ),
        (&ada, "/rooms/ZZZZ-ZZZZ".into(), 404, &[]),
    ];
    for (who, path, status, nav) in pages {
        let text = read(who, &path, status).await;
        assert_header(&path, &text, nav);
        assert_no_script_only_text(&path, &text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_reads_as_its_name_code_and_messages_under_author_and_time() {
    let Some(Chat {
        app: _app,
        bob,
        code,
        name,
        hostile,
        ..
    }) = chat().await
    else {
        return;
    };
    let text = read(&bob, &format!("/rooms/{code}"), 200).await;
    let lines = lines(&text);
    let at = |line: &str| lines.iter().position(|l| l.trim() == line);

    // The room's name (hostile text, as text), then its code beside the invitation link.
    let title = at(&name).unwrap_or_else(|| panic!("the room's name {name:?} as a line:\n{text}"));
    assert_eq!(
        lines[title + 1].trim(),
        format!("Room code {code} Invitation link"),
        "{text}"
    );
    // In the rail too, without a count: opening the room read it.
    assert!(lines.contains(&format!("  • {name}").as_str()), "{text}");

    // A day, then each message: its author and short time on one line, its text on the next.
    let first = lines
        .iter()
        .position(|l| l.starts_with("ada ") && is_short_time(&l[4..]))
        .unwrap_or_else(|| panic!("ada's first message under \"ada HH:MM\":\n{text}"));
    let day = lines[..first]
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| *l != "New messages")
        .expect("a line before the first message");
    let format = time::macros::format_description!(
        "[weekday repr:long], [day padding:none] [month repr:long] [year]"
    );
    assert!(
        time::Date::parse(day, format).is_ok(),
        "a day divider ({day:?}) before the first message:\n{text}"
    );
    assert_eq!(lines[first + 1], "Hello bob, see https://example.org/a?b=1");
    // An edited message says when, in full.
    let edited = lines[first + 2..]
        .iter()
        .find(|l| l.starts_with("ada "))
        .unwrap_or_else(|| panic!("ada's second message:\n{text}"));
    let when = edited
        .split_once(" (edited, ")
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{edited:?} says it was edited, and when"));
    assert!(is_full_time(when), "{when:?} reads as a date and time");
    assert!(lines.contains(&"No typo"), "{text}");

    // Bob's hostile messages read exactly as he typed them, each under his name and time.
    for input in &hostile {
        let body = lines[first..]
            .iter()
            .position(|l| l == input)
            .map(|i| first + i)
            .unwrap_or_else(|| panic!("{input:?} as a line of its own:\n{text}"));
        let meta = lines[body - 1];
        assert!(
            meta.strip_prefix("bob ").is_some_and(is_short_time),
            "{input:?} under bob's name and time, not {meta:?}:\n{text}"
        );
        // A text browser has no /me.css: every action shows, "Message privately" too.
        assert_eq!(
            lines[body + 1],
            "Message privately with bob Edit Delete",
            "{input:?}:\n{text}"
        );
    }
    // Each message's links apart; the member list a list, with presence in words.
    assert!(
        lines.contains(&"Message privately with ada Edit Delete"),
        "{text}"
    );
    assert!(
        lines.contains(&"  • ada, offline Message privately with ada")
            && lines.contains(&"  • bob, offline Message privately with bob"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_reads_each_room_as_one_item_of_name_latest_count_code_and_time() {
    let Some(Chat {
        app: _app,
        ada,
        code,
        name,
        hostile,
        ..
    }) = chat().await
    else {
        return;
    };
    // bob's hostile messages are unread for ada; her empty room has no count at all.
    let text = read(&ada, "/home", 200).await;
    // A room's item may wrap: read each as one line.
    let items: Vec<String> = text
        .split("  • ")
        .skip(1)
        .map(|item| item.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let quiet = items
        .iter()
        .find(|i| i.starts_with("Quiet · "))
        .unwrap_or_else(|| panic!("the empty room as an item:\n{text}"));
    let parts: Vec<&str> = quiet.split(" · ").collect();
    assert_eq!(parts[..2], ["Quiet", "No messages yet"], "{quiet}");
    assert!(
        parts[3..] == [parts[3]] && is_full_time(parts[3]),
        "{quiet}"
    );
    let busy = items
        .iter()
        .find(|i| i.starts_with(&format!("{name} · ")))
        .unwrap_or_else(|| panic!("the busy room as an item:\n{text}"));
    let latest = hostile.last().expect("a hostile input");
    let unread = hostile.len();
    let expected = format!("{name} · bob: {latest} · {unread} unread · {code} · ");
    assert!(busy.starts_with(&expected), "{busy:?}, not {expected:?}");
    assert!(is_full_time(busy.rsplit(" · ").next().unwrap()), "{busy}");
    assert_no_script_only_text("/home", &text);

    // The profile: each label beside (under) its value, times readable.
    let text = read(&ada, "/profile", 200).await;
    let lines = lines(&text);
    for (label, value) in [("Username", "ada"), ("Email", "ada@example.org")] {
        let at = lines.iter().position(|l| *l == label).expect(label);
        assert_eq!(lines[at + 1].trim(), value, "{text}");
    }
    let at = lines
        .iter()
        .position(|l| *l == "Member since")
        .expect("since");
    assert!(is_full_time(lines[at + 1].trim()), "{text}");
}
