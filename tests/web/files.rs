//! Attachments (issue 16): files posted with a message as a plain multipart form, shown to the
//! room (images as thumbnails, other files as cards), served to members only, typed by their
//! bytes, limited, deleted with their message, and never left behind by a post that did not
//! happen.

use std::time::Duration;

use crate::both;
use crate::common::{
    Answer, Browser, TestApp,
    files::{PDF, jpeg, png, stored_files},
    hostile_inputs,
};

/// Posts `body` with `files` to room `code` as the composer's form does without JavaScript.
async fn post_files(
    who: &Browser,
    code: &str,
    body: &str,
    files: &[(&str, &str, &[u8])],
) -> Answer {
    let csrf = who.csrf_from(&format!("/rooms/{code}")).await;
    let id = format!("{:032x}", rand::random::<u128>());
    who.post_multipart(
        &format!("/rooms/{code}/messages"),
        &[("csrf", &csrf), ("body", body), ("client_id", &id)],
        files,
        &[],
    )
    .await
}

/// Every `/files/…` address a page links to or shows, in order, without `?v=thumb`.
fn file_links(page: &str) -> Vec<String> {
    let mut links: Vec<String> = Vec::new();
    for piece in page.split("\"/files/").skip(1) {
        let end = piece.find('"').expect("a closed attribute");
        let link = format!("/files/{}", &piece[..end]).replace("?v=thumb", "");
        if !links.contains(&link) {
            links.push(link);
        }
    }
    links
}

/// Two people in a room: Ada (its creator) and Bob.
async fn room_of_two(app: &TestApp) -> (Browser, Browser, String) {
    let ada = app.signed_in("ada@example.org", "ada").await;
    let bob = app.signed_in("bob@example.org", "bob").await;
    let code = ada.create_room("Shared").await;
    bob.join(&code).await;
    (ada, bob, code)
}

