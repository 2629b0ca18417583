//! The spec served at runtime and the docs page: valid OpenAPI 3, every operation documented,
//! its statuses exactly those the operation really answers; the docs page with a policy of its
//! own while every other page keeps the strict one.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use serde_json::json;
use sha2::Digest;

use crate::both;
use crate::common::TestApp;
use crate::{Api, Reply, api_user};

const STRICT_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Statuses per operation, keyed by (method, path as the spec writes it).
type Statuses = BTreeMap<(String, String), BTreeSet<u16>>;

/// A POST whose body stops arriving after its first byte: answered 408 once the body
/// timeout passes. Only the status is read.
async fn stalled_post(app: &TestApp, api: &Api, path: &str) -> Reply {
    stalled(app, api, "POST", path).await
}

/// A request whose body never arrives in full.
async fn stalled(app: &TestApp, api: &Api, method: &str, path: &str) -> Reply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "{method} /api/v1{path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        app.addr,
        api.token.as_deref().unwrap_or_default()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(2).any(|w| w == b"\r\n") {
        let read = tokio::time::timeout(std::time::Duration::from_secs(10), tcp.read(&mut buf));
        match read.await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => panic!("{method} {path} with a stalled body got no answer"),
        }
    }
    let text = String::from_utf8_lossy(&got);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Reply {
        status,
        headers: Default::default(),
        body: text.into_owned(),
        json: serde_json::Value::Null,
    }
}

async fn spec(app: &TestApp) -> (Reply, openapiv3::OpenAPI) {
    let r = Api::send(reqwest::Client::new().get(app.url("/api/v1/openapi.json"))).await;
    assert_eq!(r.status, 200);
    let parsed = serde_json::from_str(&r.body).expect("the spec is an OpenAPI 3 document");
    (r, parsed)
}

/// The statuses the spec documents for each operation.
fn documented(spec: &openapiv3::OpenAPI) -> Statuses {
    let mut statuses = Statuses::new();
    for (path, item) in spec.paths.iter() {
        let item = item.as_item().expect("paths are inline");
        for (method, operation) in item.iter() {
            let codes = operation
                .responses
                .responses
                .keys()
                .map(|code| match code {
                    openapiv3::StatusCode::Code(code) => *code,
                    other => panic!("{method} {path} documents a status range {other:?}"),
                })
                .collect();
            statuses.insert((method.to_uppercase(), path.clone()), codes);
        }
    }
    statuses
}

/// What is wrong with a spec's structure, beyond what deserializing it checks: `$ref`s that
/// resolve to nothing, path parameters the template and the declarations disagree on (or that
/// are optional), missing or repeated operationIds.
fn structural_problems(raw: &serde_json::Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut refs = Vec::new();
    references(raw, &mut refs);
    for r in &refs {
        match r.strip_prefix('#') {
            Some(pointer) if raw.pointer(pointer).is_some() => {}
            _ => problems.push(format!("{r} resolves to nothing")),
        }
    }
    let Ok(spec) = serde_json::from_value::<openapiv3::OpenAPI>(raw.clone()) else {
        return vec!["not an OpenAPI 3 document".into()];
    };
    let mut operation_ids = BTreeSet::new();
    for (path, item) in spec.paths.iter() {
        let Some(item) = item.as_item() else {
            problems.push(format!("{path} is a reference"));
            continue;
        };
        for (method, op) in item.iter() {
            let name = format!("{method} {path}");
            let mut declared = BTreeSet::new();
            for parameter in item.parameters.iter().chain(&op.parameters) {
                let parameter = match parameter {
                    openapiv3::ReferenceOr::Item(p) => Some(p.clone()),
                    openapiv3::ReferenceOr::Reference { reference } => raw
                        .pointer(reference.trim_start_matches('#'))
                        .and_then(|p| serde_json::from_value(p.clone()).ok()),
                };
                if let Some(openapiv3::Parameter::Path { parameter_data, .. }) = parameter {
                    if !parameter_data.required {
                        problems.push(format!(
                            "{name}: path parameter {} is optional",
                            parameter_data.name
                        ));
                    }
                    if !declared.insert(parameter_data.name.clone()) {
                        problems.push(format!(
                            "{name}: path parameter {} twice",
                            parameter_data.name
                        ));
                    }
                }
            }
            let in_template = template_parameters(path);
            if declared != in_template {
                problems.push(format!("{name}: declares path parameters {declared:?}, the template has {in_template:?}"));
            }
            match &op.operation_id {
                None => problems.push(format!("{name} has no operationId")),
                Some(id) if !operation_ids.insert(id.clone()) => {
                    problems.push(format!("operationId {id} is used twice"))
                }
                Some(_) => {}
            }
        }
    }
    if refs.is_empty() || operation_ids.is_empty() {
        problems.push(format!(
            "nothing to check: {} refs, {} operations",
            refs.len(),
            operation_ids.len()
        ));
    }
    problems
}

