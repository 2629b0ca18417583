//! Search through the API: the page's syntax and rooms, JSON results, cursor paging, the
//! limits as problems.

use crate::both;
use crate::{Api, Reply, api_user};

fn encode(q: &str) -> String {
    url::form_urlencoded::byte_serialize(q.as_bytes()).collect()
}

async fn search(api: &Api, q: &str) -> Reply {
    api.get(&format!("/search?q={}", encode(q))).await
}

fn seqs(reply: &Reply) -> Vec<i64> {
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", reply.body))
        .iter()
        .map(|hit| hit["seq"].as_i64().unwrap())
        .collect()
}

both! {
    async fn the_api_searches_my_rooms_like_the_page(app: TestApp) {
        let (_a, ada) = api_user(&app, "ada@example.org", "ada").await;
        let (_b, bob) = api_user(&app, "bob@example.org", "bob").await;
        let code = ada.create_room("Release crew").await;
        let first = ada.post_message(&code, "The deployment is <b>done</b>").await.json["seq"].as_i64().unwrap();
        let second = ada.post_message(&code, "next deploy on Friday").await.json["seq"].as_i64().unwrap();

        let found = search(&ada, "deplo").await;
        assert_eq!(seqs(&found), vec![second, first]);
        let hit = &found.json["results"][1];
        assert_eq!(hit["room_code"], code.as_str());
        assert_eq!(hit["room_name"], "Release crew");
        assert_eq!(hit["author"], "ada");
        assert_eq!(hit["body"], "The deployment is <b>done</b>", "plain text, as stored");
        assert_eq!(hit["url"], format!("/rooms/{code}/messages/{first}#msg-{first}"));
        assert!(hit["created_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(found.json["next_before"], serde_json::Value::Null);

        assert_eq!(seqs(&search(&ada, "\"deployment is\" from:ada").await), vec![first]);
        assert!(seqs(&search(&bob, "deplo").await).is_empty(), "not bob's room");
        assert!(seqs(&ada.get("/search").await).is_empty(), "no q: nothing");

        search(&ada, &"x".repeat(201)).await.assert_problem(422, "invalid-input");
        ada.get("/search?q=deplo&before=nope").await.assert_problem(422, "invalid-parameter");
        ada.with_token(None).get("/search?q=deplo").await.assert_problem(401, "unauthorized");
    }

    async fn the_api_pages_by_next_before(app: TestApp) {
        let (_a, ada) = api_user(&app, "ada@example.org", "ada").await;
        let code = ada.create_room("Pages").await;
        app.fill(&code, "ada", 45, |i| natter::domain::MessageBody::parse(&format!("page word {i}")).unwrap()).await;
        let mut all = Vec::new();
        let mut path = "/search?q=word".to_string();
        loop {
            let page = ada.get(&path).await;
            all.extend(seqs(&page));
            match page.json["next_before"].as_str() {
                Some(next) => path = format!("/search?q=word&before={next}"),
                None => break,
            }
        }
        let expected: Vec<i64> = (1..=45).rev().collect();
        assert_eq!(all, expected, "newest first, each once");
    }

    #[settings(NATTER_LIMIT_SEARCHES = "2/1h")]
    async fn searching_too_often_through_the_api_is_a_rate_limited_problem(app: TestApp) {
        let (_a, ada) = api_user(&app, "ada@example.org", "ada").await;
        for _ in 0..2 {
            assert_eq!(search(&ada, "anything").await.status, 200);
        }
        let r = search(&ada, "anything").await;
        r.assert_problem(429, "rate-limited");
        assert!(r.header("retry-after").is_some());
    }
}