both! {
    async fn an_image_and_a_file_posted_without_javascript_show_in_the_room(app: TestApp) {
        let (ada, bob, code) = room_of_two(&app).await;
        let photo = png(1600, 1200);
        let r = post_files(&ada, &code, "the plan", &[
            ("whiteboard.png", "image/png", &photo),
            ("plan.pdf", "application/pdf", PDF),
        ]).await;
        assert_eq!(r.status, 303, "{}", r.body);
        assert!(r.location().starts_with(&format!("/rooms/{code}#msg-")));

        let page = bob.get(&format!("/rooms/{code}")).await.body;
        assert!(page.contains("the plan"));
        // The image as its thumbnail, sized so the page does not jump as it loads.
        assert!(page.contains("?v=thumb\" alt=\"whiteboard.png\""), "{page}");
        assert!(page.contains("width=\"800\" height=\"600\""), "{page}");
        // The file as a card: name, size, type.
        assert!(page.contains("plan.pdf"));
        assert!(page.contains("PDF document"));
        let links = file_links(&page);
        assert_eq!(links.len(), 2, "{links:?}");
        assert!(links[0].ends_with("/whiteboard.png") && links[1].ends_with("/plan.pdf"));

        // The full image, inline, as it was sent.
        let (status, headers, bytes) = bob.get_bytes(&links[0], &[]).await;
        assert_eq!(status, 200);
        assert_eq!(bytes, photo);
        assert_eq!(headers["content-type"], "image/png");
        assert!(headers["content-disposition"].to_str().unwrap().starts_with("inline;"));
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(headers["content-security-policy"].to_str().unwrap().contains("sandbox"));

        // Its thumbnail: re-encoded, 800 px on the long side.
        let (status, headers, thumb) = bob.get_bytes(&format!("{}?v=thumb", links[0]), &[]).await;
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "image/jpeg");
        let decoded = image::load_from_memory(&thumb).expect("the thumbnail decodes");
        assert_eq!((decoded.width(), decoded.height()), (800, 600));

        // The PDF: a download, whatever a browser would like to do with it.
        let (status, headers, bytes) = bob.get_bytes(&links[1], &[]).await;
        assert_eq!(status, 200);
        assert_eq!(bytes, PDF);
        assert_eq!(headers["content-type"], "application/pdf");
        assert!(headers["content-disposition"].to_str().unwrap().starts_with("attachment;"));
        // A file has no thumbnail.
        assert_eq!(bob.get_bytes(&format!("{}?v=thumb", links[1]), &[]).await.0, 404);
    }

    async fn files_are_served_to_members_only(app: TestApp) {
        let (ada, _bob, code) = room_of_two(&app).await;
        post_files(&ada, &code, "", &[("secret.pdf", "application/pdf", PDF)]).await;
        let link = file_links(&ada.get(&format!("/rooms/{code}")).await.body).remove(0);
        // Home says what the latest message was, though it has no text.
        assert!(ada.get("/home").await.body.contains("Sent files"));

        let carol = app.signed_in("carol@example.org", "carol").await;
        let (status, _, body) = carol.get_bytes(&link, &[]).await;
        assert_eq!(status, 404);
        assert!(!body.windows(4).any(|w| w == b"%PDF"));
        // The name in the address does not matter; the token does, and only for members.
        let token = link.split('/').nth(2).unwrap();
        assert_eq!(carol.get_bytes(&format!("/files/{token}/x"), &[]).await.0, 404);
        assert_eq!(ada.get_bytes(&format!("/files/{token}/x"), &[]).await.0, 200);
        // A guessed token is not found, for members too.
        assert_eq!(ada.get_bytes("/files/aaaaaaaaaaaaaaaaaaaaaaaaaa/x", &[]).await.0, 404);
        assert_eq!(ada.get_bytes("/files/..%2F..%2Fetc/passwd", &[]).await.0, 404);
        // Signed out: sign in first.
        assert_eq!(Browser::new(&app.base).get_bytes(&link, &[]).await.0, 303);
        // Leaving the room ends access.
        let bob = app.signed_in("bob2@example.org", "bob2").await;
        bob.join(&code).await;
        assert_eq!(bob.get_bytes(&link, &[]).await.0, 200);
        bob.leave(&code).await;
        assert_eq!(bob.get_bytes(&link, &[]).await.0, 404);
    }

    async fn downloads_answer_range_requests(app: TestApp) {
        let (ada, bob, code) = room_of_two(&app).await;
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
        let r = post_files(&ada, &code, "", &[("data.bin", "application/octet-stream", &data)]).await;
        assert_eq!(r.status, 303, "{}", r.body);
        let link = file_links(&bob.get(&format!("/rooms/{code}")).await.body).remove(0);
        let (status, headers, bytes) = bob.get_bytes(&link, &[("range", "bytes=1000-1999")]).await;
        assert_eq!(status, 206);
        assert_eq!(bytes, &data[1000..2000]);
        assert_eq!(headers["content-range"], "bytes 1000-1999/50000");
        let (status, _, bytes) = bob.get_bytes(&link, &[("range", "bytes=-10")]).await;
        assert_eq!((status, bytes.as_slice()), (206, &data[49_990..]));
        let (status, headers, _) = bob.get_bytes(&link, &[("range", "bytes=60000-")]).await;
        assert_eq!(status, 416);
        assert_eq!(headers["content-range"], "bytes */50000");
        let (status, headers, bytes) = bob.get_bytes(&link, &[]).await;
        assert_eq!((status, bytes.len()), (200, 50_000));
        assert_eq!(headers["accept-ranges"], "bytes");
        assert_eq!(headers["content-type"], "application/octet-stream");
        // Cached by the browser, revalidated by its tag.
        let etag = headers["etag"].to_str().unwrap().to_string();
        assert_eq!(bob.get_bytes(&link, &[("if-none-match", &etag)]).await.0, 304);
    }

    async fn types_come_from_the_bytes_never_from_the_name_or_the_client(app: TestApp) {
        let (ada, bob, code) = room_of_two(&app).await;
        let html = b"<html><script>alert(1)</script></html>";
        let svg = br#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#;
        let photo = png(40, 30);
        let r = post_files(&ada, &code, "", &[
            ("cat.png", "image/png", html),
            ("logo.svg", "image/svg+xml", svg),
            ("evil.html", "text/html", &photo),
        ]).await;
        assert_eq!(r.status, 303, "{}", r.body);
        let page = bob.get(&format!("/rooms/{code}")).await.body;
        let links = file_links(&page);
        assert_eq!(links.len(), 3);
        // HTML named .png and an SVG: text, downloaded, never shown.
        for link in &links[..2] {
            assert!(!page.contains(&format!("{link}?v=thumb")), "{link} shown inline");
            let (status, headers, _) = bob.get_bytes(link, &[]).await;
            assert_eq!(status, 200);
            assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
            assert!(headers["content-disposition"].to_str().unwrap().starts_with("attachment;"));
        }
        // A PNG named .html is the image it is.
        assert!(page.contains(&format!("{}?v=thumb", links[2])));
        let (_, headers, _) = bob.get_bytes(&links[2], &[]).await;
        assert_eq!(headers["content-type"], "image/png");
    }

    #[settings(NATTER_MAX_UPLOAD = "4KiB", NATTER_MAX_FILES = "2")]
    async fn too_large_or_too_many_files_are_refused_and_the_text_stays(app: TestApp) {
        let (ada, _bob, code) = room_of_two(&app).await;
        let big = vec![7u8; 5000];
        let r = post_files(&ada, &code, "my words", &[("big.bin", "application/octet-stream", &big)]).await;
        assert_eq!(r.status, 413, "{}", r.body);
        assert!(r.body.contains("at most 4 KiB"), "{}", r.body);
        assert!(r.body.contains("my words"), "the typed text comes back");
        let small: &[u8] = b"tiny";
        let r = post_files(&ada, &code, "three", &[
            ("a.txt", "text/plain", small),
            ("b.txt", "text/plain", small),
            ("c.txt", "text/plain", small),
        ]).await;
        assert_eq!(r.status, 413);
        assert!(r.body.contains("at most 2 files"), "{}", r.body);
        assert!(r.body.contains("three"));
        // With htmx: the composer, swapped in, with the text and the reason.
        let csrf = ada.csrf_from(&format!("/rooms/{code}")).await;
        let r = ada.post_multipart(
            &format!("/rooms/{code}/messages"),
            &[("body", "again")],
            &[("big.bin", "application/octet-stream", &big)],
            &[("hx-request", "true"), ("x-csrf-token", &csrf)],
        ).await;
        assert_eq!(r.status, 413, "{}", r.body);
        assert!(r.body.contains("id=\"composer\"") && r.body.contains("again"), "{}", r.body);
        // A body declared far beyond any upload is refused before it is read (from a client
        // of its own: the connection cannot be used again after a body left unread).
        let r = ada.same_session_on(&app.base).post_with(
            &format!("/rooms/{code}/messages"),
            &[],
            &[
                ("origin", &app.base),
                ("content-type", "multipart/form-data; boundary=x"),
                ("content-length", "999999999"),
            ],
        ).await;
        assert_eq!(r.status, 413, "{}", r.body);
        // Nothing was kept of any of it.
        assert_eq!(stored_files(&app.db.files_dir()), Vec::<String>::new());
        assert!(!ada.get(&format!("/rooms/{code}")).await.body.contains("my words"));
    }

    async fn an_image_with_too_many_pixels_is_refused(app: TestApp) {
        let (ada, _bob, code) = room_of_two(&app).await;
        // A PNG whose header claims 30000 × 30000 pixels (a decompression bomb's shape).
        let mut bomb = png(1, 1);
        bomb[16..20].copy_from_slice(&30_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&30_000u32.to_be_bytes());
        let crc = crc32(&bomb[12..29]);
        bomb[29..33].copy_from_slice(&crc.to_be_bytes());
        let r = post_files(&ada, &code, "look", &[("bomb.png", "image/png", &bomb)]).await;
        assert_eq!(r.status, 422, "{}", r.body);
        assert!(r.body.contains("too many pixels") && r.body.contains("look"), "{}", r.body);
        assert_eq!(stored_files(&app.db.files_dir()), Vec::<String>::new());
    }

    async fn hostile_file_names_are_cleaned_and_escaped(app: TestApp) {
        let (ada, bob, code) = room_of_two(&app).await;
        for chunk in hostile_inputs().chunks(10) {
            let files: Vec<(&str, &str, &[u8])> = chunk
                .iter()
                .map(|name| (name.as_str(), "application/octet-stream", b"data".as_slice()))
                .collect();
            let r = post_files(&ada, &code, "", &files).await;
            assert_eq!(r.status, 303, "{}", r.body);
        }
        let page = bob.get(&format!("/rooms/{code}")).await.body;
        assert!(!page.contains("<script>alert"), "a name was not escaped");
        for link in file_links(&page) {
            let (status, headers, body) = bob.get_bytes(&link, &[]).await;
            assert_eq!((status, body.as_slice()), (200, b"data".as_slice()), "{link}");
            let disposition = headers["content-disposition"].to_str().expect("visible ASCII");
            assert!(disposition.starts_with("attachment; filename=\""), "{disposition}");
            assert!(!link[7..].contains(['/', '\\']) || link.matches('/').count() == 3, "{link}");
        }
    }

    async fn deleting_a_message_deletes_its_files(app: TestApp) {
        let (ada, bob, code) = room_of_two(&app).await;
        let r = post_files(&ada, &code, "soon gone", &[
            ("a.png", "image/png", &png(30, 20)),
            ("b.pdf", "application/pdf", PDF),
        ]).await;
        let seq: i64 = r.location().rsplit("#msg-").next().unwrap().parse().unwrap();
        let links = file_links(&bob.get(&format!("/rooms/{code}")).await.body);
        // Two files and a thumbnail.
        assert_eq!(stored_files(&app.db.files_dir()).len(), 3);
        let r = ada.post_form(
            &format!("/rooms/{code}"),
            &format!("/rooms/{code}/messages/{seq}/delete"),
            &[],
        ).await;
        assert_eq!(r.status, 303, "{}", r.body);
        for link in &links {
            assert_eq!(bob.get_bytes(link, &[]).await.0, 404, "{link}");
        }
        assert_eq!(stored_files(&app.db.files_dir()), Vec::<String>::new());
        let page = bob.get(&format!("/rooms/{code}")).await.body;
        assert!(page.contains("Message deleted") && file_links(&page).is_empty());
    }

    async fn a_post_that_does_not_happen_leaves_no_file(app: TestApp) {
        let (ada, _bob, code) = room_of_two(&app).await;
        let csrf = ada.csrf_from(&format!("/rooms/{code}")).await;
        let path = format!("/rooms/{code}/messages");
        let fields = [("csrf", csrf.as_str()), ("body", "once"), ("client_id", "same-id-twice")];
        let file: &[(&str, &str, &[u8])] = &[("a.pdf", "application/pdf", PDF)];
        let first = ada.post_multipart(&path, &fields, file, &[]).await;
        // The same form again (a double click): answered as posted, and its file not kept.
        let second = ada.post_multipart(&path, &fields, file, &[]).await;
        assert_eq!((first.status, second.status), (303, 303));
        assert_eq!(first.location(), second.location());
        assert_eq!(stored_files(&app.db.files_dir()).len(), 1);
        // A forged form: refused before any file is written.
        let forged = [("csrf", "forged"), ("body", "x"), ("client_id", "other")];
        assert_eq!(ada.post_multipart(&path, &forged, file, &[]).await.status, 403);
        // Someone who is not a member: not found, nothing written.
        let carol = app.signed_in("carol@example.org", "carol").await;
        let csrf = carol.csrf_from("/home").await;
        let carols = [("csrf", csrf.as_str()), ("body", "x"), ("client_id", "c")];
        assert_eq!(carol.post_multipart(&path, &carols, file, &[]).await.status, 404);
        // A form that takes no files refuses them.
        let r = ada.post_multipart("/rooms/join", &[("csrf", &csrf), ("code", &code)], file, &[]).await;
        assert!(r.status == 400 || r.status == 403, "{}", r.status);
        assert_eq!(stored_files(&app.db.files_dir()).len(), 1);
        let spool = app.db.files_dir().join(".uploads");
        assert_eq!(std::fs::read_dir(&spool).map(|d| d.count()).unwrap_or(0), 0, "uploads are not left in the spool");
    }

    async fn bytes_no_message_names_are_swept_after_an_hour(app: TestApp) {
        let (ada, _bob, code) = room_of_two(&app).await;
        post_files(&ada, &code, "kept", &[("a.pdf", "application/pdf", PDF)]).await;
        let kept = stored_files(&app.db.files_dir());
        assert_eq!(kept.len(), 1);
        let storage = app.state.files.storage();
        storage.put_bytes("f/zz/orphan", bytes::Bytes::from_static(b"x")).await.unwrap();
        storage.put_bytes("f/zz/young-orphan", bytes::Bytes::from_static(b"x")).await.unwrap();
        // The orphan and the message's own file are two hours old; the young one is not.
        let old = std::time::SystemTime::now() - Duration::from_secs(7200);
        for path in [app.db.files_dir().join("f/zz/orphan"), std::path::PathBuf::from(&kept[0])] {
            std::fs::File::options().write(true).open(&path).unwrap().set_modified(old).unwrap();
        }
        let swept = app.state.files.sweep(&app.state.store, natter::files::ORPHAN_AGE).await.unwrap();
        assert_eq!(swept, 1);
        let mut left = stored_files(&app.db.files_dir());
        left.sort();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(left.iter().any(|p| p.ends_with("young-orphan")) && left.contains(&kept[0]));
    }

    async fn a_message_with_files_arrives_live_with_them(app: TestApp) {
        let (ada, bob, code) = room_of_two(&app).await;
        let mut socket = bob.socket(&code, None).await.expect("a socket");
        let r = post_files(&ada, &code, "", &[("shot.jpg", "image/jpeg", &jpeg(1200, 900))]).await;
        assert_eq!(r.status, 303, "{}", r.body);
        let frame = loop {
            let frame = socket.next_text(Duration::from_secs(10)).await.expect("a frame");
            if frame.contains("<article") {
                break frame;
            }
        };
        assert!(frame.contains("alt=\"shot.jpg\"") && frame.contains("width=\"800\" height=\"600\""), "{frame}");
        // No empty text is rendered for a message of files alone.
        assert!(!frame.contains("message-body"), "{frame}");
        let link = file_links(&frame).remove(0);
        assert_eq!(bob.get_bytes(&link, &[]).await.0, 200);
    }

    #[settings(NATTER_ROOM_QUOTA = "8KiB")]
    async fn a_room_over_its_quota_takes_no_more_files(app: TestApp) {
        let (ada, _bob, code) = room_of_two(&app).await;
        let five = vec![1u8; 5 * 1024];
        assert_eq!(post_files(&ada, &code, "", &[("a.bin", "application/octet-stream", &five)]).await.status, 303);
        let r = post_files(&ada, &code, "still mine", &[("b.bin", "application/octet-stream", &five)]).await;
        assert_eq!(r.status, 413);
        assert!(r.body.contains("8 KiB") && r.body.contains("still mine"), "{}", r.body);
        // Text alone still goes.
        ada.say(&code, "words are free").await;
    }
}

