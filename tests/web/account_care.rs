//! Care of one's account (issue 18): the sessions page ends any one session (its sockets close
//! with 4401), a username changes under the rules of choosing one and at most once a day (open
//! member lists follow live), the export is valid JSON streamed page by page, and deleting an
//! account leaves no row that names the person, while the others' open rooms stay consistent.
//! Each on both backends, without JavaScript (plain forms) and over real sockets.

use std::time::Duration;

use sqlx::AssertSqlSafe;

use crate::both;
use crate::common::{Backend, Browser, Closed, TestApp, extract_attr, hostile_inputs};

const WAIT: Duration = Duration::from_secs(15);

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// A browser that sends `user_agent`, as a real one would.
fn browser_as(app: &TestApp, user_agent: &str) -> Browser {
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let http = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(user_agent)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    Browser {
        http,
        jar,
        base: app.base.clone(),
    }
}

/// The public ids of the sessions `/profile/sessions` lists, in order.
fn session_ids(page: &str) -> Vec<String> {
    page.split("id=\"session-")
        .skip(1)
        .filter_map(|p| p.split('"').next().map(str::to_string))
        .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect()
}

/// The session list item with this public id.
fn session_item<'a>(page: &'a str, id: &str) -> &'a str {
    let start = page
        .find(&format!("id=\"session-{id}\""))
        .expect("the session is listed");
    &page[start..start + page[start..].find("</li>").expect("closed")]
}

async fn end(who: &Browser, id: &str) -> crate::common::Answer {
    who.post_form(
        "/profile/sessions",
        &format!("/profile/sessions/{id}/end"),
        &[],
    )
    .await
}

async fn rename(who: &Browser, name: &str) -> crate::common::Answer {
    who.post_form(
        "/profile/username",
        "/profile/username",
        &[("username", name)],
    )
    .await
}

async fn user_id(app: &TestApp, name: &str) -> i64 {
    let lower = name.to_ascii_lowercase();
    connect(app)
        .await
        .number(format!(
            "SELECT id FROM users WHERE username_key = '{lower}'"
        ))
        .await
}

