//! Attachments in a real browser (issue 16): files chosen with the picker, pasted or dropped,
//! listed with remove buttons, refused before uploading when the server would refuse them, put
//! back after a refused post, and arriving live as thumbnails and file cards; the picker alone
//! without JavaScript; axe and screenshots of both.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::chrome::{Chrome, Js};
use crate::common::files::{PDF, png};
use crate::*;

/// Files on disk for the picker (WebDriver sends a file input absolute paths).
struct Files(tempfile::TempDir);

impl Files {
    fn new() -> Self {
        Files(tempfile::tempdir().expect("temp dir"))
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, bytes).expect("write a test file");
        path
    }
}

/// Chooses `paths` with the composer's file picker (in one go, as a person picking several).
async fn choose(c: &Chrome, paths: &[PathBuf]) {
    let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    c.find("#composer-files")
        .await
        .send_keys(&paths.join("\n"))
        .await
        .expect("choose files");
}

/// The names in the composer's list of files to send, and how many files its input holds.
const CHOSEN: &str =
    "[[...document.querySelectorAll('.attach-list .attach-name')].map((n) => n.textContent),
    document.querySelector('#composer-files').files.length]";

async fn chosen(c: &Chrome) -> (Vec<String>, u64) {
    serde_json::from_value(c.js(CHOSEN, vec![]).await).expect("the list")
}

/// Whether the newest message shows a loaded thumbnail (`arguments[0]`: its alt, the file's
/// name) and, if `arguments[1]` is a name, a file card for it.
const NEWEST_HAS_FILES: &str = "(() => {
    const m = [...document.querySelectorAll('#messages article.message')].at(-1);
    const img = m?.querySelector('ul.attachments > li > a.attachment-image > img');
    const card = m?.querySelector('ul.attachments > li > a.file-card .file-name');
    return !!img && img.alt === arguments[0] && img.complete && img.naturalWidth > 0
        && (arguments[1] === null || card?.textContent === arguments[1]);
})()";

/// Records the composer's progress bar while it shows (`window.progressSeen`: its label, and
/// whether it reached the end).
const WATCH_PROGRESS: &str = "(new MutationObserver(() => {
    const bar = document.querySelector('#upload-progress');
    if (!bar) return;
    const seen = (window.progressSeen ??= { label: bar.labels[0]?.textContent, full: false });
    seen.full ||= bar.value === bar.max;
}).observe(document.body, { subtree: true, childList: true, attributes: true }), true)";

/// A file made in the page, in a `DataTransfer` (`window.testFiles`): a PNG drawn on a canvas
/// when `arguments[0]` ends in `.png`, otherwise a line of text.
const MAKE_FILE: &str = "(async () => {
    const name = arguments[0];
    let blob;
    if (name.endsWith('.png')) {
        const canvas = document.createElement('canvas');
        canvas.width = 120; canvas.height = 80;
        const g = canvas.getContext('2d');
        g.fillStyle = '#e07a5f'; g.fillRect(0, 0, 120, 80);
        g.fillStyle = '#3d405b'; g.fillRect(20, 20, 80, 40);
        blob = await new Promise((done) => canvas.toBlob(done, 'image/png'));
    } else {
        blob = new Blob(['notes for the meeting\\n'], { type: 'text/plain' });
    }
    window.testFiles ??= new DataTransfer();
    window.testFiles.items.add(new File([blob], name, { type: blob.type }));
    return true;
})()";

/// Signs Ada in and into a room of her own, its socket up; returns the room's code.
async fn ada_in_a_room(ada: &Chrome) -> String {
    sign_up_dev(ada, "ada@example.org", "ada").await;
    let code = create_room(ada, "Holiday photos").await;
    ada.wait_until("live socket", MEMBER_ONLINE, vec![json!("ada")])
        .await;
    code
}