/// The structural check finds each kind of mistake, so its silence on the real spec means
/// something.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_structural_check_finds_a_dangling_ref_an_undeclared_parameter_and_a_repeated_operation_id()
 {
    let Some(app) = TestApp::spawn(crate::common::Backend::Sqlite).await else {
        return;
    };
    let (reply, _spec) = spec(&app).await;
    let good = reply.json;
    assert!(structural_problems(&good).is_empty());

    let mut dangling = good.clone();
    dangling["paths"]["/me"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] =
        json!({ "$ref": "#/components/schemas/Nobody" });
    assert_eq!(
        structural_problems(&dangling),
        ["#/components/schemas/Nobody resolves to nothing"]
    );

    let mut undeclared = good.clone();
    undeclared["paths"]["/rooms/{code}"]["get"]["parameters"] = json!([]);
    let problems = structural_problems(&undeclared);
    assert!(
        problems.len() == 1 && problems[0].starts_with("get /rooms/{code}: declares"),
        "{problems:?}"
    );

    let mut repeated = good.clone();
    repeated["paths"]["/rooms"]["get"]["operationId"] =
        good["paths"]["/me"]["get"]["operationId"].clone();
    let problems = structural_problems(&repeated);
    assert!(
        problems.len() == 1 && problems[0].contains("used twice"),
        "{problems:?}"
    );
}

/// Every `$ref` in a JSON document.
fn references(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", serde_json::Value::String(r)) => out.push(r.clone()),
                    _ => references(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

/// The `{name}`s in a path template.
fn template_parameters(path: &str) -> BTreeSet<String> {
    path.split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_string()))
        .collect()
}

/// A JSON body larger than the 64 KiB limit.
fn oversized() -> String {
    json!({ "body": "x".repeat(70 * 1024) }).to_string()
}