/// A direct connection to the test's database, as an operator's SQL client would be.
enum Sql {
    Lite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

async fn connect(app: &TestApp) -> Sql {
    let url = app.db.url();
    match app.db.backend() {
        Backend::Sqlite => Sql::Lite(sqlx::SqlitePool::connect(&url).await.expect("connect")),
        Backend::Postgres => Sql::Pg(sqlx::PgPool::connect(&url).await.expect("connect")),
    }
}

impl Sql {
    /// The one integer `sql` selects.
    async fn number(&self, sql: String) -> i64 {
        let result = match self {
            Sql::Lite(p) => {
                sqlx::query_scalar(AssertSqlSafe(sql.clone()))
                    .fetch_one(p)
                    .await
            }
            Sql::Pg(p) => {
                sqlx::query_scalar(AssertSqlSafe(sql.clone()))
                    .fetch_one(p)
                    .await
            }
        };
        result.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The texts `sql` selects, one a row.
    async fn texts(&self, sql: String) -> Vec<String> {
        let result = match self {
            Sql::Lite(p) => {
                sqlx::query_scalar(AssertSqlSafe(sql.clone()))
                    .fetch_all(p)
                    .await
            }
            Sql::Pg(p) => {
                sqlx::query_scalar(AssertSqlSafe(sql.clone()))
                    .fetch_all(p)
                    .await
            }
        };
        result.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The (text, text) pairs `sql` selects.
    async fn pairs(&self, sql: String) -> Vec<(String, String)> {
        let result = match self {
            Sql::Lite(p) => {
                sqlx::query_as(AssertSqlSafe(sql.clone()))
                    .fetch_all(p)
                    .await
            }
            Sql::Pg(p) => {
                sqlx::query_as(AssertSqlSafe(sql.clone()))
                    .fetch_all(p)
                    .await
            }
        };
        result.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

both! {
    async fn the_sessions_page_lists_each_browser_and_ends_any_one_of_them(app: TestApp) {
        let laptop = browser_as(&app, FIREFOX);
        laptop.dev_sign_in("acct-ada@example.org").await;
        let r = laptop.post_form("/username", "/username", &[("username", "ada")]).await;
        assert_eq!(r.status, 303, "{}", r.body);
        let phone = browser_as(&app, CHROME);
        phone.dev_sign_in("acct-ada@example.org").await;
        let code = laptop.create_room("Sessions").await;
        let mut phone_socket = phone.socket(&code, None).await.expect("the phone's socket opens");

        let profile = laptop.get("/profile").await;
        assert!(profile.body.contains("href=\"/profile/sessions\""), "the profile links to the sessions");
        let page = laptop.get("/profile/sessions").await;
        assert_eq!(page.status, 200, "{}", page.body);
        let ids = session_ids(&page.body);
        assert_eq!(ids.len(), 2, "{}", page.body);
        let (mine, other): (Vec<&String>, Vec<&String>) =
            ids.iter().partition(|id| session_item(&page.body, id).contains("This browser"));
        assert_eq!((mine.len(), other.len()), (1, 1), "exactly one is this browser");
        assert!(session_item(&page.body, mine[0]).contains("Firefox on Linux"), "{}", page.body);
        assert!(session_item(&page.body, other[0]).contains("Chrome on Windows"), "{}", page.body);
        assert!(!page.body.contains("id=\"session-token-"), "no API token yet");

        // Someone else cannot end it (404, like an id that never was), nor can a forged form.
        let bob = app.signed_in("acct-bob@example.org", "bob").await;
        assert_eq!(end(&bob, other[0]).await.status, 404);
        assert_eq!(end(&bob, "not-an-id").await.status, 404);
        assert_eq!(end(&laptop, &"0".repeat(32)).await.status, 404);
        let forged = laptop.post(&format!("/profile/sessions/{}/end", other[0]), &[]).await;
        assert_eq!(forged.status, 403, "no CSRF token: refused");

        let ended = end(&laptop, other[0]).await;
        assert_eq!((ended.status, ended.location()), (303, "/profile/sessions".to_string()));
        assert_eq!(phone_socket.closed(WAIT).await, Closed::Code(4401), "the phone's socket closes with 4401");
        let signed_out = phone.get("/home").await;
        assert_eq!(signed_out.status, 303, "the phone is signed out");
        let page = laptop.get("/profile/sessions").await;
        assert_eq!(session_ids(&page.body), vec![mine[0].clone()]);

        // Ending this browser's own session signs it out.
        let own = end(&laptop, mine[0]).await;
        assert_eq!((own.status, own.location()), (303, "/".to_string()));
        assert_eq!(laptop.get("/home").await.status, 303);
    }

    async fn the_sessions_page_lists_api_tokens_with_a_way_to_revoke_them(app: TestApp) {
        let ada = app.signed_in("acct-tok@example.org", "ada").await;
        let r = ada.post_form("/profile", "/profile/tokens", &[("name", "<b>deploy</b>")]).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let page = ada.get("/profile/sessions").await;
        assert!(page.body.contains("&lt;b&gt;deploy&lt;/b&gt;"), "{}", page.body);
        let revoke = extract_attr(&page.body, "action=\"/profile/tokens/").expect("a revoke form");
        let r = ada.post_form("/profile/sessions", &format!("/profile/tokens/{revoke}"), &[]).await;
        assert_eq!(r.status, 303, "{}", r.body);
        assert!(ada.get("/profile/sessions").await.body.contains("You have no API tokens"));
    }

    async fn a_username_changes_by_the_rules_of_choosing_one_at_most_once_a_day(app: TestApp) {
        let ada = app.signed_in("acct-ren@example.org", "ada").await;
        let bob = app.signed_in("acct-ren-bob@example.org", "bob").await;
        let code = ada.create_room("Renames").await;
        bob.join(&code).await;
        let ada_id = user_id(&app, "ada").await;
        let said = ada.say(&code, "before the change").await;
        bob.say(&code, "hello @ada").await;
        let mut watching = bob.socket(&code, None).await.expect("bob's socket");
        assert!(watching.wait_for(&format!("id=\"member-{ada_id}\""), WAIT).await);

        let form = ada.get("/profile/username").await;
        assert_eq!(form.status, 200);
        assert!(form.body.contains("value=\"ada\""), "{}", form.body);
        // Taken in any case, reserved, malformed: 422 with the typed value.
        for (typed, why) in [("BOB", "taken"), ("Admin", "reserved"), ("a b", "")] {
            let r = rename(&ada, typed).await;
            assert_eq!(r.status, 422, "{typed}: {}", r.body);
            assert!(r.body.contains(&format!("value=\"{typed}\"")), "{typed}: the typed value comes back");
            assert!(r.body.contains(why), "{typed}: {}", r.body);
        }
        let done = rename(&ada, "Ada_Lovelace").await;
        assert_eq!((done.status, done.location()), (303, "/profile".to_string()), "{}", done.body);
        assert!(ada.get("/profile").await.body.contains("Ada_Lovelace"));

        // Bob's open page: the member entry is replaced live, and a system line says so.
        assert!(watching.wait_for_new("changed their username (was ada)", WAIT).await);
        assert!(watching.wait_for("Ada_Lovelace", WAIT).await);
        // A fresh page shows the new name on the old message, and the mention still points at her.
        let page = bob.get(&format!("/rooms/{code}")).await;
        let article = &page.body[page.body.find(&format!("id=\"msg-{said}\"")).expect("the old message")..];
        assert!(article[..article.find("</article>").unwrap()].contains("Ada_Lovelace"));
        assert!(page.body.contains(&format!("data-user=\"{ada_id}\"")), "the mention is stored by id");

        // Once a day: refused with when it is possible again (429, Retry-After).
        let again = rename(&ada, "ada2").await;
        assert_eq!(again.status, 429, "{}", again.body);
        let retry: u64 = again.header("retry-after").expect("Retry-After").parse().unwrap();
        assert!(retry > 86_000 && retry <= 86_400, "{retry}");
        assert!(again.body.contains("once a day") && again.body.contains("value=\"ada2\""), "{}", again.body);
        assert!(again.body.contains("You can change it again after"), "{}", again.body);
        // The old name is free for someone else.
        let cleo = app.signed_in("acct-ren-cleo@example.org", "cleo").await;
        assert_eq!(rename(&cleo, "ADA").await.status, 303);
    }

    async fn changing_only_the_case_of_ones_own_name_is_allowed(app: TestApp) {
        let ada = app.signed_in("acct-case@example.org", "ada").await;
        let r = rename(&ada, "ADA").await;
        assert_eq!(r.status, 303, "{}", r.body);
        assert!(ada.get("/profile").await.body.contains(">ADA<"));
        // The same name again is no change (and spends nothing).
        assert_eq!(rename(&ada, "ADA").await.status, 303);
    }

    async fn hostile_usernames_are_refused_or_shown_as_text(app: TestApp) {
        let ada = app.signed_in("acct-hostile@example.org", "ada").await;
        for input in hostile_inputs() {
            let r = rename(&ada, &input).await;
            assert!([303, 422, 429].contains(&r.status), "{input:?}: {} {}", r.status, r.body);
            if r.status != 303 {
                assert!(!r.body.contains("<script>alert"), "{input:?} came back as markup");
                assert!(!r.body.contains("<svg onload"), "{input:?} came back as markup");
            }
        }
    }

    #[settings(NATTER_LIMIT_POSTS = "100000/1s")]
    async fn the_export_is_json_with_profile_memberships_and_my_messages(app: TestApp) {
        let ada = app.signed_in("acct-exp@example.org", "ada").await;
        let bob = app.signed_in("acct-exp-bob@example.org", "bob").await;
        let code = ada.create_room("Export <room>").await;
        bob.join(&code).await;
        let mut sent = Vec::new();
        for input in hostile_inputs() {
            let csrf = ada.csrf_from(&format!("/rooms/{code}")).await;
            let id = format!("{:032x}", rand::random::<u128>());
            let r = ada
                .post(&format!("/rooms/{code}/messages"), &[("body", &input), ("client_id", &id), ("csrf", &csrf)])
                .await;
            if r.status == 303 {
                sent.push(input);
            }
        }
        assert!(sent.len() > 20, "most hostile bodies are accepted");
        bob.say(&code, "not mine").await;
        // A file, linked absolutely.
        let csrf = ada.csrf_from(&format!("/rooms/{code}")).await;
        let id = format!("{:032x}", rand::random::<u128>());
        let r = ada
            .post_multipart(
                &format!("/rooms/{code}/messages"),
                &[("csrf", &csrf), ("body", "with a file"), ("client_id", &id)],
                &[("notes.txt", "text/plain", b"hello")],
                &[],
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.body);
        // A direct conversation names the other person, never its code.
        assert_eq!(ada.post_form("/home", "/dm/bob", &[]).await.status, 303);

        let (status, headers, bytes) = ada.get_bytes("/profile/export", &[]).await;
        assert_eq!(status, 200);
        assert_eq!(
            headers.get("content-disposition").and_then(|v| v.to_str().ok()),
            Some("attachment; filename=\"natter-export-ada.json\"")
        );
        assert!(headers.get("content-type").unwrap().to_str().unwrap().starts_with("application/json"));
        let export: serde_json::Value = serde_json::from_slice(&bytes).expect("valid JSON");
        assert_eq!(export["profile"]["username"], "ada");
        assert_eq!(export["profile"]["email"], "acct-exp@example.org");
        let memberships = export["memberships"].as_array().unwrap();
        assert_eq!(memberships.len(), 2, "{memberships:?}");
        assert_eq!(memberships[0]["room"], code.as_str());
        assert_eq!(memberships[0]["name"], "Export <room>");
        assert_eq!(memberships[1]["direct_with"], "bob");
        assert!(memberships[1].get("room").is_none(), "a direct conversation's code is never shown");

        let messages = export["messages"].as_array().unwrap();
        let bodies: Vec<&str> = messages.iter().map(|m| m["body"].as_str().unwrap()).collect();
        // Exactly what the database holds for her, byte for byte (bodies are stored trimmed).
        let stored = connect(&app).await.texts(
            "SELECT m.body FROM messages m JOIN users u ON u.id = m.user_id \
             WHERE u.username = 'ada' AND m.kind = 'text' ORDER BY m.room_id, m.seq".into(),
        ).await;
        assert_eq!(bodies, stored.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(bodies.len(), sent.len() + 1);
        for markup in ["<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "'; DROP TABLE messages; --", "😀"] {
            assert!(bodies.contains(&markup), "{markup:?} round-trips exactly");
        }
        assert!(!bodies.contains(&"not mine"));
        let with_file = messages.iter().find(|m| m["body"] == "with a file").unwrap();
        let link = with_file["attachments"][0].as_str().unwrap();
        assert!(link.starts_with(&format!("{}/files/", app.base)) && link.ends_with("/notes.txt"), "{link}");
        assert_eq!(ada.get_bytes(link, &[]).await.0, 200, "the link serves the file");
        assert!(messages.iter().all(|m| m["room"] == code.as_str() && m["seq"].is_i64() && m["created_at"].is_string()));

        // A few an hour.
        for _ in 0..2 {
            assert_eq!(ada.get_bytes("/profile/export", &[]).await.0, 200);
        }
        let limited = ada.get("/profile/export").await;
        assert_eq!(limited.status, 429);
        assert!(limited.header("retry-after").is_some());
    }
}

/// What deleting an account is tested with: ada (deleted) owns a room with bob and cleo, is in
/// bob's room (and was made its owner), talks with bob directly, was renamed once, has a
/// token; bob mentions her. Returns (ada, bob, ada's id, her room, bob's room, the DM's code).
async fn doomed(app: &TestApp) -> (Browser, Browser, i64, String, String, String, String) {
    let ada = app.signed_in("acct-del@example.org", "zelda").await;
    let bob = app.signed_in("acct-del-bob@example.org", "bob").await;
    let cleo = app.signed_in("acct-del-cleo@example.org", "cleo").await;
    let ada_id = user_id(app, "zelda").await;
    let hers = ada.create_room("Book club").await;
    bob.join(&hers).await;
    cleo.join(&hers).await;
    let his = bob.create_room("Bob's").await;
    ada.join(&his).await;
    let r = bob
        .post_form(
            &format!("/rooms/{his}"),
            &format!("/rooms/{his}/owner"),
            &[("username", "zelda")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    ada.say(&hers, "first words of hers").await;
    ada.say(&his, "hers in the other room").await;
    bob.say(&hers, "hi @zelda").await;
    let csrf = ada.csrf_from(&format!("/rooms/{hers}")).await;
    let id = format!("{:032x}", rand::random::<u128>());
    let r = ada
        .post_multipart(
            &format!("/rooms/{hers}/messages"),
            &[
                ("csrf", &csrf),
                ("body", "a file of hers"),
                ("client_id", &id),
            ],
            &[("notes.txt", "text/plain", b"hello")],
            &[],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(ada.post_form("/home", "/dm/bob", &[]).await.status, 303);
    let dm_page = ada.get("/dm/bob").await;
    let dm = extract_attr(&dm_page.body, "data-room=\"").expect("the conversation");
    ada.say_on("/dm/bob", &dm, "hers to bob directly").await;
    // A room where she is a plain member: only the line that her account is gone is written there.
    let cleos = cleo.create_room("Cleo's").await;
    ada.join(&cleos).await;
    bob.join(&cleos).await;
    ada.say(&cleos, "hers in a room she does not own").await;
    assert_eq!(rename(&ada, "Zelda_X").await.status, 303);
    let r = ada
        .post_form("/profile", "/profile/tokens", &[("name", "zelda's bot")])
        .await;
    assert_eq!(r.status, 201);
    (ada, bob, ada_id, hers, his, dm, cleos)
}

/// Every row of every table that still names the person: their id in a column that holds user
/// ids, or their email or any name they had in any text column. Other people's own words (bob's
/// "hi @zelda") are theirs and are left out by `except_bodies_of`.
async fn rows_naming(
    app: &TestApp,
    id: i64,
    words: &[&str],
    except_bodies_of: &[i64],
) -> Vec<String> {
    let db = connect(app).await;
    let columns: Vec<(String, String)> = match app.db.backend() {
        Backend::Sqlite => db.pairs(
            "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' \
               AND m.name NOT LIKE 'messages_fts%' AND m.name <> '_sqlx_migrations'".into(),
        ).await,
        Backend::Postgres => db.pairs(
            "SELECT CAST(table_name AS TEXT), CAST(column_name AS TEXT) FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations'".into(),
        ).await,
    };
    assert!(
        columns.iter().any(|(t, _)| t == "mentions"),
        "the scan sees every table"
    );
    let mut found = Vec::new();
    for (table, column) in &columns {
        let is_person = column.ends_with("user_id") || column == "created_by";
        let mut conditions = Vec::new();
        if is_person || (table == "users" && column == "id") {
            conditions.push(format!("{column} = {id}"));
        } else if column == "direct_pair" {
            conditions.push(format!("{column} LIKE '{id}:%' OR {column} LIKE '%:{id}'"));
        }
        for word in words {
            conditions.push(format!(
                "LOWER(CAST({column} AS TEXT)) LIKE '%{}%'",
                word.to_lowercase()
            ));
        }
        let mut sql = format!(
            "SELECT COUNT(*) FROM {table} WHERE ({})",
            conditions.join(" OR ")
        );
        if table == "messages" && !except_bodies_of.is_empty() {
            let others: Vec<String> = except_bodies_of.iter().map(i64::to_string).collect();
            sql.push_str(&format!(
                " AND NOT (kind = 'text' AND user_id IN ({}))",
                others.join(",")
            ));
        }
        let n = db.number(sql).await;
        if n > 0 {
            found.push(format!("{table}.{column}: {n} row(s)"));
        }
    }
    found
}

both! {
    async fn deleting_an_account_with_its_messages_kept_leaves_no_row_that_names_it(app: TestApp) {
        let (ada, bob, ada_id, hers, his, dm, cleos) = doomed(&app).await;
        let bob_id = user_id(&app, "bob").await;
        let cleo_id = user_id(&app, "cleo").await;
        let mut watching = bob.socket(&hers, None).await.expect("bob's socket");
        assert!(watching.wait_for(&format!("id=\"member-{ada_id}\""), WAIT).await);
        let mut hers_socket = ada.socket(&hers, None).await.expect("her own socket");

        // Bob's view of Cleo's room is cached with her name on it.
        let before = bob.get(&format!("/rooms/{cleos}")).await;
        assert!(before.body.contains("Zelda_X"));
        let cursor: i64 = extract_attr(&before.body, "ws-connect=\"/rooms/")
            .and_then(|u| u.rsplit("after=").next().and_then(|s| s.parse().ok()))
            .expect("the page's cursor");
        let mut in_cleos = bob.socket(&cleos, None).await.expect("bob's socket in Cleo's room");
        let page = ada.get("/profile/delete").await;
        assert_eq!(page.status, 200);
        for says in ["signed out", "API tokens stop working", "You leave your 4 rooms", "The 2 rooms you own pass", "deleted user", "new, empty account"] {
            assert!(page.body.contains(says), "the page says {says:?}: {}", page.body);
        }
        let wrong = ada.post_form("/profile/delete", "/profile/delete", &[("messages", "keep"), ("confirm", "bob")]).await;
        assert_eq!(wrong.status, 422);
        assert!(wrong.body.contains("value=\"bob\"") && wrong.body.contains("Type your username"), "{}", wrong.body);
        let unchosen = ada.post_form("/profile/delete", "/profile/delete", &[("messages", "maybe"), ("confirm", "Zelda_X")]).await;
        assert_eq!(unchosen.status, 422);

        let done = ada.post_form("/profile/delete", "/profile/delete", &[("messages", "keep"), ("confirm", "Zelda_X")]).await;
        assert_eq!((done.status, done.location()), (303, "/".to_string()), "{}", done.body);
        assert_eq!(hers_socket.closed(WAIT).await, Closed::Code(4401), "her sockets close with 4401");
        assert_eq!(ada.get("/home").await.status, 303, "her browser is signed out");

        // Bob's open room: she leaves the list, and the room passes to him (the longest-standing).
        assert!(watching.wait_for_new("owns it now", WAIT).await);
        // Each of her rooms, owned or not, says her account is gone, in a line by her marked
        // for js/members.js, which gives her messages on open pages the name "deleted user".
        let marker = format!("data-author=\"{ada_id}\" data-gone=\"deleted user\"");
        let live = watching.frames.join("\n");
        assert!(live.contains(&marker) && live.contains("deleted their account"), "{live}");
        // Both of her lines are by the placeholder already: the hand-over may reach a page in a
        // frame after the one js/members.js renames her messages on.
        let by_her = format!("data-author=\"{ada_id}\"");
        let her_lines: Vec<&str> = live
            .split("<article")
            .filter_map(|a| a.split("</article>").next())
            .filter(|a| a.contains(&by_her))
            .collect();
        assert!(her_lines.iter().any(|a| a.contains("owns it now")), "{live}");
        for line in &her_lines {
            assert!(line.contains("<span class=\"author\">deleted user</span>") && !line.contains("Zelda_X"), "{line}");
        }
        assert!(in_cleos.wait_for_new("deleted their account", WAIT).await);
        assert!(in_cleos.frames.join("\n").contains(&marker), "{:?}", in_cleos.frames);
        // A socket resumed from before gets the line too (by the placeholder now), and so does
        // a fresh page, where her messages are "deleted user" with no "Message privately".
        let mut resumed = bob.socket(&cleos, Some(cursor)).await.expect("resumes");
        assert!(resumed.wait_for("deleted their account", WAIT).await);
        assert!(resumed.frames.join("\n").contains("data-gone=\"deleted user\""), "{:?}", resumed.frames);
        let fresh = bob.get(&format!("/rooms/{cleos}")).await;
        assert!(fresh.body.contains("data-gone=\"deleted user\"") && fresh.body.contains("deleted their account"), "{}", fresh.body);
        assert!(!fresh.body.contains("/dm/deleted user"), "nobody to write to: {}", fresh.body);
        let page = bob.get(&format!("/rooms/{hers}")).await;
        assert!(!page.body.contains(&format!("id=\"member-{ada_id}\"")), "she is not a member");
        assert!(page.body.contains("first words of hers"), "her messages stay");
        assert!(page.body.contains("deleted user"), "shown as deleted user");
        assert!(bob.get(&format!("/rooms/{hers}/settings")).await.status == 200, "bob owns her room now");

        let left = rows_naming(&app, ada_id, &["zelda", "acct-del@"], &[bob_id, cleo_id]).await;
        assert!(left.is_empty(), "rows still name her: {left:?}");
        // Her words stayed (by the placeholder, who carries no identity).
        let kept = connect(&app).await.number(
            "SELECT COUNT(*) FROM messages m JOIN users u ON u.id = m.user_id \
             WHERE u.username = 'deleted user' AND u.email = '' AND m.kind = 'text' AND m.deleted_at IS NULL".into(),
        ).await;
        assert_eq!(kept, 5, "her five messages stay");
        let page = bob.get(&format!("/rooms/{cleos}")).await;
        assert!(!page.body.contains("Zelda_X") && page.body.contains("deleted user"), "no cached page names her");
        let _ = (his, dm);

        // The same identity signing in again starts a new account.
        let again = app.browser();
        let r = again.dev_sign_in("acct-del@example.org").await;
        assert!(r.location().starts_with("/username"), "a new account chooses a username: {}", r.location());
        let r = again.post_form("/username", "/username", &[("username", "Zelda_X")]).await;
        assert_eq!(r.status, 303, "her old name is free");
        assert_ne!(user_id(&app, "Zelda_X").await, ada_id);
        let home = again.get("/home").await;
        assert!(!home.body.contains(&hers), "the new account is in no room");
    }

    async fn deleting_an_account_with_its_messages_deletes_each_as_an_event(app: TestApp) {
        let (ada, bob, ada_id, hers, his, dm, cleos) = doomed(&app).await;
        let bob_id = user_id(&app, "bob").await;
        let cleo_id = user_id(&app, "cleo").await;
        let mut watching = bob.socket(&hers, None).await.expect("bob's socket");
        assert!(watching.wait_for(&format!("id=\"member-{ada_id}\""), WAIT).await);
        let before = bob.get(&format!("/rooms/{hers}")).await;
        let cursor: i64 = extract_attr(&before.body, "ws-connect=\"/rooms/")
            .and_then(|u| u.rsplit("after=").next().and_then(|s| s.parse().ok()))
            .expect("the page's cursor");

        let done = ada.post_form("/profile/delete", "/profile/delete", &[("messages", "delete"), ("confirm", "zelda_x")]).await;
        assert_eq!((done.status, done.location()), (303, "/".to_string()), "{}", done.body);

        // Live: each of her messages is replaced by "Message deleted", then she leaves.
        assert!(watching.wait_for_new("owns it now", WAIT).await);
        let live = watching.frames.join("\n");
        assert!(live.contains("Message deleted"), "{live}");
        // Resumed from before the deletion, and freshly loaded: the same state, her words gone.
        let mut resumed = bob.socket(&hers, Some(cursor)).await.expect("resumes");
        assert!(resumed.wait_for("owns it now", WAIT).await);
        let replay = resumed.frames.join("\n");
        assert!(!replay.contains("first words of hers") && !replay.contains("a file of hers"), "{replay}");
        for code in [&hers, &his] {
            let page = bob.get(&format!("/rooms/{code}")).await;
            assert!(!page.body.contains("first words of hers") && !page.body.contains("hers in the other room"), "{}", page.body);
            assert!(page.body.contains("Message deleted"));
        }
        assert!(bob.get(&format!("/rooms/{hers}")).await.body.contains("hi @zelda"), "bob's words are his");

        let left = rows_naming(&app, ada_id, &["zelda", "acct-del@"], &[bob_id, cleo_id]).await;
        assert!(left.is_empty(), "rows still name her: {left:?}");
        let db = connect(&app).await;
        let texts = db.number(
            "SELECT COUNT(*) FROM messages m JOIN users u ON u.id = m.user_id \
             WHERE u.username = 'deleted user' AND m.kind = 'text' AND (m.deleted_at IS NULL OR m.body <> '')".into(),
        ).await;
        assert_eq!(texts, 0, "none of her text is left");
        let files = db.number("SELECT COUNT(*) FROM attachments".into()).await;
        assert_eq!(files, 0, "her file is gone");
        let _ = (dm, cleos);
    }
}
