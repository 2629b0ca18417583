//! Users, sessions and sign-ins in progress.

use sqlx::FromRow;

use super::{Result, Store, StoreError, on_read, on_write};
use crate::domain::Username;

/// A person who signed in at least once.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct User {
    /// Their id.
    pub id: i64,
    /// Their email, as the provider last said.
    pub email: String,
    /// `None` until chosen on the first visit after signing in.
    pub username: Option<String>,
    /// When they first signed in (Unix ms).
    pub created_at: i64,
}

/// A signed-in browser: the row behind the session cookie, with its user.
#[derive(Debug, Clone, FromRow)]
pub struct SessionRecord {
    /// The SHA-256 of the cookie's token.
    pub token_hash: Vec<u8>,
    /// The session's CSRF secret.
    pub csrf_token: Vec<u8>,
    /// When it was last used (Unix ms; renewed at most once a minute).
    pub last_seen_at: i64,
    /// When it expires (Unix ms).
    pub expires_at: i64,
    /// Whose session it is.
    #[sqlx(flatten)]
    pub user: User,
}

/// A sign-in started in this browser and not finished yet.
#[derive(Debug, Clone, FromRow)]
pub struct PendingLogin {
    /// The `state` sent to the provider.
    pub state: String,
    /// The PKCE verifier for the code.
    pub pkce_verifier: String,
    /// Where to go after signing in.
    pub return_to: Option<String>,
    /// When it expires (Unix ms).
    pub expires_at: i64,
}

impl Store {
    /// Finds the user behind a provider identity, or creates them; refreshes the email either
    /// way (identity is (provider, subject), never the email).
    pub async fn sign_in_identity(
        &self,
        provider: &str,
        subject: &str,
        email: &str,
        now: i64,
    ) -> Result<User> {
        let user = on_write!(&self.db, pool => sqlx::query_as::<_, User>(
            "INSERT INTO users (provider, subject, email, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (provider, subject) DO UPDATE SET email = excluded.email \
             RETURNING id, email, username, created_at",
        )
        .bind(provider)
        .bind(subject)
        .bind(email)
        .bind(now)
        .fetch_one(pool)
        .await)?;
        Ok(user)
    }