/// CRC-32 (IEEE), for a PNG chunk made by hand.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The same journey with the bytes in S3-compatible storage (a real Garage the test starts),
/// as several instances would keep them: posted, shown, served with ranges, deleted.
mod on_s3 {
    use super::*;
    use crate::common::{Backend, garage::garage};

    async fn run(backend: Backend) {
        let Some(garage) = garage().await else { return };
        let files = format!("s3://{}", garage.bucket);
        let settings = [
            ("NATTER_FILES", files.as_str()),
            ("AWS_ENDPOINT_URL", &garage.endpoint),
            ("AWS_REGION", &garage.region),
            ("AWS_ACCESS_KEY_ID", &garage.key_id),
            ("AWS_SECRET_ACCESS_KEY", &garage.secret),
        ];
        let Some(app) = TestApp::spawn_with(backend, &settings).await else {
            return;
        };
        assert!(
            app.state
                .files
                .storage()
                .describe()
                .contains(&garage.bucket)
        );
        let (ada, bob, code) = room_of_two(&app).await;
        // Larger than one part of a multipart upload (5 MiB).
        let big: Vec<u8> = (0..6_000_000u32).map(|i| (i % 251) as u8).collect();
        let photo = png(1000, 500);
        let r = post_files(
            &ada,
            &code,
            "in the bucket",
            &[
                ("photo.png", "image/png", &photo),
                ("big.bin", "application/octet-stream", &big),
            ],
        )
        .await;
        assert_eq!(r.status, 303, "{}", r.body);
        let seq: i64 = r
            .location()
            .rsplit("#msg-")
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let page = bob.get(&format!("/rooms/{code}")).await.body;
        let links = file_links(&page);
        assert_eq!(links.len(), 2, "{page}");
        assert_eq!(bob.get_bytes(&links[0], &[]).await.2, photo);
        let (status, _, thumb) = bob.get_bytes(&format!("{}?v=thumb", links[0]), &[]).await;
        assert_eq!(status, 200);
        assert_eq!(image::load_from_memory(&thumb).unwrap().width(), 800);
        let (status, _, bytes) = bob.get_bytes(&links[1], &[]).await;
        assert_eq!((status, bytes.len()), (200, big.len()));
        assert!(bytes == big, "the download is byte-exact");
        let (status, _, part) = bob
            .get_bytes(&links[1], &[("range", "bytes=5999990-")])
            .await;
        assert_eq!((status, part.as_slice()), (206, &big[5_999_990..]));
        // Three objects in the bucket (two files, one thumbnail); none once the message goes.
        let storage = app.state.files.storage();
        assert_eq!(
            storage.older_than(Duration::ZERO, 100).await.unwrap().len(),
            3
        );
        let r = ada
            .post_form(
                &format!("/rooms/{code}"),
                &format!("/rooms/{code}/messages/{seq}/delete"),
                &[],
            )
            .await;
        assert_eq!(r.status, 303);
        assert_eq!(bob.get_bytes(&links[1], &[]).await.0, 404);
        assert_eq!(
            storage.older_than(Duration::ZERO, 100).await.unwrap(),
            Vec::<String>::new()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        run(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        run(Backend::Postgres).await;
    }
}