crate::both! {
    async fn a_picture_and_a_pdf_chosen_with_the_picker_arrive_live_on_both_pages(app: TestApp) {
        let Some((ada, bob)) = Chrome::pair(&app.base, Js::On).await else { return };
        let code = ada_in_a_room(&ada).await;
        sign_up_dev(&bob, "bob@example.org", "bob").await;
        join_by_link(&bob, &code).await;
        bob.wait_until("bob's socket", MEMBER_ONLINE, vec![json!("bob")]).await;
        for c in [&ada, &bob] {
            c.js("window.natterTestMarker = true", vec![]).await;
        }

        let files = Files::new();
        choose(&ada, &[files.write("beach.png", &png(640, 400)), files.write("tickets.pdf", PDF)]).await;
        assert_eq!(chosen(&ada).await, (vec!["beach.png".into(), "tickets.pdf".into()], 2));
        // Each with its own remove button, named for its file.
        for name in ["beach.png", "tickets.pdf"] {
            assert!(ada.exists(&format!(".attach-list button[type=button][aria-label='Remove {name}']")).await, "{name}");
        }
        ada.wait_until("the image's preview", "document.querySelector('.attach-item img')?.naturalWidth > 0", vec![]).await;
        let violations = ada.axe().await;
        assert!(violations.is_empty(), "axe with files chosen: {violations:#?}");
        ada.screenshots("attachments-chosen").await;

        // The upload's progress bar, however briefly it shows on a local connection.
        ada.js(WATCH_PROGRESS, vec![]).await;
        send(&ada, "The beach, and our tickets").await;
        for c in [&ada, &bob] {
            wait_for_message(c, "The beach, and our tickets").await;
            c.wait_until("the thumbnail and the file card", NEWEST_HAS_FILES, vec![json!("beach.png"), json!("tickets.pdf")]).await;
            // The thumbnail links to the full image, the card to the file, both natter's.
            let links = c.js("[...document.querySelectorAll('ul.attachments a')].map((a) => new URL(a.href).pathname)", vec![]).await;
            assert_eq!(links.as_array().map(Vec::len), Some(2), "{links}");
            assert!(links.as_array().unwrap().iter().all(|l| l.as_str().unwrap().starts_with("/files/")), "{links}");
            assert_eq!(c.js("window.natterTestMarker === true", vec![]).await, json!(true), "the page reloaded");
        }
        // Sent: the list and the input are empty again, and so is the text.
        assert_eq!(chosen(&ada).await, (vec![], 0));
        assert!(!ada.exists(".upload-progress").await, "the progress bar stays after the post");
        assert_eq!(
            ada.js("window.progressSeen", vec![]).await,
            json!({ "label": "Sending 2 files", "full": true }),
            "the upload's progress bar"
        );
        assert_eq!(ada.js(COMPOSER_TEXT, vec![]).await, json!(""));

        let violations = bob.axe().await;
        assert!(violations.is_empty(), "axe with attachments shown: {violations:#?}");
        bob.assert_console_clean("a room with attachments").await;
        bob.screenshots("attachments").await;
        bob.dark(true).await;
        let violations = bob.axe().await;
        assert!(violations.is_empty(), "axe with attachments shown, dark: {violations:#?}");
        bob.screenshots("attachments-dark").await;
        ada.assert_console_clean("sending attachments").await;
        ada.quit().await;
        bob.quit().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_pasted_into_the_composer_is_listed_and_sent_without_text() {
    let Some((_app, ada)) = app_and_chrome(FAST_POSTS).await else {
        return;
    };
    ada_in_a_room(&ada).await;
    ada.js(MAKE_FILE, vec![json!("pasted.png")]).await;
    // Pasting text is left alone: the text arrives, nothing is attached.
    ada.js(
        "(() => {
            const text = new DataTransfer();
            text.setData('text/plain', 'hello');
            return document.querySelector('#composer-body').dispatchEvent(
                new ClipboardEvent('paste', { clipboardData: text, bubbles: true, cancelable: true }));
        })()",
        vec![],
    )
    .await;
    assert_eq!(chosen(&ada).await, (vec![], 0));
    let kept = ada
        .js(
            "document.querySelector('#composer-body').dispatchEvent(
                new ClipboardEvent('paste', { clipboardData: window.testFiles, bubbles: true, cancelable: true }))",
            vec![],
        )
        .await;
    assert_eq!(kept, json!(false), "a paste of files keeps its default");
    assert_eq!(chosen(&ada).await, (vec!["pasted.png".into()], 1));

    // Enter in an empty composer sends the file alone.
    ada.click("#composer-body").await;
    ada.press(ENTER).await;
    ada.wait_until(
        "the pasted image in the room",
        NEWEST_HAS_FILES,
        vec![json!("pasted.png"), Value::Null],
    )
    .await;
    assert_eq!(
        ada.js(
            "[...document.querySelectorAll('#messages article.message')].at(-1).querySelector('.message-body')",
            vec![]
        )
        .await,
        Value::Null,
        "a message without text shows no empty text"
    );
    assert_eq!(chosen(&ada).await, (vec![], 0));
    ada.assert_console_clean("pasting an image").await;
    ada.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_dropped_on_the_conversation_is_listed_and_its_button_removes_it() {
    let Some((_app, ada)) = app_and_chrome(FAST_POSTS).await else {
        return;
    };
    ada_in_a_room(&ada).await;
    ada.js(MAKE_FILE, vec![json!("notes.txt")]).await;
    const DRAG: &str = "(() => {
        const over = document.querySelector('.scroller');
        return over.dispatchEvent(new DragEvent(arguments[0],
            { dataTransfer: window.testFiles, bubbles: true, cancelable: true }));
    })()";
    for step in ["dragenter", "dragover"] {
        // Refused its default: the browser lets the files be dropped here.
        assert_eq!(
            ada.js(DRAG, vec![json!(step)]).await,
            json!(false),
            "{step}"
        );
    }
    assert!(
        ada.exists(".conversation.dropping").await,
        "the drop area is marked"
    );
    ada.screenshot("attachments-dragging-desktop").await;
    assert_eq!(ada.js(DRAG, vec![json!("drop")]).await, json!(false));
    assert!(!ada.exists(".conversation.dropping").await);
    assert_eq!(chosen(&ada).await, (vec!["notes.txt".into()], 1));

    ada.click(".attach-list button[aria-label='Remove notes.txt']")
        .await;
    assert_eq!(chosen(&ada).await, (vec![], 0));
    assert!(!ada.exists(".attach-list").await);
    assert_eq!(
        ada.focused().await,
        "composer-body",
        "the focus goes back to the text"
    );

    send(&ada, "Just words this time").await;
    wait_for_message(&ada, "Just words this time").await;
    assert!(
        !ada.exists("ul.attachments").await,
        "the removed file was sent"
    );
    ada.assert_console_clean("dropping a file").await;
    ada.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_over_the_limits_are_refused_before_sending_and_the_text_stays() {
    let settings = [
        ("NATTER_MAX_UPLOAD", "4KiB"),
        ("NATTER_MAX_FILES", "2"),
        ("NATTER_LIMIT_POSTS", "100000/1s"),
    ];
    let Some((_app, ada)) = app_and_chrome(&settings).await else {
        return;
    };
    ada_in_a_room(&ada).await;
    let files = Files::new();
    ada.type_into("#composer-body", "About the big one").await;
    choose(&ada, &[files.write("big.bin", &[7u8; 20 * 1024])]).await;
    ada.wait_until(
        "the refusal",
        "document.querySelector('#composer-error')",
        vec![],
    )
    .await;
    assert_eq!(
        ada.text("#composer-error[role=alert]").await,
        "big.bin is larger than 4 KiB, the most a file can be: not attached."
    );
    assert_eq!(chosen(&ada).await, (vec![], 0));
    assert_eq!(
        ada.js(COMPOSER_TEXT, vec![]).await,
        json!("About the big one")
    );
    assert_eq!(
        ada.js(
            "document.querySelectorAll('#messages article').length",
            vec![]
        )
        .await,
        json!(0)
    );
    ada.screenshot("attachments-refused-desktop").await;

    // Three at once where two fit: the first two are kept, the third is refused.
    let three: Vec<PathBuf> = (1..=3)
        .map(|i| files.write(&format!("part{i}.txt"), b"a small part\n"))
        .collect();
    choose(&ada, &three).await;
    assert_eq!(
        chosen(&ada).await,
        (vec!["part1.txt".into(), "part2.txt".into()], 2)
    );
    assert_eq!(
        ada.text("#composer-error").await,
        "A message can carry at most 2 files: 1 not attached. Send the rest in another one."
    );
    // Removing one takes back what was said about the files.
    ada.click(".attach-list button[aria-label='Remove part2.txt']")
        .await;
    assert!(!ada.exists("#composer-error").await);

    // A post the server refuses for its text (too long) comes back with its files listed
    // again, ready to send once the text is fixed.
    ada.js(
        "document.querySelector('#composer-body').value = 'x'.repeat(4001)",
        vec![],
    )
    .await;
    ada.click("#composer button[type=submit]").await;
    ada.wait_until(
        "the server's refusal",
        "document.querySelector('#composer-error')?.textContent.includes('4000')",
        vec![],
    )
    .await;
    ada.wait_until(
        "the file listed again",
        "document.querySelector('#composer-files').files.length === 1",
        vec![],
    )
    .await;
    assert_eq!(chosen(&ada).await, (vec!["part1.txt".into()], 1));
    ada.js(
        "document.querySelector('#composer-body').value = ''",
        vec![],
    )
    .await;
    send(&ada, "The first part").await;
    wait_for_message(&ada, "The first part").await;
    ada.wait_until(
        "the file card",
        "[...document.querySelectorAll('#messages article')].at(-1).querySelector('.file-card .file-name')?.textContent === 'part1.txt'",
        vec![],
    )
    .await;
    assert_eq!(chosen(&ada).await, (vec![], 0));
    ada.assert_console_clean_but_statuses("refusals", &[422])
        .await;
    ada.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_javascript_a_file_chosen_in_the_composer_frame_arrives_in_the_live_frame() {
    let Some(app) = TestApp::spawn_with(common::Backend::Sqlite, FAST_POSTS).await else {
        return;
    };
    let Some(ada) = Chrome::start(&app.base, Js::Off).await else {
        return;
    };
    sign_up_dev(&ada, "ada@example.org", "ada").await;
    create_room(&ada, "Quiet photos").await;
    let files = Files::new();
    let photo = files.write("harbour.png", &png(480, 320));
    let pdf = files.write("map.pdf", PDF);
    in_composer_frame(&ada, |ada| async move {
        // Nothing of the script's: the browser's own picker.
        choose(ada, &[photo, pdf]).await;
        assert!(!ada.exists(".attach-list").await);
        ada.type_into("#composer-body", "The harbour at dusk").await;
        ada.click("form.composer button[type=submit]").await;
    })
    .await;
    wait_for_message(&ada, "The harbour at dusk").await;
    ada.wait_until(
        "the image in the live frame",
        "(() => {
            const doc = document.querySelector('iframe.live-frame').contentDocument;
            const img = doc.querySelector('ul.attachments a.attachment-image > img');
            return img?.alt === 'harbour.png' && img.complete && img.naturalWidth > 0
                && doc.querySelector('a.file-card .file-name')?.textContent === 'map.pdf';
        })()",
        vec![],
    )
    .await;
    ada.screenshots("attachments-no-js").await;
    ada.assert_console_clean("attachments without JavaScript")
        .await;
    ada.quit().await;
}