    /// Sets the username once. `Ok(false)` when the user already has one; a unique violation
    /// (someone else holds the name in any case) comes back as an error the caller turns into
    /// "taken".
    pub async fn choose_username(&self, user_id: i64, name: &Username) -> Result<bool> {
        let done = on_write!(&self.db, pool => sqlx::query(
            "UPDATE users SET username = $1, username_key = $2 WHERE id = $3 AND username IS NULL",
        )
        .bind(name.as_str())
        .bind(name.key())
        .bind(user_id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// Whether a username (in any case) is taken.
    pub async fn username_taken(&self, name: &Username) -> Result<bool> {
        let found: Option<i64> = on_read!(&self.db, pool => sqlx::query_scalar(
            "SELECT id FROM users WHERE username_key = $1",
        )
        .bind(name.key())
        .fetch_optional(pool)
        .await)?;
        Ok(found.is_some())
    }

    /// The user with this id.
    pub async fn user(&self, id: i64) -> Result<Option<User>> {
        let user = on_read!(&self.db, pool => sqlx::query_as::<_, User>(
            "SELECT id, email, username, created_at FROM users WHERE id = $1",
        )
            .bind(id)
            .fetch_optional(pool)
            .await)?;
        Ok(user)
    }

    /// Stores a new session (by its token's hash) with its CSRF secret, its public id (how its
    /// owner names it on `/profile/sessions`) and the User-Agent it signed in with.
    #[allow(
        clippy::too_many_arguments,
        reason = "one column each, all named at the one caller"
    )]
    pub async fn create_session(
        &self,
        token_hash: &[u8],
        user_id: i64,
        csrf_token: &[u8],
        public_id: &str,
        user_agent: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        on_write!(&self.db, pool => sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, last_seen_at, expires_at, public_id, user_agent) \
             VALUES ($1, $2, $3, $4, $4, $5, $6, $7)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(csrf_token)
        .bind(now)
        .bind(expires_at)
        .bind(public_id)
        .bind(user_agent)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The live session with this token hash, if it has not expired. Served from a short-lived
    /// cache when it was read moments ago (every request asks).
    pub async fn session(&self, token_hash: &[u8], now: i64) -> Result<Option<SessionRecord>> {
        if let Some(record) = self.sessions.get(token_hash, now) {
            return Ok(Some(record));
        }
        let record = on_read!(&self.db, pool => sqlx::query_as::<_, SessionRecord>(
            "SELECT s.token_hash, s.csrf_token, s.last_seen_at, s.expires_at, u.id, u.email, u.username, u.created_at \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(pool)
        .await)?;
        // Only once a username is chosen. A change of username (at most once a day) forgets
        // the person's entries here; another instance's copy lives `SESSION_CACHE_TTL` at most.
        if let Some(record) = record.as_ref().filter(|r| r.user.username.is_some()) {
            self.sessions.put(record.clone());
        }
        Ok(record)
    }

    /// Drops these sessions from the cache (they ended on another instance).
    pub fn forget_sessions(&self, token_hashes: &[Vec<u8>]) {
        self.sessions
            .forget(|r| token_hashes.contains(&r.token_hash));
    }

    /// Drops the cached sessions of a person (they carry the username, which changed).
    pub fn forget_sessions_of(&self, user_id: i64) {
        self.sessions.forget(|r| r.user.id == user_id);
    }

    /// Drops every cached session: after notifications were lost, any of them may have ended.
    pub fn forget_all_sessions(&self) {
        self.sessions.forget(|_| true);
    }

    /// Slides the session's expiry forward (called at most once a minute per session).
    pub async fn touch_session(&self, token_hash: &[u8], now: i64, expires_at: i64) -> Result<()> {
        on_write!(&self.db, pool => sqlx::query(
            "UPDATE sessions SET last_seen_at = $2, expires_at = $3 WHERE token_hash = $1",
        )
        .bind(token_hash)
        .bind(now)
        .bind(expires_at)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        self.sessions.touched(token_hash, now, expires_at);
        Ok(())
    }

    /// Deletes a session (signing out).
    pub async fn delete_session(&self, token_hash: &[u8]) -> Result<()> {
        self.sessions.forget(|r| r.token_hash == token_hash);
        on_write!(&self.db, pool => sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Ends every session of a user ("sign out everywhere"); returns their token hashes so
    /// their open sockets can be closed.
    pub async fn delete_user_sessions(&self, user_id: i64) -> Result<Vec<Vec<u8>>> {
        self.sessions.forget(|r| r.user.id == user_id);
        let hashes = on_write!(&self.db, pool => sqlx::query_scalar::<_, Vec<u8>>(
            "DELETE FROM sessions WHERE user_id = $1 RETURNING token_hash",
        )
        .bind(user_id)
        .fetch_all(pool)
        .await)?;
        Ok(hashes)
    }

    /// How many live sessions a user has (shown on the profile).
    pub async fn session_count(&self, user_id: i64, now: i64) -> Result<i64> {
        let n = on_read!(&self.db, pool => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM sessions WHERE user_id = $1 AND expires_at > $2",
        )
        .bind(user_id)
        .bind(now)
        .fetch_one(pool)
        .await)?;
        Ok(n)
    }

    /// Remembers a sign-in started in this browser (by its cookie token's hash).
    pub async fn create_pending_login(
        &self,
        token_hash: &[u8],
        login: &PendingLogin,
        expires_at: i64,
    ) -> Result<()> {
        on_write!(&self.db, pool => sqlx::query(
            "INSERT INTO pending_logins (token_hash, state, pkce_verifier, return_to, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(&login.state)
        .bind(&login.pkce_verifier)
        .bind(&login.return_to)
        .bind(expires_at)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Removes and returns the sign-in this browser started, unless it expired: each can be
    /// finished once.
    pub async fn take_pending_login(
        &self,
        token_hash: &[u8],
        now: i64,
    ) -> Result<Option<PendingLogin>> {
        let login = on_write!(&self.db, pool => sqlx::query_as::<_, PendingLogin>(
            "DELETE FROM pending_logins WHERE token_hash = $1 \
             RETURNING state, pkce_verifier, return_to, expires_at",
        )
        .bind(token_hash)
        .fetch_optional(pool)
        .await)?;
        Ok(login.filter(|l| l.expires_at > now))
    }

    /// Deletes expired sessions and abandoned sign-ins; run periodically.
    pub async fn purge_expired(&self, now: i64) -> Result<u64> {
        let sessions = on_write!(&self.db, pool => sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        let logins = on_write!(&self.db, pool => sqlx::query("DELETE FROM pending_logins WHERE expires_at <= $1")
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(sessions + logins)
    }
}

impl From<StoreError> for std::io::Error {
    fn from(e: StoreError) -> Self {
        std::io::Error::other(e)
    }
}

/// Sessions (of people with a username) read in the last few seconds. Sign-out and sign-out
/// everywhere remove entries at once (on other instances through the `s` notification), so the
/// cache only spares reads; it never keeps a session alive that was ended.
#[derive(Debug, Default)]
pub(super) struct SessionCache {
    entries:
        parking_lot::Mutex<std::collections::HashMap<Vec<u8>, (SessionRecord, std::time::Instant)>>,
}

/// How long a read session is trusted without asking the database again.
const SESSION_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

impl SessionCache {
    fn get(&self, token_hash: &[u8], now: i64) -> Option<SessionRecord> {
        let entries = self.entries.lock();
        let (record, read_at) = entries.get(token_hash)?;
        (read_at.elapsed() < SESSION_CACHE_TTL && record.expires_at > now).then(|| record.clone())
    }

    fn put(&self, record: SessionRecord) {
        let mut entries = self.entries.lock();
        if entries.len() >= 100_000 {
            entries.retain(|_, (_, read_at)| read_at.elapsed() < SESSION_CACHE_TTL);
        }
        entries.insert(
            record.token_hash.clone(),
            (record, std::time::Instant::now()),
        );
    }

    fn touched(&self, token_hash: &[u8], now: i64, expires_at: i64) {
        if let Some((record, _)) = self.entries.lock().get_mut(token_hash) {
            record.last_seen_at = now;
            record.expires_at = expires_at;
        }
    }

    pub(super) fn forget(&self, which: impl Fn(&SessionRecord) -> bool) {
        self.entries.lock().retain(|_, (record, _)| !which(record));
    }
}
