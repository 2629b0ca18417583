//! Rooms through the API: list, create, join, one room, members, leave; their refusals.

use serde_json::json;

use crate::both;
use crate::common::hostile_inputs;
use crate::{Api, api_user};

both! {
    async fn creating_a_room_answers_201_with_the_room_and_lists_it(app: TestApp) {
        let (ada, api) = api_user(&app, "ada@example.org", "ada").await;
        let r = api.post("/rooms", json!({ "name": " Book club " })).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let code = r.json["code"].as_str().unwrap().to_string();
        assert_eq!((code.len(), &code[4..5]), (9, "-"));
        assert_eq!(r.json["name"], "Book club");
        assert_eq!(r.json["last_seq"], 0);
        assert!(r.json["created_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(r.header("location"), Some(format!("/api/v1/rooms/{code}").as_str()));
        // Unnamed rooms have a null name.
        let unnamed = api.post("/rooms", json!({})).await;
        assert_eq!((unnamed.status, &unnamed.json["name"]), (201, &serde_json::Value::Null));
        let list = api.get("/rooms").await;
        assert_eq!(list.status, 200);
        let codes: Vec<&str> = list.json["rooms"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap()).collect();
        assert_eq!(codes.len(), 2);
        assert!(codes.contains(&code.as_str()));
        // The web sees the same room.
        assert!(ada.get(&format!("/rooms/{code}")).await.body.contains("Book club"));
    }

    async fn my_rooms_come_most_recently_active_first_with_their_last_seq(app: TestApp) {
        let (_ada, api) = api_user(&app, "ada@example.org", "ada").await;
        let quiet = api.create_room("Quiet").await;
        let busy = api.create_room("Busy").await;
        let first = api.post_message(&quiet, "one").await;
        assert_eq!(first.status, 201);
        api.post_message(&quiet, "two").await;
        let list = api.get("/rooms").await;
        let rooms = list.json["rooms"].as_array().unwrap();
        assert_eq!(rooms[0]["code"], quiet, "{}", list.body);
        assert_eq!(rooms[0]["last_seq"], 2);
        assert_eq!(rooms[1]["code"], busy);
        // Compared as instants: RFC 3339 strings with trimmed fractions do not sort as text
        // ("…05.1Z" > "…05.12Z").
        let at = |i: usize| {
            let s = rooms[i]["last_activity_at"].as_str().unwrap();
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
        };
        assert!(at(0) >= at(1), "{}", list.body);
    }

    async fn joining_by_a_forgiving_code_makes_you_a_member(app: TestApp) {
        let (_ada, ada) = api_user(&app, "ada@example.org", "ada").await;
        let (_bob_browser, bob) = api_user(&app, "bob@example.org", "bob").await;
        let code = ada.create_room("Lobby").await;
        bob.get(&format!("/rooms/{code}")).await.assert_problem(404, "not-found");
        let typed = format!(" {} {} ", code[..4].to_lowercase(), code[5..].to_lowercase());
        let r = bob.post("/rooms/join", json!({ "code": typed })).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json["code"], code);
        assert_eq!(r.json["name"], "Lobby");
        // Again: harmless.
        assert_eq!(bob.post("/rooms/join", json!({ "code": code })).await.status, 200);
        let room = bob.get(&format!("/rooms/{}", code.to_lowercase())).await;
        assert_eq!((room.status, &room.json["code"]), (200, &json!(code)), "any spelling of the code works");
        let members = bob.get(&format!("/rooms/{code}/members")).await;
        assert_eq!(members.status, 200);
        let names: Vec<&str> = members.json["members"].as_array().unwrap().iter().map(|m| m["username"].as_str().unwrap()).collect();
        assert_eq!(names, ["ada", "bob"]);
        assert_eq!(members.json["members"][0]["online"], false);
        assert!(members.json["members"][0]["joined_at"].is_string());
    }

    async fn members_show_who_has_the_room_open(app: TestApp) {
        let (ada_browser, ada) = api_user(&app, "ada@example.org", "ada").await;
        let (_bob_browser, bob) = api_user(&app, "bob@example.org", "bob").await;
        let code = ada.create_room("Presence").await;
        bob.post("/rooms/join", json!({ "code": code })).await;
        let socket = ada_browser.socket(&code, Some(0)).await.unwrap();
        let online = crate::common::eventually(std::time::Duration::from_secs(10), || async {
            let members = bob.get(&format!("/rooms/{code}/members")).await;
            members.json["members"][0]["username"] == "ada" && members.json["members"][0]["online"] == true
        })
        .await;
        assert!(online, "ada is online and listed first");
        let members = bob.get(&format!("/rooms/{code}/members")).await;
        assert_eq!(members.json["members"][1]["online"], false, "bob has no socket open");
        socket.close().await;
    }

    async fn a_wrong_code_is_refused_and_guessing_is_limited(app: TestApp) {
        let (_b, bob) = api_user(&app, "bob@example.org", "bob").await;
        for typed in ["ZZZZ-ZZZZ", "nonsense", "<script>alert(1)</script>"] {
            let r = bob.post("/rooms/join", json!({ "code": typed })).await;
            r.assert_problem(422, "invalid-input");
            assert!(r.json["detail"].as_str().unwrap().contains("no room with that code"));
        }
        for _ in 0..7 {
            assert_eq!(bob.post("/rooms/join", json!({ "code": "ZZZZ-ZZZY" })).await.status, 422);
        }
        let limited = bob.post("/rooms/join", json!({ "code": "ZZZZ-ZZZX" })).await;
        limited.assert_problem(429, "rate-limited");
        let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        // While limited even a right code is refused; the web shares the budget.
        let (_a, ada) = api_user(&app, "ada@example.org", "ada").await;
        let code = ada.create_room("Real").await;
        bob.post("/rooms/join", json!({ "code": code })).await.assert_problem(429, "rate-limited");
        assert_eq!(_b.post_form("/home", "/rooms/join", &[("code", &code)]).await.status, 429);
    }

    #[settings(NATTER_LIMIT_ROOMS = "2/1h")]
    async fn creating_rooms_is_limited_like_the_web(app: TestApp) {
        let (ada_browser, ada) = api_user(&app, "ada@example.org", "ada").await;
        ada.create_room("one").await;
        ada.create_room("two").await;
        let r = ada.post("/rooms", json!({ "name": "three" })).await;
        r.assert_problem(429, "rate-limited");
        assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() > 60);
        assert_eq!(ada_browser.post_form("/home", "/rooms", &[("name", "four")]).await.status, 429, "one budget for both");
        assert_eq!(ada.get("/rooms").await.json["rooms"].as_array().unwrap().len(), 2);
    }

    #[settings(NATTER_LIMIT_ROOMS = "1000/1h")]
    async fn room_names_follow_the_web_rules(app: TestApp) {
        let (_a, api) = api_user(&app, "ada@example.org", "ada").await;
        for input in hostile_inputs().into_iter().chain(["x".repeat(80), "x".repeat(81), "a\nb".into()]) {
            let r = api.post("/rooms", json!({ "name": input })).await;
            match natter::domain::RoomName::parse(&input) {
                Ok(name) if name.as_str().is_empty() => {
                    assert_eq!((r.status, &r.json["name"]), (201, &serde_json::Value::Null), "{input:?}");
                }
                Ok(name) => {
                    assert_eq!(r.status, 201, "{input:?}: {}", r.body);
                    assert_eq!(r.json["name"], name.as_str(), "{input:?}");
                    let code = r.json["code"].as_str().unwrap();
                    assert_eq!(api.get(&format!("/rooms/{code}")).await.json["name"], name.as_str());
                }
                Err(_) => r.assert_problem(422, "invalid-input"),
            }
        }
    }

    #[settings(NATTER_LIMIT_JOIN_FAILS = "1000/1m")]
    async fn hostile_join_codes_are_refused_never_a_500(app: TestApp) {
        let (_a, api) = api_user(&app, "ada@example.org", "ada").await;
        for input in hostile_inputs() {
            api.post("/rooms/join", json!({ "code": input })).await.assert_problem(422, "invalid-input");
        }
    }

    // (Each 404 is a wrong guess, allowed here by the hundred: guessing has its own test.)
    #[settings(NATTER_LIMIT_JOIN_FAILS = "1000/1m")]
    async fn a_room_you_are_not_in_is_not_found_whatever_its_spelling(app: TestApp) {
        let (_a, ada) = api_user(&app, "ada@example.org", "ada").await;
        let (_b, bob) = api_user(&app, "bob@example.org", "bob").await;
        let code = ada.create_room("Private").await;
        for path in [
            format!("/rooms/{code}"),
            format!("/rooms/{code}/members"),
            format!("/rooms/{code}/messages"),
            "/rooms/ABCD-EFGH".into(),
            "/rooms/not-a-code/members".into(),
        ] {
            bob.get(&path).await.assert_problem(404, "not-found");
        }
        bob.post_message(&code, "sneaky").await.assert_problem(404, "not-found");
        bob.post(&format!("/rooms/{code}/leave"), json!({})).await.assert_problem(404, "not-found");
        for input in hostile_inputs() {
            let encoded: String = url::form_urlencoded::byte_serialize(input.as_bytes()).collect();
            let r = bob.get(&format!("/rooms/{encoded}/members")).await;
            r.assert_problem(404, "not-found");
        }
    }

    // 10 per hour: the budget cannot refill while the test runs.
    #[settings(NATTER_LIMIT_JOIN_FAILS = "10/1h")]
    async fn probing_codes_through_the_api_costs_wrong_guesses_until_refused(app: TestApp) {
        let (_a, ada) = api_user(&app, "ada@example.org", "ada").await;
        let (eve_browser, eve) = api_user(&app, "eve@example.org", "eve").await;
        let foreign = ada.create_room("Private").await;
        // Every room operation, for someone else's room and for no room at all: the first ten
        // answers are "not found" (ten wrong guesses), every later one is "too many".
        let probe = |api: Api, code: String, op: usize| async move {
            let room = format!("/rooms/{code}");
            match op {
                0 => api.get(&room).await,
                1 => api.get(&format!("{room}/members")).await,
                2 => api.get(&format!("{room}/messages")).await,
                3 => api.post_message(&code, "hello?").await,
                _ => api.post(&format!("{room}/leave"), json!({})).await,
            }
        };
        let mut i = 0;
        for _ in 0..2 {
            for code in [foreign.as_str(), "ZZZZ-ZZZZ"] {
                for op in 0..5 {
                    let r = probe(eve.clone(), code.to_string(), op).await;
                    if i < 10 {
                        r.assert_problem(404, "not-found");
                    } else {
                        r.assert_problem(429, "rate-limited");
                        assert!(r.header("retry-after").is_some_and(|s| s.parse::<u64>().is_ok()), "{i}");
                        assert!(r.json["detail"].as_str().unwrap().contains("wrong codes"), "{}", r.body);
                    }
                    i += 1;
                }
            }
        }
        // One budget with joining, through the API and the pages.
        eve.post("/rooms/join", json!({ "code": foreign })).await.assert_problem(429, "rate-limited");
        assert_eq!(eve_browser.post_form("/home", "/rooms/join", &[("code", "ZZZZ-ZZZY")]).await.status, 429);
        // Members are never charged.
        for op in 0..4 {
            for _ in 0..3 {
                let r = probe(ada.clone(), foreign.clone(), op).await;
                assert!(matches!(r.status, 200 | 201), "{op}: {}", r.body);
            }
        }
        for _ in 0..10 {
            ada.post("/rooms/join", json!({ "code": "ZZZZ-ZZZY" })).await.assert_problem(422, "invalid-input");
        }
    }

    #[settings(NATTER_LIMIT_MEMBERSHIP = "3/1h")]
    async fn joining_and_leaving_are_limited_like_the_web(app: TestApp) {
        let (_a, ada) = api_user(&app, "ada@example.org", "ada").await;
        let (bob_browser, bob) = api_user(&app, "bob@example.org", "bob").await;
        let code = ada.create_room("Revolving door").await;
        let leave = format!("/rooms/{code}/leave");
        assert_eq!(bob.post("/rooms/join", json!({ "code": code })).await.status, 200);
        assert_eq!(bob.post(&leave, json!({})).await.status, 204);
        assert_eq!(bob.post("/rooms/join", json!({ "code": code })).await.status, 200);
        for r in [bob.post(&leave, json!({})).await, bob.post("/rooms/join", json!({ "code": code })).await] {
            r.assert_problem(429, "rate-limited");
            assert!(r.header("retry-after").is_some_and(|s| s.parse::<u64>().is_ok()), "{}", r.body);
            assert!(r.json["detail"].as_str().unwrap().contains("joined and left"), "{}", r.body);
        }
        // One budget with the pages.
        assert_eq!(bob_browser.post_form(&format!("/rooms/{code}"), &leave, &[]).await.status, 429);
        assert_eq!(bob.get(&format!("/rooms/{code}")).await.status, 200, "still a member");
    }

    async fn leaving_answers_204_and_the_room_is_gone_from_my_list(app: TestApp) {
        let (ada_browser, ada) = api_user(&app, "ada@example.org", "ada").await;
        let (_b, bob) = api_user(&app, "bob@example.org", "bob").await;
        let code = ada.create_room("Brief").await;
        bob.post("/rooms/join", json!({ "code": code })).await;
        let mut socket = ada_browser.socket(&code, Some(0)).await.unwrap();
        // The socket subscribes to the room once upgraded: its member list says it has.
        assert!(socket.wait_for("id=\"members\"", std::time::Duration::from_secs(10)).await);
        let r = Api::send(bob.request(reqwest::Method::POST, &format!("/rooms/{code}/leave"))).await;
        assert_eq!((r.status, r.body.as_str()), (204, ""));
        assert!(bob.get("/rooms").await.json["rooms"].as_array().unwrap().is_empty());
        bob.get(&format!("/rooms/{code}")).await.assert_problem(404, "not-found");
        let names = ada.get(&format!("/rooms/{code}/members")).await;
        assert_eq!(names.json["members"].as_array().unwrap().len(), 1);
        // Browsers in the room see bob leave.
        let bob_id = bob.get("/me").await.json["id"].as_i64().unwrap();
        let gone = format!("id=\"member-{bob_id}\" data-online=\"false\" hidden");
        assert!(socket.wait_for(&gone, std::time::Duration::from_secs(10)).await, "{:?}", socket.frames);
        socket.close().await;
    }
}
