//! The databases tests run on: a SQLite file in a temp dir, or a PostgreSQL database cloned from
//! a template migrated once per set of migrations; each removed when its test is done.

use std::time::Duration;

use super::skip_or_fail;

/// The database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh database, removed when dropped.
pub enum TestDb {
    Sqlite(tempfile::TempDir),
    Postgres {
        admin_url: String,
        name: String,
        url: String,
        /// Where its instances keep attachments (SQLite's are beside its file).
        files: tempfile::TempDir,
    },
}

impl TestDb {
    pub async fn create(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => Some(TestDb::Sqlite(tempfile::tempdir().expect("temp dir"))),
            Backend::Postgres => {
                let Ok(admin_url) = std::env::var("NATTER_TEST_POSTGRES_URL") else {
                    skip_or_fail("postgres", "NATTER_TEST_POSTGRES_URL is not set");
                    return None;
                };
                match create_pg_database(&admin_url).await {
                    Ok((name, url)) => Some(TestDb::Postgres {
                        admin_url,
                        name,
                        url,
                        files: tempfile::tempdir().expect("temp dir"),
                    }),
                    Err(e) => {
                        skip_or_fail("postgres", &e);
                        None
                    }
                }
            }
        }
    }

    pub fn url(&self) -> String {
        match self {
            TestDb::Sqlite(dir) => format!("sqlite://{}/natter.db", dir.path().display()),
            TestDb::Postgres { url, .. } => url.clone(),
        }
    }

    /// Where attachments are kept: shared by every instance on this database, as an operator
    /// would share a bucket.
    pub fn files_dir(&self) -> std::path::PathBuf {
        match self {
            TestDb::Sqlite(dir) => dir.path().join("natter-files"),
            TestDb::Postgres { files, .. } => files.path().join("natter-files"),
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            TestDb::Sqlite(_) => Backend::Sqlite,
            TestDb::Postgres { .. } => Backend::Postgres,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres {
            admin_url, name, ..
        } = self
        {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs outside async: use a thread with its own small runtime.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    if let Ok(pool) = admin_pool(&admin_url).await {
                        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                        let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await;
                        pool.close().await;
                    }
                });
            })
            .join();
        }
    }
}

async fn admin_pool(admin_url: &str) -> Result<sqlx::PgPool, String> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect(admin_url)
        .await
        .map_err(|e| format!("cannot connect to {admin_url}: {e}"))
}

fn with_database(url: &str, name: &str) -> String {
    let mut url = url::Url::parse(url).expect("postgres url");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// A name that changes whenever a PostgreSQL migration does.
fn template_name() -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("migrations")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for f in files {
        h.update(std::fs::read(f).expect("migration"));
    }
    let digest = h.finalize();
    format!(
        "natter_tpl_{}",
        digest[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// Creates a database cloned from a migrated template (migrating the template once, under an
/// advisory lock so parallel test processes agree).
async fn create_pg_database(admin_url: &str) -> Result<(String, String), String> {
    let pool = admin_pool(admin_url).await?;
    let template = template_name();
    let err = |e: sqlx::Error| e.to_string();
    let mut conn = pool.acquire().await.map_err(err)?;
    sqlx::query("SELECT pg_advisory_lock(72160)")
        .execute(&mut *conn)
        .await
        .map_err(err)?;
    let exists: Option<String> =
        sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE datname = $1")
            .bind(&template)
            .fetch_optional(&mut *conn)
            .await
            .map_err(err)?;
    if exists.is_none() {
        // Templates of other migration sets: other checkouts (worktrees, branches) of natter
        // may be testing right now with theirs, so only the oldest go (oids only grow).
        let stale: Vec<String> = sqlx::query_scalar(
            "SELECT datname::text FROM pg_database WHERE datname LIKE 'natter_tpl_%' \
             AND datname NOT LIKE '%_build' ORDER BY oid DESC OFFSET 4",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(err)?;
        for name in stale {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
            )))
            .execute(&mut *conn)
            .await;
        }
        let building = format!("{template}_build");
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)"
        )))
        .execute(&mut *conn)
        .await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE \"{building}\""
        )))
        .execute(&mut *conn)
        .await
        .map_err(err)?;
        let (store, _commits) =
            natter::store::Store::connect(&with_database(admin_url, &building), 2)
                .await
                .map_err(|e| format!("migrating the template: {e}"))?;
        store.close().await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE \"{building}\" RENAME TO \"{template}\""
        )))
        .execute(&mut *conn)
        .await
        .map_err(err)?;
    }
    // The lock guards only the template; copies run in parallel.
    let _ = sqlx::query("SELECT pg_advisory_unlock(72160)")
        .execute(&mut *conn)
        .await;
    let name = format!("natter_test_{:016x}", rand::random::<u64>());
    let created = sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
    )))
    .execute(&mut *conn)
    .await
    .map_err(err);
    drop(conn);
    pool.close().await;
    created?;
    Ok((name.clone(), with_database(admin_url, &name)))
}
