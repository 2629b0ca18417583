//! Search: p50/p99 of `/search` pages for a reader who is a member of 50 of 1,000 rooms holding
//! 1,000,000 messages together (`--rooms`, `--posts` change the sizes), by kind of query: a
//! common word, a rare word, a prefix, a phrase, a word with `from:`.
//!
//! The messages are written straight into the server's database with multi-row INSERTs in big
//! transactions (through the same tables, so the search indexes are kept by the same triggers
//! and generated column as posts keep them), not posted: a million posts through HTTP would
//! take an hour. Each query kind is then asked `--concurrency`-less, one at a time, 200 times
//! (`--duration` does not apply), over HTTP with the reader's session, so the figure is what a
//! person waits for the whole page.
//!
//! No target is set; the results are figures. A search that finds nothing where the seeded
//! text says it must find something fails the run.

use std::time::Instant;

use sqlx::{Executor, PgPool, SqlitePool};

use super::populate;
use crate::{
    Options, client,
    report::{Report, percentile},
    server::{Meter, Server},
};

/// Rooms the reader is a member of.
const READER_ROOMS: usize = 50;
/// Authors writing the messages (members of every room).
const AUTHORS: usize = 100;
/// Messages per INSERT statement, and statements per transaction.
const ROWS_PER_INSERT: usize = 500;
const INSERTS_PER_TX: usize = 40;
/// Searches per kind.
const SAMPLES: usize = 200;

/// Words messages are made of: a few very common ones, many ordinary ones.
const COMMON: &[&str] = &["the", "and", "team", "today", "please"];
const ORDINARY: &[&str] = &[
    "build",
    "review",
    "merge",
    "branch",
    "ticket",
    "server",
    "client",
    "meeting",
    "lunch",
    "coffee",
    "status",
    "update",
    "question",
    "answer",
    "docs",
    "test",
    "release",
    "plan",
    "design",
    "bug",
    "fix",
    "issue",
    "customer",
    "support",
    "budget",
    "report",
    "draft",
    "idea",
    "weekend",
    "holiday",
    "travel",
    "office",
    "remote",
    "call",
    "notes",
    "schedule",
    "monday",
    "friday",
    "morning",
    "evening",
    "database",
    "cache",
    "latency",
    "metrics",
    "alert",
    "pager",
    "incident",
    "rollback",
    "deployment",
    "deploying",
    "deployed",
];

pub(super) async fn search(o: &Options) -> Result<Report, String> {
    let rooms = o.rooms.unwrap_or(1000).max(READER_ROOMS);
    let total = o.posts.unwrap_or(1_000_000);
    let server = Server::start(o).await?;
    let mut report = Report::new("search", &o.db);
    // The reader signs up through the pages (a real session); everything else is seeded.
    let world = populate(&server, 1, 1, true).await?;
    let reader = &world.people[0];
    let started = Instant::now();
    seed(&server.database_url, &world.names[0], rooms, total).await?;
    let seeded = started.elapsed();
    report.figure("seeded messages", total as f64, "");
    report.figure("seeding time", seeded.as_secs_f64(), "s");
    eprintln!(
        "  seeded {total} messages in {rooms} rooms in {:.0} s",
        seeded.as_secs_f64()
    );

    let http = client::http();
    let kinds: [(&str, &str); 6] = [
        ("common word", "team"),
        ("rare word", "zeppelin"),
        ("prefix", "deplo"),
        ("phrase", "\"coffee status\""),
        ("from: with a word", "from:author7 release"),
        ("two common words", "the please"),
    ];
    let meter = Meter::start(&server);
    let mut asked = 0u64;
    for (kind, q) in kinds {
        let url = format!(
            "{}/search?q={}",
            server.base,
            url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
        );
        let mut times: Vec<u32> = Vec::with_capacity(SAMPLES);
        let mut found = 0usize;
        for _ in 0..SAMPLES {
            let t = Instant::now();
            let response = http
                .get(&url)
                .header("cookie", &reader.cookie)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let body = response.text().await.map_err(|e| e.to_string())?;
            times.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
            if status != 200 {
                return Err(format!("search {q:?} answered {status}"));
            }
            found = body.matches("class=\"search-result\"").count();
        }
        asked += SAMPLES as u64;
        report.check(found > 0, format!("{kind} ({q}) finds something"));
        times.sort_unstable();
        let (p50, p99) = (
            percentile(&times, 0.5) / 1000.0,
            percentile(&times, 0.99) / 1000.0,
        );
        report.figure(&format!("{kind} ({q}) p50"), p50, "ms");
        report.figure(&format!("{kind} ({q}) p99"), p99, "ms");
        eprintln!("  {kind:<20} p50 {p50:>7.1} ms  p99 {p99:>7.1} ms  ({found} on the first page)");
    }
    let cpu = meter.read();
    report.cpu("searching", &cpu, Some((asked, "search")));
    Ok(report)
}