/// Calls every operation once for each answer it can give, and records what came back. `app`
/// allows two posts, two rooms and two wrong codes, so the limits are reached too.
async fn provoke_every_status(app: &TestApp) -> Statuses {
    let (_a, ada) = api_user(app, "ada@example.org", "ada").await;
    let (_b, bob) = api_user(app, "bob@example.org", "bob").await;
    let anon = ada.with_token(None);
    let code = ada.create_room("Spec").await;
    let room = format!("/rooms/{code}");
    let members = format!("{room}/members");
    let messages = format!("{room}/messages");
    let leave = format!("{room}/leave");
    let read = format!("{room}/read");
    let mut seen = Statuses::new();
    let mut record = |method: &str, path: &str, reply: Reply| {
        assert!(
            reply.status < 500 || reply.status == 503,
            "{method} {path}: {}",
            reply.body
        );
        // Over a limit or without its database, the answer says when to come back.
        if matches!(reply.status, 429 | 503) {
            let after = reply
                .header("retry-after")
                .and_then(|v| v.parse::<u64>().ok());
            assert!(
                after.is_some_and(|secs| secs > 0),
                "{method} {path} {} without a Retry-After in seconds: {:?}",
                reply.status,
                reply.header("retry-after")
            );
        }
        seen.entry((method.into(), path.into()))
            .or_default()
            .insert(reply.status);
    };
    let join = json!({ "code": code });
    let sessions = ada.get("/me/sessions").await;
    let session = sessions.json[0]["id"]
        .as_str()
        .expect("her browser's session");
    record(
        "DELETE",
        "/me/sessions/{id}",
        ada.delete(&format!("/me/sessions/{session}")).await,
    );

    let room_notify = format!("{room}/notifications");
    let not_hers = format!("/me/sessions/{:032x}", 7);
    for api in [&ada, &anon] {
        record("GET", "/me", api.get("/me").await);
        record("GET", "/me/sessions", api.get("/me/sessions").await);
        record("DELETE", "/me/sessions/{id}", api.delete(&not_hers).await);
        record(
            "GET",
            "/me/notifications",
            api.get("/me/notifications").await,
        );
        record(
            "PUT",
            "/me/notifications",
            api.put("/me/notifications", json!({ "default": "all" }))
                .await,
        );
        record(
            "GET",
            "/rooms/{code}/notifications",
            api.get(&room_notify).await,
        );
        record(
            "PUT",
            "/rooms/{code}/notifications",
            api.put(&room_notify, json!({ "notify": "all" })).await,
        );
        record("GET", "/rooms", api.get("/rooms").await);
        record("GET", "/rooms/{code}", api.get(&room).await);
        record("GET", "/rooms/{code}/members", api.get(&members).await);
        record("GET", "/rooms/{code}/messages", api.get(&messages).await);
        record(
            "POST",
            "/rooms/join",
            api.post("/rooms/join", join.clone()).await,
        );
    }
    // Not a member: not found, each a wrong guess (two allowed), then too many, whatever the
    // route.
    let (_c, cyd) = api_user(app, "cyd@example.org", "cyd").await;
    let (_d, dan) = api_user(app, "dan@example.org", "dan").await;
    record("GET", "/rooms/{code}", bob.get(&room).await);
    record("GET", "/rooms/{code}/members", bob.get(&members).await);
    record("GET", "/rooms/{code}/messages", bob.get(&messages).await);
    record(
        "POST",
        "/rooms/{code}/leave",
        bob.post(&leave, json!({})).await,
    );
    record("GET", "/rooms/{code}/messages", cyd.get(&messages).await);
    record(
        "POST",
        "/rooms/{code}/messages",
        cyd.post_message(&code, "not a member").await,
    );
    record("GET", "/rooms/{code}", cyd.get(&room).await);
    record("GET", "/rooms/{code}/members", cyd.get(&members).await);
    record(
        "POST",
        "/rooms/{code}/leave",
        dan.post(&leave, json!({})).await,
    );
    let (_e, eve) = api_user(app, "eve@example.org", "eve").await;
    for _ in 0..2 {
        record(
            "GET",
            "/rooms/{code}/notifications",
            eve.get(&room_notify).await,
        );
        let all = json!({ "notify": "all" });
        record(
            "PUT",
            "/rooms/{code}/notifications",
            eve.put(&room_notify, all).await,
        );
    }
    record(
        "GET",
        "/rooms/{code}/messages",
        ada.get(&format!("{messages}?limit=0")).await,
    );

    // The POSTs: unauthenticated, unparsable, oversized, not JSON, not found, invalid.
    for (path, spec_path, body) in [
        ("/rooms", "/rooms", json!({ "name": "Two" })),
        ("/rooms/join", "/rooms/join", join.clone()),
        (
            &messages,
            "/rooms/{code}/messages",
            json!({ "body": "hello" }),
        ),
        (&leave, "/rooms/{code}/leave", json!({})),
        (&read, "/rooms/{code}/read", json!({ "seq": 1 })),
    ] {
        record("POST", spec_path, anon.post(path, body.clone()).await);
        record("POST", spec_path, stalled_post(app, &ada, path).await);
        record(
            "POST",
            spec_path,
            ada.post_raw(path, Some("application/json"), oversized())
                .await,
        );
        if spec_path != "/rooms/{code}/leave" {
            record(
                "POST",
                spec_path,
                ada.post_raw(path, Some("application/json"), "{").await,
            );
            record(
                "POST",
                spec_path,
                ada.post_raw(path, Some("text/plain"), "hello").await,
            );
        }
    }
    for (path, spec_path, body) in [
        (
            "/me/notifications",
            "/me/notifications",
            json!({ "default": "all" }),
        ),
        (
            room_notify.as_str(),
            "/rooms/{code}/notifications",
            json!({ "notify": "all" }),
        ),
    ] {
        record("PUT", spec_path, stalled(app, &ada, "PUT", path).await);
        record(
            "PUT",
            spec_path,
            ada.put_raw(path, "application/json", oversized()).await,
        );
        record(
            "PUT",
            spec_path,
            ada.put_raw(path, "application/json", "{").await,
        );
        record(
            "PUT",
            spec_path,
            ada.put_raw(path, "text/plain", "all").await,
        );
        let bad = if spec_path == "/me/notifications" {
            json!({ "default": "default" })
        } else {
            json!({ "notify": "sometimes" })
        };
        record("PUT", spec_path, ada.put(path, bad).await);
        record("PUT", spec_path, anon.put(path, body).await);
    }
    record(
        "POST",
        "/rooms",
        ada.post("/rooms", json!({ "name": "x".repeat(81) })).await,
    );
    record(
        "POST",
        "/rooms/join",
        dan.post("/rooms/join", json!({ "code": "ZZZZ-ZZZZ" }))
            .await,
    );

    // Edits and deletes. Gil: saved, invalid, not his (or not there); Fay: her deleted
    // message cannot be edited, and an edit spends the post budget like a post.
    let one = "/rooms/{code}/messages/{seq}";
    let (_g, gil) = api_user(app, "gil@example.org", "gil").await;
    let (_f, fay) = api_user(app, "fay@example.org", "fay").await;
    for api in [&gil, &fay] {
        assert_eq!(api.post("/rooms/join", join.clone()).await.status, 200);
    }
    let gils = gil.post_message(&code, "gil's").await.json["seq"]
        .as_i64()
        .unwrap();
    let fays = fay.post_message(&code, "fay's").await.json["seq"]
        .as_i64()
        .unwrap();
    let gils = format!("{messages}/{gils}");
    let fays = format!("{messages}/{fays}");
    let nobodys = format!("{messages}/999");
    let edit = json!({ "body": "edited" });
    record("PATCH", one, anon.patch(&gils, edit.clone()).await);
    record("PATCH", one, stalled(app, &gil, "PATCH", &gils).await);
    let patch = reqwest::Method::PATCH;
    let json = Some("application/json");
    record(
        "PATCH",
        one,
        gil.send_raw(patch.clone(), &gils, json, oversized()).await,
    );
    record(
        "PATCH",
        one,
        gil.send_raw(patch.clone(), &gils, json, "{").await,
    );
    record(
        "PATCH",
        one,
        gil.send_raw(patch, &gils, Some("text/plain"), "x").await,
    );
    record("PATCH", one, gil.patch(&nobodys, edit.clone()).await);
    record("PATCH", one, gil.patch(&fays, edit.clone()).await);
    record("PATCH", one, gil.patch(&gils, json!({ "body": " " })).await);
    record("PATCH", one, gil.patch(&gils, edit.clone()).await);
    record("DELETE", one, anon.delete(&fays).await);
    record("DELETE", one, gil.delete(&fays).await);
    record("DELETE", one, fay.delete(&fays).await);
    record("PATCH", one, fay.patch(&fays, edit.clone()).await);
    record("PATCH", one, fay.patch(&fays, edit.clone()).await);

    // A read mark: not a member's, not a seq, then one, then another within 2 s.
    let (_h, hal) = api_user(app, "hal@example.org", "hal").await;
    record(
        "POST",
        "/rooms/{code}/read",
        hal.post(&read, json!({ "seq": 1 })).await,
    );
    record(
        "POST",
        "/rooms/{code}/read",
        ada.post(&read, json!({ "seq": -1 })).await,
    );
    record(
        "POST",
        "/rooms/{code}/read",
        ada.post(&read, json!({ "seq": 1 })).await,
    );
    record(
        "POST",
        "/rooms/{code}/read",
        ada.post(&read, json!({ "seq": 2 })).await,
    );

    // Within the limits, then over them (2 rooms per hour, 2 posts per hour, 2 wrong codes).
    record(
        "POST",
        "/rooms",
        ada.post("/rooms", json!({ "name": "Two" })).await,
    );
    record(
        "POST",
        "/rooms",
        ada.post("/rooms", json!({ "name": "Three" })).await,
    );
    record(
        "POST",
        "/rooms/{code}/messages",
        ada.post_message(&code, "hello").await,
    );
    record(
        "POST",
        "/rooms/{code}/messages",
        ada.post_message(&code, "").await,
    );
    // (A refused post spends nothing.)
    record(
        "POST",
        "/rooms/{code}/messages",
        ada.post_message(&code, "hello again").await,
    );
    record(
        "POST",
        "/rooms/{code}/messages",
        ada.post_message(&code, "over the limit").await,
    );
    record(
        "POST",
        "/rooms/join",
        dan.post("/rooms/join", json!({ "code": "ZZZZ-ZZZY" }))
            .await,
    );
    record(
        "POST",
        "/rooms/join",
        dan.post("/rooms/join", json!({ "code": "ZZZZ-ZZZX" }))
            .await,
    );
    record(
        "POST",
        "/rooms/{code}/leave",
        ada.post(&leave, json!({})).await,
    );

    // Direct conversations: Max and Lea share a room. Created, found, oneself, strangers
    // (two wrong guesses, then too many), and the bodies no POST takes.
    let (_m, max) = api_user(app, "max@example.org", "max").await;
    let (_l, lea) = api_user(app, "lea@example.org", "lea").await;
    let shared = max.create_room("Max and Lea").await;
    assert_eq!(
        lea.post("/rooms/join", json!({ "code": shared }))
            .await
            .status,
        200
    );
    let direct = "/direct/{username}";
    for api in [&max, &max, &anon] {
        record("POST", direct, api.post("/direct/lea", json!({})).await);
        record("GET", "/direct", api.get("/direct").await);
    }
    record("POST", direct, max.post("/direct/max", json!({})).await);
    record("POST", direct, stalled_post(app, &max, "/direct/lea").await);
    record(
        "POST",
        direct,
        max.post_raw("/direct/lea", Some("application/json"), oversized())
            .await,
    );
    for name in ["nobody", "ada", "bob"] {
        record(
            "POST",
            direct,
            lea.post(&format!("/direct/{name}"), json!({})).await,
        );
    }
    // Search: signed out, too long, a bad cursor (neither spends a search), two, then over.
    record("GET", "/search", anon.get("/search?q=hello").await);
    let long = format!("/search?q={}", "x".repeat(201));
    record("GET", "/search", ada.get(&long).await);
    record("GET", "/search", ada.get("/search?q=hello&before=x").await);
    for _ in 0..3 {
        record("GET", "/search", ada.get("/search?q=hello").await);
    }

    // Files: Ivy posts an image and a PDF; members download them, whole, in part, again by
    // tag, past the end; anyone else does not find them (two guesses, then too many).
    let files = provoke_files(app, &join, &code, &mut record).await;
    // Room settings: owners Kim and Pat, members who do not own the rooms, strangers.
    let (kim, kims) = provoke_settings(app, &mut record).await;

    // The database goes away: every operation says so (and nothing else).
    app.state.store.close().await;
    let (ivy, image_token) = files;
    record(
        "GET",
        "/files/{token}",
        ivy.get(&format!("/files/{image_token}")).await,
    );
    record(
        "GET",
        "/files/{token}/thumbnail",
        ivy.get(&format!("/files/{image_token}/thumbnail")).await,
    );
    record("GET", "/me", ada.get("/me").await);
    record("GET", "/me/sessions", ada.get("/me/sessions").await);
    record(
        "DELETE",
        "/me/sessions/{id}",
        ada.delete(&format!("/me/sessions/{:032x}", 8)).await,
    );
    record("GET", "/search", gil.get("/search?q=hello").await);
    record(
        "GET",
        "/me/notifications",
        ada.get("/me/notifications").await,
    );
    record(
        "PUT",
        "/me/notifications",
        ada.put("/me/notifications", json!({ "default": "all" }))
            .await,
    );
    record(
        "GET",
        "/rooms/{code}/notifications",
        ada.get(&room_notify).await,
    );
    record(
        "PUT",
        "/rooms/{code}/notifications",
        ada.put(&room_notify, json!({ "notify": "all" })).await,
    );
    record("GET", "/direct", ada.get("/direct").await);
    record(
        "POST",
        "/direct/{username}",
        ada.post("/direct/bob", json!({})).await,
    );
    record("GET", "/rooms", ada.get("/rooms").await);
    record("GET", "/rooms/{code}", ada.get(&room).await);
    record("GET", "/rooms/{code}/members", ada.get(&members).await);
    record("GET", "/rooms/{code}/messages", ada.get(&messages).await);
    record("POST", "/rooms", ada.post("/rooms", json!({})).await);
    record(
        "POST",
        "/rooms/join",
        ada.post("/rooms/join", join.clone()).await,
    );
    record(
        "POST",
        "/rooms/{code}/messages",
        ada.post_message(&code, "hello").await,
    );
    record(
        "POST",
        "/rooms/{code}/read",
        ada.post(&read, json!({ "seq": 3 })).await,
    );
    record(
        "POST",
        "/rooms/{code}/leave",
        ada.post(&leave, json!({})).await,
    );
    record("PATCH", one, gil.patch(&gils, edit.clone()).await);
    record("DELETE", one, gil.delete(&gils).await);
    for (path, spec_path, body) in settings_operations(&kims) {
        record("POST", spec_path, kim.post(&path, body).await);
    }
    seen
}

