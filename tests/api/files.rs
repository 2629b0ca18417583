//! Attachments through the API: files posted as `multipart/form-data` with a bearer token,
//! listed with each message, downloaded with the same token (members only, ranges, the file's
//! own headers), within the same limits as the pages, and never kept from a post that did not
//! happen.

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::both;
use crate::common::{
    TestApp,
    files::{PDF, png, stored_files},
    hostile_inputs, multipart,
};
use crate::{Api, Reply, api_user};

/// A file to post: its name, the type the client claims, its bytes.
type File<'a> = (&'a str, &'a str, &'a [u8]);

/// Posts `fields` and `files` as `multipart/form-data` to room `code`, with an
/// `Idempotency-Key` when `key` is given.
async fn post_files(
    api: &Api,
    code: &str,
    fields: &[(&str, &str)],
    files: &[File<'_>],
    key: Option<&str>,
) -> Reply {
    let (content_type, body) = multipart(fields, files);
    let mut req = api
        .request(reqwest::Method::POST, &format!("/rooms/{code}/messages"))
        .header("content-type", content_type)
        .body(body);
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    Api::send(req).await
}

/// A download of `url` (absolute, as the API gives it) with `api`'s token and `headers`.
async fn download(api: &Api, url: &str, headers: &[(&str, &str)]) -> (u16, HeaderMap, Vec<u8>) {
    let mut req = api.http.get(url);
    if let Some(token) = &api.token {
        req = req.bearer_auth(token);
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let response = req.send().await.expect("download");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body").to_vec();
    (status, headers, bytes)
}

/// The answer to a multipart post declaring `length` bytes that waits for `100 Continue`
/// before sending any (as curl does for large uploads), as raw text.
async fn asked_first(app: &TestApp, api: &Api, code: &str, length: u64) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /api/v1/rooms/{code}/messages HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {length}\r\n\
         Expect: 100-continue\r\nConnection: close\r\n\r\n",
        app.addr,
        api.token.as_deref().unwrap_or_default()
    );
    tcp.write_all(head.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tcp.read_to_end(&mut answer),
    );
    read.await.expect("an answer in time").expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

/// How many uploads wait in the spool (none once every request is answered).
fn spooled(app: &TestApp) -> usize {
    let spool = app.db.files_dir().join(".uploads");
    std::fs::read_dir(spool).map(|d| d.count()).unwrap_or(0)
}

/// Ada's room, with Bob in it; their API clients and its code.
async fn room_of_two(app: &TestApp) -> (Api, Api, String) {
    let (_a, ada) = api_user(app, "ada@example.org", "ada").await;
    let (_b, bob) = api_user(app, "bob@example.org", "bob").await;
    let code = ada.create_room("Shared").await;
    let joined = bob.post("/rooms/join", json!({ "code": code })).await;
    assert_eq!(joined.status, 200, "{}", joined.body);
    (ada, bob, code)
}

/// The messages of room `code`'s history, oldest first.
async fn history(api: &Api, code: &str) -> Vec<Value> {
    let page = api.get(&format!("/rooms/{code}/messages")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.json["messages"].as_array().expect("messages").clone()
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is not a string"))
}

both! {
    async fn a_png_a_pdf_and_text_posted_as_multipart_come_back_with_working_urls(app: TestApp) {
        let (ada_browser, ada) = api_user(&app, "ada@example.org", "ada").await;
        let (_b, bob) = api_user(&app, "bob@example.org", "bob").await;
        let code = ada.create_room("Shared").await;
        assert_eq!(bob.post("/rooms/join", json!({ "code": code })).await.status, 200);
        let photo = png(1600, 1200);
        let r = post_files(&ada, &code, &[("body", "  the plan\r\n ")], &[
            ("whiteboard.png", "image/png", &photo),
            ("plan.pdf", "application/octet-stream", PDF),
        ], None).await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.json["body"], "the plan", "normalised like any post");
        let files = r.json["attachments"].as_array().expect("attachments");
        assert_eq!(files.len(), 2, "{}", r.body);
        let (image, pdf) = (&files[0], &files[1]);
        assert_eq!(image["name"], "whiteboard.png");
        assert_eq!(image["size"], photo.len());
        assert_eq!(image["type"], "image/png");
        assert_eq!((&image["width"], &image["height"]), (&json!(1600), &json!(1200)));
        assert_eq!(pdf["name"], "plan.pdf");
        assert_eq!(pdf["size"], PDF.len());
        // The type is what the bytes are, not what the client said.
        assert_eq!(pdf["type"], "application/pdf");
        assert_eq!((&pdf["width"], &pdf["height"], &pdf["thumbnail_url"]), (&Value::Null, &Value::Null, &Value::Null));
        let url = text(&image["url"]);
        assert!(url.starts_with(&format!("{}/api/v1/files/", app.base)), "{url}");
        assert_eq!(text(&image["thumbnail_url"]), format!("{url}/thumbnail"));

        // The history lists them the same, for every member.
        let listed = history(&bob, &code).await;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0]["attachments"], r.json["attachments"]);

        // The image, byte for byte, with the file's own headers.
        let (status, headers, bytes) = download(&bob, url, &[]).await;
        assert_eq!(status, 200);
        assert!(bytes == photo, "the download is the upload");
        assert_eq!(headers["content-type"], "image/png");
        assert!(headers["content-disposition"].to_str().unwrap().starts_with("inline; filename=\"whiteboard.png\""));
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(headers["content-security-policy"].to_str().unwrap().contains("sandbox"));
        // Its thumbnail decodes, 800 px on the long side.
        let (status, headers, thumb) = download(&bob, text(&image["thumbnail_url"]), &[]).await;
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "image/jpeg");
        let decoded = image::load_from_memory(&thumb).expect("the thumbnail decodes");
        assert_eq!((decoded.width(), decoded.height()), (800, 600));
        // The PDF: a download, and no thumbnail.
        let pdf_url = text(&pdf["url"]);
        let (status, headers, bytes) = download(&ada, pdf_url, &[]).await;
        assert_eq!((status, bytes.as_slice()), (200, PDF));
        assert_eq!(headers["content-type"], "application/pdf");
        assert!(headers["content-disposition"].to_str().unwrap().starts_with("attachment; filename=\"plan.pdf\""));
        let r = Api::send(ada.http.get(format!("{pdf_url}/thumbnail")).bearer_auth(ada.token.as_deref().unwrap())).await;
        r.assert_problem(404, "not-found");

        // Someone else's token: not found, as a file that does not exist; no token: 401.
        let (_c, carol) = api_user(&app, "carol@example.org", "carol").await;
        for url in [url, pdf_url] {
            let r = Api::send(carol.http.get(url).bearer_auth(carol.token.as_deref().unwrap())).await;
            r.assert_problem(404, "not-found");
            assert!(!r.body.contains("PDF") && !r.body.contains("PNG"));
            let r = Api::send(carol.http.get(url)).await;
            r.assert_problem(401, "unauthorized");
        }
        // The pages' session cookie is no way in: only the token is.
        let path = url.strip_prefix(&app.base).unwrap();
        assert_eq!(ada_browser.get_bytes(path, &[]).await.0, 401);
        // A guessed token is not found, for members too.
        let guessed = format!("{}/api/v1/files/aaaaaaaaaaaaaaaaaaaaaaaaaa", app.base);
        Api::send(ada.http.get(guessed).bearer_auth(ada.token.as_deref().unwrap())).await.assert_problem(404, "not-found");
    }

    #[settings(NATTER_MAX_UPLOAD = "4KiB", NATTER_MAX_FILES = "2")]
    async fn files_too_large_or_too_many_are_refused_with_413_and_nothing_is_kept(app: TestApp) {
        let (ada, _bob, code) = room_of_two(&app).await;
        let big = vec![7u8; 5000];
        let r = post_files(&ada, &code, &[("body", "my words")], &[("big.bin", "application/octet-stream", &big)], None).await;
        r.assert_problem(413, "body-too-large");
        assert!(text(&r.json["detail"]).contains("4 KiB"), "{}", r.body);
        let small: &[u8] = b"tiny";
        let three: &[File] = &[("a.txt", "text/plain", small), ("b.txt", "text/plain", small), ("c.txt", "text/plain", small)];
        let r = post_files(&ada, &code, &[("body", "three")], three, Some("three-files")).await;
        r.assert_problem(413, "body-too-large");
        assert!(text(&r.json["detail"]).contains("at most 2 files"), "{}", r.body);
        // Beyond every file at its largest, declared: refused before a byte is sent (curl asks
        // first with `Expect: 100-continue` for a large upload).
        let answer = asked_first(&app, &ada, &code, 999_999_999).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("application/problem+json") && answer.contains("body-too-large"), "{answer}");
        // Nothing was kept of any of it, nor posted.
        assert_eq!(stored_files(&app.db.files_dir()), Vec::<String>::new());
        assert_eq!(spooled(&app), 0, "uploads are not left in the spool");
        assert!(history(&ada, &code).await.is_empty());
        // Within the limits, it goes.
        let two = &three[..2];
        let r = post_files(&ada, &code, &[("body", "two")], two, Some("three-files")).await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(stored_files(&app.db.files_dir()).len(), 2);
    }

    async fn a_message_of_files_alone_posts_and_an_empty_one_is_refused(app: TestApp) {
        let (ada, bob, code) = room_of_two(&app).await;
        let file: &[File] = &[("notes.txt", "text/plain", b"some notes\n")];
        // No `body` part at all, or an empty one: the files are the message.
        let r = post_files(&ada, &code, &[], file, None).await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.json["body"], "");
        assert_eq!(r.json["attachments"][0]["name"], "notes.txt");
        assert_eq!(r.json["attachments"][0]["type"], "text/plain; charset=utf-8");
        let r = post_files(&ada, &code, &[("body", " \n ")], file, None).await;
        assert_eq!(r.status, 201, "{}", r.body);
        // Text alone as multipart is a post too.
        let r = post_files(&bob, &code, &[("body", "words only")], &[], None).await;
        assert_eq!((r.status, &r.json["attachments"]), (201, &json!([])), "{}", r.body);
        // Neither text nor files: nothing to post.
        let r = post_files(&ada, &code, &[("body", "")], &[], None).await;
        r.assert_problem(422, "invalid-input");
        let r = post_files(&ada, &code, &[], &[], None).await;
        r.assert_problem(422, "invalid-input");
        // A part natter does not take is refused, not silently dropped.
        let r = post_files(&ada, &code, &[("body", "hi"), ("file", "oops")], &[], None).await;
        r.assert_problem(422, "invalid-input");
        assert!(text(&r.json["detail"]).contains("\"file\""), "{}", r.body);
        let r = post_files(&ada, &code, &[("body", "one"), ("body", "two")], &[], None).await;
        r.assert_problem(422, "invalid-input");
        // A body that is not multipart at all.
        let r = ada.post_raw(&format!("/rooms/{code}/messages"), Some("multipart/form-data"), "body=x").await;
        r.assert_problem(400, "malformed-body");
        // And a JSON-only operation does not take multipart.
        let (content_type, body) = multipart(&[("body", "edited")], &[]);
        let r = ada.send_raw(reqwest::Method::PATCH, &format!("/rooms/{code}/messages/1"), Some(&content_type), body).await;
        r.assert_problem(415, "unsupported-media-type");
        assert_eq!(history(&bob, &code).await.len(), 3);
    }

    async fn a_retry_with_the_same_idempotency_key_posts_once(app: TestApp) {
        let (ada, bob, code) = room_of_two(&app).await;
        let file: &[File] = &[("plan.pdf", "application/pdf", PDF)];
        let fields = [("body", "once")];
        let first = post_files(&ada, &code, &fields, file, Some("retry-me")).await;
        let second = post_files(&ada, &code, &fields, file, Some("retry-me")).await;
        assert_eq!((first.status, second.status), (201, 201), "{}", second.body);
        assert_eq!(first.json, second.json, "the retry answers with the first");
        assert_eq!(history(&bob, &code).await.len(), 1);
        // The retry's file was not kept: one file for one message.
        assert_eq!(stored_files(&app.db.files_dir()).len(), 1);
        assert_eq!(spooled(&app), 0);
        // The same key with other files, or other text, is a mistake, said so.
        let other: &[File] = &[("other.pdf", "application/pdf", PDF)];
        post_files(&ada, &code, &fields, other, Some("retry-me")).await.assert_problem(422, "invalid-parameter");
        post_files(&ada, &code, &[("body", "twice")], file, Some("retry-me")).await.assert_problem(422, "invalid-parameter");
        // As JSON, without the file, too.
        let r = Api::send(
            ada.request(reqwest::Method::POST, &format!("/rooms/{code}/messages"))
                .header("idempotency-key", "retry-me")
                .json(&json!({ "body": "once" })),
        ).await;
        r.assert_problem(422, "invalid-parameter");
        assert_eq!(history(&bob, &code).await.len(), 1);
        assert_eq!(stored_files(&app.db.files_dir()).len(), 1);
    }

    async fn api_downloads_answer_range_requests(app: TestApp) {
        let (ada, bob, code) = room_of_two(&app).await;
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
        let r = post_files(&ada, &code, &[], &[("data.bin", "application/octet-stream", &data)], None).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let url = text(&r.json["attachments"][0]["url"]).to_string();
        let (status, headers, bytes) = download(&bob, &url, &[("range", "bytes=1000-1999")]).await;
        assert_eq!(status, 206);
        assert!(bytes == data[1000..2000]);
        assert_eq!(headers["content-range"], "bytes 1000-1999/50000");
        let (status, _, bytes) = download(&bob, &url, &[("range", "bytes=-10")]).await;
        assert_eq!((status, bytes.as_slice()), (206, &data[49_990..]));
        // Past the end: a problem like every API error, with the size.
        let mut req = bob.http.get(&url).header("range", "bytes=60000-");
        req = req.bearer_auth(bob.token.as_deref().unwrap());
        let r = Api::send(req).await;
        r.assert_problem(416, "range-not-satisfiable");
        assert_eq!(r.header("content-range"), Some("bytes */50000"));
        let (status, headers, bytes) = download(&bob, &url, &[]).await;
        assert_eq!((status, bytes.len()), (200, 50_000));
        assert_eq!(headers["accept-ranges"], "bytes");
        assert_eq!(headers["content-type"], "application/octet-stream");
        let etag = headers["etag"].to_str().unwrap().to_string();
        assert_eq!(download(&bob, &url, &[("if-none-match", &etag)]).await.0, 304);
    }

    #[settings(NATTER_LIMIT_POSTS = "1000/10s")]
    async fn hostile_file_names_come_back_exactly_as_cleaned_with_a_valid_content_disposition(app: TestApp) {
        let (ada, bob, code) = room_of_two(&app).await;
        let inputs = hostile_inputs();
        for chunk in inputs.chunks(10) {
            let files: Vec<File> = chunk
                .iter()
                .map(|name| (name.as_str(), "application/octet-stream", b"data".as_slice()))
                .collect();
            let r = post_files(&ada, &code, &[], &files, None).await;
            assert_eq!(r.status, 201, "{}", r.body);
        }
        let names: Vec<String> = inputs.iter().map(|name| natter::files::name::clean_name(&as_sent(name))).collect();
        let mut listed = Vec::new();
        let mut before = None;
        loop {
            let path = match before {
                Some(seq) => format!("/rooms/{code}/messages?before={seq}"),
                None => format!("/rooms/{code}/messages"),
            };
            let page = bob.get(&path).await;
            let messages = page.json["messages"].as_array().unwrap().clone();
            before = messages.first().map(|m| m["seq"].as_i64().unwrap());
            listed.splice(0..0, messages);
            if page.json["has_more"] != json!(true) {
                break;
            }
        }
        let files: Vec<Value> = listed.iter().flat_map(|m| m["attachments"].as_array().unwrap().clone()).collect();
        assert_eq!(files.len(), inputs.len());
        for (file, expected) in files.iter().zip(&names) {
            assert_eq!(text(&file["name"]), expected, "the name as natter cleaned it");
            let (status, headers, body) = download(&bob, text(&file["url"]), &[]).await;
            assert_eq!((status, body.as_slice()), (200, b"data".as_slice()), "{expected:?}");
            let disposition = headers["content-disposition"].to_str().expect("visible ASCII");
            assert!(disposition.starts_with("attachment; filename=\""), "{disposition}");
            let exact = disposition.split("filename*=UTF-8''").nth(1).expect("filename*");
            assert_eq!(&percent_decode(exact), expected, "{disposition}");
        }
    }
}

/// A name as the multipart helper puts it on the wire (as browsers do: `"` and control
/// characters percent-encoded), which is what natter receives and cleans.
fn as_sent(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '"' => "%22".to_string(),
            c if c.is_ascii_control() && c != '\t' => format!("%{:02X}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

/// RFC 5987's percent-encoding undone.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).expect("hex"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("UTF-8")
}