/// A message's text, from a cheap deterministic generator: 6–16 words, one of the common
/// ones in most, a rare word in one of 9,973, the phrase "coffee status" now and then.
fn body(n: u64) -> String {
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let words = 6 + (next() % 11) as usize;
    let mut out = Vec::with_capacity(words + 1);
    for i in 0..words {
        let r = next();
        out.push(if i == 0 && r % 3 == 0 {
            COMMON[(r / 3 % COMMON.len() as u64) as usize]
        } else if r % 10 == 0 {
            COMMON[(r / 10 % COMMON.len() as u64) as usize]
        } else {
            ORDINARY[(r / 10 % ORDINARY.len() as u64) as usize]
        });
    }
    // A prime step: the rare word lands in every room in turn, the reader's too.
    if n.is_multiple_of(9_973) {
        out.push("zeppelin");
    }
    out.join(" ")
}

/// Writes `rooms` rooms, `AUTHORS` authors in every room, the reader (`reader`, who exists)
/// in `READER_ROOMS` of them spread evenly, and `total` messages spread over the rooms in time
/// order (one a second), straight into the database.
async fn seed(url: &str, reader: &str, rooms: usize, total: usize) -> Result<(), String> {
    let sqlite = url.starts_with("sqlite:");
    let e = |e: sqlx::Error| e.to_string();
    let mut statements: Vec<String> = Vec::new();
    let now = 1_767_225_600_000i64;
    // Authors and rooms.
    let authors: Vec<String> = (0..AUTHORS)
        .map(|a| {
            format!(
                "('dev', 'author{a}', 'author{a}@bench.example', 'author{a}', 'author{a}', {now})"
            )
        })
        .collect();
    statements.push(format!(
        "INSERT INTO users (provider, subject, email, username, username_key, created_at) VALUES {}",
        authors.join(", ")
    ));
    let per_room = total.div_ceil(rooms) as i64;
    for chunk in (0..rooms).collect::<Vec<_>>().chunks(ROWS_PER_INSERT) {
        let values: Vec<String> = chunk
            .iter()
            .map(|r| {
                format!(
                    "('S{:03}-{:04}', 'Search room {r}', \
                      (SELECT id FROM users WHERE username_key = 'author0'), {now}, {per_room}, {now})",
                    r / 10_000,
                    r % 10_000
                )
            })
            .collect();
        statements.push(format!(
            "INSERT INTO rooms (code, name, created_by, created_at, last_seq, last_activity_at) VALUES {}",
            values.join(", ")
        ));
    }
    // Messages go in with the ids of the rooms and authors just made.
    let (first_room, first_author) = match sqlite {
        true => {
            let pool = SqlitePool::connect(url).await.map_err(e)?;
            run_sqlite(&pool, &statements).await?;
            ids_sqlite(&pool).await?
        }
        false => {
            let pool = PgPool::connect(url).await.map_err(e)?;
            run_postgres(&pool, &statements).await?;
            ids_postgres(&pool).await?
        }
    };
    // Every author in every seeded room; the reader in every `every`th.
    let every = rooms / READER_ROOMS;
    let members = vec![
        format!(
            "INSERT INTO members (room_id, user_id, joined_at) \
             SELECT r.id, u.id, {now} FROM rooms r CROSS JOIN users u \
              WHERE r.id >= {first_room} AND u.id >= {first_author}"
        ),
        format!(
            "INSERT INTO members (room_id, user_id, joined_at) \
             SELECT r.id, u.id, {now} FROM rooms r CROSS JOIN users u \
              WHERE r.id >= {first_room} AND (r.id - {first_room}) % {every} = 0 \
                AND u.username_key = '{}'",
            reader.to_ascii_lowercase()
        ),
    ];
    let mut batch: Vec<String> = Vec::new();
    let mut inserts: Vec<String> = members;
    let sqlite_pool = if sqlite {
        Some(SqlitePool::connect(url).await.map_err(e)?)
    } else {
        None
    };
    let pg_pool = if sqlite {
        None
    } else {
        Some(PgPool::connect(url).await.map_err(e)?)
    };
    let flush = |inserts: Vec<String>| {
        let (s, p) = (sqlite_pool.clone(), pg_pool.clone());
        async move {
            match (s, p) {
                (Some(pool), _) => run_sqlite(&pool, &inserts).await,
                (_, Some(pool)) => run_postgres(&pool, &inserts).await,
                _ => Ok(()),
            }
        }
    };
    for n in 0..total as u64 {
        let room = first_room + (n % rooms as u64) as i64;
        let seq = (n / rooms as u64) as i64 + 1;
        // By seq, not by n: every room has every author (n alone would tie authors to rooms).
        let author = first_author + (seq % AUTHORS as i64);
        let at = now + n as i64 * 1000;
        batch.push(format!("({room}, {seq}, {author}, '{}', {at})", body(n)));
        if batch.len() == ROWS_PER_INSERT {
            inserts.push(format!(
                "INSERT INTO messages (room_id, seq, user_id, body, created_at) VALUES {}",
                batch.join(", ")
            ));
            batch.clear();
            if inserts.len() == INSERTS_PER_TX {
                flush(std::mem::take(&mut inserts)).await?;
                if n % 100_000 < (ROWS_PER_INSERT * INSERTS_PER_TX) as u64 {
                    eprintln!("  … {n} messages");
                }
            }
        }
    }
    if !batch.is_empty() {
        inserts.push(format!(
            "INSERT INTO messages (room_id, seq, user_id, body, created_at) VALUES {}",
            batch.join(", ")
        ));
    }
    flush(inserts).await?;
    if let Some(pool) = &pg_pool {
        // Fresh statistics, as autovacuum would gather them after such a load.
        pool.execute("ANALYZE").await.map_err(e)?;
    }
    if let Some(pool) = &sqlite_pool {
        // natter's writer indexes what it posts; rows put in here are indexed here.
        pool.execute(sqlx::AssertSqlSafe(format!(
            "INSERT INTO messages_fts (rowid, body) \
             SELECT (room_id << 32) | seq, body FROM messages \
              WHERE room_id >= {first_room} AND kind = 'text' AND deleted_at IS NULL AND body <> ''"
        )))
        .await
        .map_err(e)?;
        pool.execute("ANALYZE").await.map_err(e)?;
    }
    Ok(())
}

