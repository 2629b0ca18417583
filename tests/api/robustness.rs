//! No input makes the API answer 500, and every refusal is problem+json: bad JSON, wrong types,
//! huge numbers, unicode edge cases, missing fields, wrong content types, oversized bodies,
//! unknown routes and methods.

use serde_json::json;

use crate::both;
use crate::{Api, api_user};

/// POSTs `size` bytes of JSON-ish filler in 1 KiB chunks (no Content-Length) with a raw socket;
/// returns the status line.
async fn chunked_post(addr: &std::net::SocketAddr, path: &str, token: &str, size: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("400\r\n{}\r\n", " ".repeat(1024));
    for _ in 0..size / 1024 {
        // The server may answer and close before reading everything: that is the point.
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

both! {
    async fn bodies_that_are_not_the_expected_json_are_400_problems(app: TestApp) {
        let (_a, api) = api_user(&app, "ada@example.org", "ada").await;
        let code = api.create_room("Robust").await;
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        // `F` stands for the operation's field (`body`, `name`, `code`).
        let bodies: Vec<Vec<u8>> = [
            "", "{", "}", "[]", "null", "123", "\"F\"", "{}", "{\"F\": null}", "{\"F\": 123}",
            "{\"F\": [\"x\"]}", "{\"F\": {\"x\": 1}}", "{\"F\": true}", "{\"F\": 1e400}",
            "{\"F\": -99999999999999999999999}", "{\"F\": \"\\ud800\"}", "{\"F\": \"x\"",
            "{'F': 'x'}", "{\"F\": \"x\"} trailing", &deep,
        ]
        .iter()
        .map(|b| b.as_bytes().to_vec())
        .chain([b"{\"F\": \"\xff\xfe\"}".to_vec(), vec![0xff, 0x00, 0x01]])
        .collect();
        for body in bodies {
            for (path, field) in [(format!("/rooms/{code}/messages"), "body"), ("/rooms".into(), "name"), ("/rooms/join".into(), "code")] {
                let body: Vec<u8> = body.iter().flat_map(|&b| if b == b'F' { field.as_bytes().to_vec() } else { vec![b] }).collect();
                let r = api.post_raw(&path, Some("application/json"), body.clone()).await;
                if field == "name" && (body == b"{}" || body == b"{\"name\": null}") {
                    assert_eq!(r.status, 201, "a room needs no name");
                    continue;
                }
                r.assert_problem(400, "malformed-body");
            }
        }
        assert_eq!(api.get(&format!("/rooms/{code}/messages")).await.json["messages"].as_array().unwrap().len(), 0);
    }

    async fn values_that_parse_but_break_a_rule_are_422_problems(app: TestApp) {
        let (_a, api) = api_user(&app, "ada@example.org", "ada").await;
        let code = api.create_room("Rules").await;
        for body in ["", "   ", "\u{0}", "a\u{0}b", "\u{200b}", "\u{7}", &"x".repeat(4001)] {
            api.post_message(&code, body).await.assert_problem(422, "invalid-input");
        }
        let r = api.post("/rooms", json!({ "name": "x".repeat(81) })).await;
        r.assert_problem(422, "invalid-input");
        assert_eq!(r.json["detail"], "A room name has at most 80 characters.");
        // Unknown fields are ignored, as the spec allows.
        assert_eq!(api.post(&format!("/rooms/{code}/messages"), json!({ "body": "ok", "extra": [1, 2] })).await.status, 201);
    }

    async fn a_body_that_is_not_json_is_a_415_problem(app: TestApp) {
        let (_a, api) = api_user(&app, "ada@example.org", "ada").await;
        let code = api.create_room("Types").await;
        for content_type in [None, Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("multipart/form-data; boundary=x"), Some("application/xml"), Some("nonsense")] {
            for path in [format!("/rooms/{code}/messages"), "/rooms".into(), "/rooms/join".into()] {
                let r = api.post_raw(&path, content_type, "body=hello").await;
                if path.ends_with("/messages") && content_type.is_some_and(|c| c.starts_with("multipart/")) {
                    // A post takes files as multipart (see `files`): this one does not parse.
                    r.assert_problem(400, "malformed-body");
                    continue;
                }
                r.assert_problem(415, "unsupported-media-type");
            }
        }
        assert_eq!(api.post_raw(&format!("/rooms/{code}/messages"), Some("application/json; charset=utf-8"), r#"{"body":"ok"}"#).await.status, 201);
    }

    async fn an_oversized_body_is_a_413_problem_before_anything_is_read(app: TestApp) {
        let (_a, api) = api_user(&app, "ada@example.org", "ada").await;
        let code = api.create_room("Big").await;
        let big = json!({ "body": "x".repeat(70 * 1024) }).to_string();
        for path in [format!("/rooms/{code}/messages"), "/rooms".into(), "/rooms/join".into(), format!("/rooms/{code}/leave")] {
            api.post_raw(&path, Some("application/json"), big.clone()).await.assert_problem(413, "body-too-large");
        }
        // Without a Content-Length (chunked) too.
        let token = api.token.clone().unwrap();
        let status = chunked_post(&app.addr, &format!("/api/v1/rooms/{code}/messages"), &token, 80 * 1024).await;
        assert!(status.contains(" 413 "), "{status}");
        assert_eq!(api.get(&format!("/rooms/{code}")).await.status, 200, "still a member");
    }

    async fn unknown_routes_and_methods_are_problems_too(app: TestApp) {
        let (_a, api) = api_user(&app, "ada@example.org", "ada").await;
        let code = api.create_room("Routes").await;
        api.get("/nowhere").await.assert_problem(404, "not-found");
        api.get(&format!("/rooms/{code}/nowhere")).await.assert_problem(404, "not-found");
        let r = Api::send(api.request(reqwest::Method::DELETE, &format!("/rooms/{code}"))).await;
        r.assert_problem(405, "method-not-allowed");
        let r = Api::send(api.request(reqwest::Method::PUT, "/me")).await;
        r.assert_problem(405, "method-not-allowed");
        // Without a token as well: nothing leaks as HTML or plain text.
        api.with_token(None).get("/nowhere").await.assert_problem(404, "not-found");
    }

    async fn a_token_check_comes_before_any_parsing(app: TestApp) {
        let (_a, api) = api_user(&app, "ada@example.org", "ada").await;
        let code = api.create_room("Order").await;
        let anonymous = api.with_token(None);
        anonymous.post_raw(&format!("/rooms/{code}/messages"), Some("text/plain"), "x").await.assert_problem(401, "unauthorized");
        anonymous.post_raw("/rooms", Some("application/json"), "{").await.assert_problem(401, "unauthorized");
        anonymous.get(&format!("/rooms/{code}/messages?limit=0")).await.assert_problem(401, "unauthorized");
    }
}