/// The room settings operations on room `code`: path, path in the spec, a good body.
fn settings_operations(code: &str) -> [(String, &'static str, serde_json::Value); 4] {
    [
        (
            format!("/rooms/{code}/settings"),
            "/rooms/{code}/settings",
            json!({ "name": "Renamed" }),
        ),
        (
            format!("/rooms/{code}/rotate"),
            "/rooms/{code}/rotate",
            json!({}),
        ),
        (
            format!("/rooms/{code}/members/lee/remove"),
            "/rooms/{code}/members/{username}/remove",
            json!({}),
        ),
        (
            format!("/rooms/{code}/owner"),
            "/rooms/{code}/owner",
            json!({ "username": "lee" }),
        ),
    ]
}

/// The answers of the room settings operations (all but 503), within the spec test's limits
/// (two changes per person per hour, two wrong guesses): returns Kim, an owner, and her room's
/// code as it is at the end.
async fn provoke_settings(
    app: &TestApp,
    record: &mut impl FnMut(&str, &str, Reply),
) -> (Api, String) {
    let (_k, kim) = api_user(app, "kim@example.org", "kim").await;
    let (_l, lee) = api_user(app, "lee@example.org", "lee").await;
    let anon = kim.with_token(None);
    let code = kim.create_room("Kim's").await;
    assert_eq!(
        lee.post("/rooms/join", json!({ "code": code }))
            .await
            .status,
        200
    );
    for (i, (path, spec_path, body)) in settings_operations(&code).into_iter().enumerate() {
        record("POST", spec_path, anon.post(&path, body.clone()).await);
        record("POST", spec_path, stalled_post(app, &kim, &path).await);
        let json = Some("application/json");
        record(
            "POST",
            spec_path,
            kim.post_raw(&path, json, oversized()).await,
        );
        if body != json!({}) {
            record("POST", spec_path, kim.post_raw(&path, json, "{").await);
            record(
                "POST",
                spec_path,
                kim.post_raw(&path, Some("text/plain"), "x").await,
            );
        }
        // A member who does not own the room; strangers, two guesses each.
        record("POST", spec_path, lee.post(&path, body.clone()).await);
        let (_s, stranger) = api_user(
            app,
            &format!("stranger{i}@example.org"),
            &format!("stranger{i}"),
        )
        .await;
        record("POST", spec_path, stranger.post(&path, body).await);
    }
    // Broken rules: a topic too long, someone who is not a member.
    let [settings, rotate, remove, owner] = settings_operations(&code);
    let long = json!({ "topic": "x".repeat(201) });
    record("POST", settings.1, kim.post(&settings.0, long).await);
    let nobody = format!("/rooms/{code}/members/nobody/remove");
    record("POST", remove.1, kim.post(&nobody, json!({})).await);
    let to_nobody = json!({ "username": "nobody" });
    record("POST", owner.1, kim.post(&owner.0, to_nobody).await);
    // Kim's two changes, then too many.
    record("POST", settings.1, kim.post(&settings.0, settings.2).await);
    let rotated = kim.post(&rotate.0, json!({})).await;
    let code = rotated.json["code"]
        .as_str()
        .expect("the new code")
        .to_string();
    record("POST", rotate.1, rotated);
    for (path, spec_path, body) in settings_operations(&code) {
        record("POST", spec_path, kim.post(&path, body).await);
    }
    // Pat removes one member and hands the room to another.
    let (_p, pat) = api_user(app, "pat@example.org", "pat").await;
    let pats = pat.create_room("Pat's").await;
    for name in ["lee", "rex"] {
        let (_x, member) =
            api_user(app, &format!("{name}2@example.org"), &format!("{name}2")).await;
        assert_eq!(
            member
                .post("/rooms/join", json!({ "code": pats }))
                .await
                .status,
            200
        );
    }
    let removed = pat
        .post(&format!("/rooms/{pats}/members/lee2/remove"), json!({}))
        .await;
    record("POST", remove.1, removed);
    let handed = pat
        .post(
            &format!("/rooms/{pats}/owner"),
            json!({ "username": "rex2" }),
        )
        .await;
    record("POST", owner.1, handed);
    (kim, code)
}

/// The answers of the file routes (all but 503): returns Ivy, a member, and her image's token.
async fn provoke_files(
    app: &TestApp,
    join: &serde_json::Value,
    code: &str,
    record: &mut impl FnMut(&str, &str, Reply),
) -> (Api, String) {
    let (_i, ivy) = api_user(app, "ivy@example.org", "ivy").await;
    let (_j, jon) = api_user(app, "jon@example.org", "jon").await;
    assert_eq!(ivy.post("/rooms/join", join.clone()).await.status, 200);
    let png = {
        let img = image::RgbImage::from_pixel(40, 30, image::Rgb([200, 10, 10]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    };
    let (content_type, body) = crate::common::multipart(
        &[("body", "files")],
        &[
            ("red.png", "image/png", &png),
            ("doc.pdf", "application/pdf", b"%PDF-1.4\n%%EOF\n"),
        ],
    );
    let posted = Api::send(
        ivy.request(reqwest::Method::POST, &format!("/rooms/{code}/messages"))
            .header("content-type", content_type)
            .body(body),
    )
    .await;
    assert_eq!(posted.status, 201, "{}", posted.body);
    let token = |i: usize| {
        let url = posted.json["attachments"][i]["url"].as_str().unwrap();
        url.rsplit('/').next().unwrap().to_string()
    };
    let (image, pdf) = (
        format!("/files/{}", token(0)),
        format!("/files/{}", token(1)),
    );
    let thumb = format!("{image}/thumbnail");
    let get = |api: &Api, path: &str, header: Option<(&str, &str)>| {
        let mut req = api.request(reqwest::Method::GET, path);
        if let Some((name, value)) = header {
            req = req.header(name, value);
        }
        Api::send(req)
    };
    let one = "/files/{token}";
    let whole = get(&ivy, &image, None).await;
    let etag = whole.header("etag").unwrap().to_string();
    record("GET", one, whole);
    record(
        "GET",
        one,
        get(&ivy, &image, Some(("range", "bytes=0-9"))).await,
    );
    record(
        "GET",
        one,
        get(&ivy, &image, Some(("if-none-match", &etag))).await,
    );
    record(
        "GET",
        one,
        get(&ivy, &image, Some(("range", "bytes=999999-"))).await,
    );
    record("GET", one, get(&ivy.with_token(None), &image, None).await);
    let two = "/files/{token}/thumbnail";
    let whole = get(&ivy, &thumb, None).await;
    let etag = whole.header("etag").unwrap().to_string();
    record("GET", two, whole);
    record(
        "GET",
        two,
        get(&ivy, &thumb, Some(("if-none-match", &etag))).await,
    );
    record("GET", two, get(&ivy.with_token(None), &thumb, None).await);
    // A file without a thumbnail, for a member: not found (and no wrong guess).
    record(
        "GET",
        two,
        get(&ivy, &format!("{pdf}/thumbnail"), None).await,
    );
    // Jon is no member: two wrong guesses, then too many.
    record("GET", one, get(&jon, &image, None).await);
    record("GET", one, get(&jon, &pdf, None).await);
    record("GET", one, get(&jon, &image, None).await);
    record("GET", two, get(&jon, &thumb, None).await);
    (ivy, token(0))
}

both! {
    async fn the_spec_is_valid_openapi_3_and_documents_every_operation(app: TestApp) {
        let (reply, spec) = spec(&app).await;
        assert!(reply.header("content-type").unwrap().starts_with("application/json"));
        assert!(spec.openapi.starts_with("3."), "{}", spec.openapi);
        assert_eq!(reply.json["openapi"].as_str().map(|v| v.starts_with("3.")), Some(true));
        let description = spec.info.description.clone().unwrap_or_default();
        assert!(description.contains("CSRF") && description.contains("Bearer"), "the docs say why there is no CSRF token");
        assert_eq!(spec.servers[0].url, "/api/v1");
        let schemes = &spec.components.as_ref().unwrap().security_schemes;
        assert_eq!(schemes.len(), 1);
        let expected: BTreeSet<(String, String)> = [
            ("GET", "/me"), ("GET", "/me/sessions"), ("DELETE", "/me/sessions/{id}"), ("GET", "/rooms"), ("POST", "/rooms"), ("POST", "/rooms/join"),
            ("GET", "/rooms/{code}"), ("GET", "/rooms/{code}/members"),
            ("GET", "/rooms/{code}/messages"), ("POST", "/rooms/{code}/messages"),
            ("POST", "/rooms/{code}/leave"), ("POST", "/rooms/{code}/read"),
            ("PATCH", "/rooms/{code}/messages/{seq}"), ("DELETE", "/rooms/{code}/messages/{seq}"),
            ("GET", "/me/notifications"), ("PUT", "/me/notifications"),
            ("GET", "/rooms/{code}/notifications"), ("PUT", "/rooms/{code}/notifications"),
            ("GET", "/files/{token}"), ("GET", "/files/{token}/thumbnail"),
            ("GET", "/direct"), ("POST", "/direct/{username}"),
            ("POST", "/rooms/{code}/settings"), ("POST", "/rooms/{code}/rotate"),
            ("POST", "/rooms/{code}/members/{username}/remove"), ("POST", "/rooms/{code}/owner"),
            ("GET", "/search"),
        ].iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
        assert_eq!(documented(&spec).keys().cloned().collect::<BTreeSet<_>>(), expected);
        for (path, item) in spec.paths.iter() {
            for (method, op) in item.as_item().unwrap().iter() {
                let name = format!("{method} {path}");
                assert!(op.summary.is_some() && op.operation_id.is_some(), "{name}");
                assert!(!op.tags.is_empty(), "{name}");
                assert!(op.security.as_ref().is_some_and(|s| !s.is_empty()), "{name} requires the token");
                assert!(op.responses.responses.len() >= 3, "{name}");
                for (status, response) in &op.responses.responses {
                    let response = response.as_item().unwrap();
                    assert!(!response.description.is_empty(), "{name} {status}");
                    // 304 Not Modified has no body at all.
                    let is_error = !matches!(status, openapiv3::StatusCode::Code(200..=299 | 304));
                    if is_error {
                        assert!(response.content.contains_key("application/problem+json"), "{name} {status}");
                    }
                }
            }
        }
        // Request bodies and results carry examples.
        let raw = &reply.json;
        assert_eq!(raw["components"]["schemas"]["NewMessage"]["example"]["body"], "Hello from curl!");
        assert!(raw["components"]["schemas"]["Message"]["example"].is_object());
        assert!(raw["components"]["schemas"]["Problem"]["example"]["type"].is_string());
        let limited = &raw["paths"]["/rooms/{code}/messages"]["post"]["responses"]["429"];
        assert!(limited["headers"]["Retry-After"].is_object(), "{limited}");
        for (path, item) in raw["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let unavailable = &op["responses"]["503"];
                assert!(unavailable["headers"]["Retry-After"].is_object(), "{method} {path} 503: {unavailable}");
            }
        }
    }

    async fn the_spec_shows_the_multipart_post_and_the_file_routes(app: TestApp) {
        let (reply, _spec) = spec(&app).await;
        let raw = &reply.json;
        let post = &raw["paths"]["/rooms/{code}/messages"]["post"]["requestBody"]["content"];
        assert!(post["application/json; charset=utf-8"]["schema"].is_object(), "{post}");
        let form = &post["multipart/form-data"]["schema"];
        assert_eq!(form["type"], "object", "{form}");
        assert_eq!(form["properties"]["body"]["type"], "string", "{form}");
        assert_eq!(form["properties"]["files"]["type"], "array", "{form}");
        assert_eq!(form["properties"]["files"]["items"]["type"], "string", "{form}");
        assert_eq!(form["properties"]["files"]["items"]["format"], "binary", "{form}");
        // Messages list their files, with the addresses to fetch them from.
        let attachment = &raw["components"]["schemas"]["Attachment"];
        for field in ["name", "size", "type", "url", "width", "height", "thumbnail_url"] {
            assert!(attachment["properties"][field].is_object(), "{field}: {attachment}");
        }
        assert_eq!(raw["components"]["schemas"]["Message"]["properties"]["attachments"]["type"], "array");
        assert!(raw["components"]["schemas"]["Message"]["example"]["attachments"][0]["url"].is_string());
        // The downloads: binary, whole or in part.
        let download = &raw["paths"]["/files/{token}"]["get"]["responses"];
        assert_eq!(download["200"]["content"]["*/*"]["schema"]["format"], "binary", "{download}");
        assert!(download["200"]["headers"]["Content-Disposition"].is_object(), "{download}");
        assert!(download["206"]["headers"]["Content-Range"].is_object(), "{download}");
        assert!(download["416"]["content"]["application/problem+json"].is_object(), "{download}");
        let thumbnail = &raw["paths"]["/files/{token}/thumbnail"]["get"]["responses"];
        assert_eq!(thumbnail["200"]["content"]["image/jpeg"]["schema"]["format"], "binary", "{thumbnail}");
    }

    async fn every_reference_resolves_every_path_parameter_is_declared_and_operation_ids_are_unique(app: TestApp) {
        let (reply, _spec) = spec(&app).await;
        let problems = structural_problems(&reply.json);
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[settings(NATTER_LIMIT_POSTS = "2/1h", NATTER_LIMIT_ROOMS = "2/1h", NATTER_LIMIT_JOIN_FAILS = "2/1m", NATTER_LIMIT_SEARCHES = "2/1h", NATTER_BODY_TIMEOUT = "200ms")]
    async fn every_documented_status_is_one_the_operation_really_answers(app: TestApp) {
        let (_reply, spec) = spec(&app).await;
        let documented = documented(&spec);
        let seen = provoke_every_status(&app).await;
        for (op, statuses) in &documented {
            assert_eq!(seen.get(op), Some(statuses), "{op:?}: documented {statuses:?}, provoked {:?}", seen.get(op));
        }
        assert_eq!(seen.len(), documented.len());
    }

    async fn the_docs_page_has_its_own_policy_and_every_other_page_keeps_the_strict_one(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let docs = app.browser().get("/api/docs").await;
        assert_eq!(docs.status, 200);
        assert!(docs.header("content-type").unwrap().starts_with("text/html"));
        assert!(docs.body.contains("SwaggerUIBundle") && docs.body.contains("/rooms/{code}/messages"));
        let csp = docs.header("content-security-policy").unwrap();
        assert_ne!(csp, STRICT_CSP);
        let script_src = csp.split(';').find(|d| d.trim().starts_with("script-src")).unwrap();
        assert!(!script_src.contains("unsafe"), "{script_src}");
        for directive in ["default-src 'none'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"] {
            assert!(csp.contains(directive), "{csp}");
        }
        // Each inline script is allowed by its hash, and only those.
        let mut inline = Vec::new();
        let mut rest = docs.body.as_str();
        while let Some(start) = rest.find("<script") {
            let (_, body) = rest[start..].split_once('>').unwrap();
            let (text, after) = body.split_once("</script>").unwrap();
            inline.push(text);
            rest = after;
        }
        assert_eq!(inline.len(), 2);
        assert_eq!(script_src.matches("'sha256-").count(), inline.len());
        for script in inline {
            let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(script));
            assert!(script_src.contains(&hash));
        }
        for page in [ada.get("/home").await, ada.get("/profile").await, app.browser().get("/").await, ada.get("/api/v1/openapi.json").await] {
            assert_eq!(page.header("content-security-policy"), Some(STRICT_CSP));
        }
        assert!(ada.get("/profile").await.body.contains("href=\"/api/docs\""), "the profile links the docs");
    }
}