async fn run_sqlite(pool: &SqlitePool, statements: &[String]) -> Result<(), String> {
    let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
    for s in statements {
        sqlx::query(sqlx::AssertSqlSafe(s.as_str()))
            .persistent(false)
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
    }
    tx.commit().await.map_err(|e| e.to_string())
}

async fn run_postgres(pool: &PgPool, statements: &[String]) -> Result<(), String> {
    let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
    for s in statements {
        sqlx::query(sqlx::AssertSqlSafe(s.as_str()))
            .persistent(false)
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
    }
    tx.commit().await.map_err(|e| e.to_string())
}

/// The id of seeded room 0 and of author 0 (ids are consecutive: one INSERT made each set).
async fn ids_sqlite(pool: &SqlitePool) -> Result<(i64, i64), String> {
    sqlx::query_as(IDS)
        .fetch_one(pool)
        .await
        .map_err(|e| e.to_string())
}

async fn ids_postgres(pool: &PgPool) -> Result<(i64, i64), String> {
    sqlx::query_as(IDS)
        .fetch_one(pool)
        .await
        .map_err(|e| e.to_string())
}

const IDS: &str = "SELECT (SELECT MIN(id) FROM rooms WHERE code LIKE 'S%'), \
       (SELECT MIN(id) FROM users WHERE username_key LIKE 'author%')";
