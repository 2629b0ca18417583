//! The post writer's batches: one failing post does not take the others with it.

use crate::{both, common::TestApp};

/// Posts straight to the store's writer as `author`, the only member of the room `code`.
struct Poster<'a> {
    store: &'a natter::store::Store,
    room_id: i64,
    user_id: i64,
    author: &'static str,
}

impl<'a> Poster<'a> {
    async fn new(app: &'a TestApp, code: &str, author: &'static str) -> Poster<'a> {
        let store = &app.state.store;
        let room = store
            .room_by_code(natter::domain::RoomCode::parse(code).unwrap())
            .await
            .unwrap()
            .unwrap();
        let user_id = store.members(room.id).await.unwrap()[0].user_id;
        Poster {
            store,
            room_id: room.id,
            user_id,
            author,
        }
    }

    async fn post(&self, body: &str) -> natter::store::Result<natter::store::PostOutcome> {
        let body = natter::domain::MessageBody::parse(body).unwrap();
        self.store
            .post_message(natter::store::NewPost {
                room_id: self.room_id,
                user_id: self.user_id,
                author: self.author.into(),
                body,
                client_id: None,
                attachments: Vec::new(),
            })
            .await
    }
}

/// Makes the database at `url` refuse any message whose body is `poison`, as a constraint or
/// trigger of an operator's might: a failure that belongs to one post alone.
pub async fn poison(url: &str) {
    match url.starts_with("sqlite:") {
        true => {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            sqlx::query(
                "CREATE TRIGGER poison BEFORE INSERT ON messages WHEN NEW.body = 'poison' \
                 BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
            )
            .execute(&pool)
            .await
            .unwrap();
            pool.close().await;
        }
        false => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            sqlx::query("ALTER TABLE messages ADD CONSTRAINT poison CHECK (body <> 'poison')")
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
}

both! {
    async fn a_post_the_database_refuses_fails_alone_and_the_rest_of_its_batch_commits(app: TestApp) {
        let ada = app.signed_in("ada@example.org", "ada").await;
        let code = ada.create_room("Batch").await;
        // The operator's trigger goes in while natter runs.
        poison(&app.db.url()).await;
        let poster = Poster::new(&app, &code, "ada").await;
        // Submitted together, so they share the writer's batches (all but the first or so
        // arrive while it commits).
        let bodies: Vec<String> = (0..20)
            .map(|i| if i == 10 { "poison".into() } else { format!("fine {i}") })
            .collect();
        let outcomes =
            futures_util::future::join_all(bodies.iter().map(|b| poster.post(b)))
                .await;
        let mut seqs = Vec::new();
        for (body, outcome) in bodies.iter().zip(outcomes) {
            match (body.as_str(), outcome) {
                ("poison", Err(_)) => {}
                ("poison", Ok(o)) => panic!("the refused post was answered {o:?}"),
                (_, Ok(natter::store::PostOutcome::Posted(m))) => seqs.push(m.seq),
                (body, other) => panic!("{body}: {other:?}"),
            }
        }
        seqs.sort();
        assert_eq!(seqs, (1..=19).collect::<Vec<i64>>(), "the refused post took no seq");
        let stored = poster.store.messages_between(poster.room_id, 0, 100, 100).await.unwrap();
        assert_eq!(stored.len(), 19);
        assert!(stored.iter().all(|m| m.body != "poison"));
    }
}

both! {
    async fn a_trigger_added_while_natter_runs_holds_from_the_next_post(app: TestApp) {
        let ada = app.signed_in("sqlite-live@example.org", "sqlite_live").await;
        let code = ada.create_room("Live trigger").await;
        // Nothing posted since natter started: its writer has not yet used the search index
        // (on SQLite, its first post then compiled the FTS5 trigger against the schema as it
        // was before the operator's trigger, and failed with "no such table: messages").
        poison(&app.db.url()).await;
        assert_eq!(ada.say(&code, "after the trigger").await, 1);
        let poster = Poster::new(&app, &code, "sqlite_live").await;
        let refused = poster.post("poison").await;
        assert!(refused.is_err(), "the trigger holds: {refused:?}");
        // Whatever people type goes on being stored beside it.
        let mut stored = 1;
        for input in crate::common::hostile_inputs() {
            if natter::domain::MessageBody::parse(&input).is_err() {
                continue;
            }
            let outcome = poster.post(&input).await;
            assert!(
                matches!(outcome, Ok(natter::store::PostOutcome::Posted(_))),
                "{input:?}: {outcome:?}"
            );
            stored += 1;
        }
        assert_eq!(ada.say(&code, "and after those").await, stored + 1);
    }
}
