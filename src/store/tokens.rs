//! Personal access tokens for the JSON API. Only a token's SHA-256 is stored; revoking deletes
//! the row, so a revoked token and one that never existed look the same: unknown.

use sqlx::FromRow;

use super::{Result, Store, on_read, on_write};
use crate::domain::TokenName;

/// A token as its owner sees it on the profile page (never its text).
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct ApiToken {
    /// Its id.
    pub id: i64,
    /// What its owner named it.
    pub name: String,
    /// When it was created (Unix ms).
    pub created_at: i64,
    /// `None` until first used; updated at most once a minute.
    pub last_used_at: Option<i64>,
}

/// Who a presented token acts for.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct TokenOwner {
    /// The token's id.
    pub token_id: i64,
    /// When it was last used (Unix ms), if ever.
    pub last_used_at: Option<i64>,
    /// Its owner.
    pub user_id: i64,
    /// `None` only for a user without a username, who cannot have created a token.
    pub username: Option<String>,
}

impl Store {
    /// Stores a new token for `user_id` unless they already hold `max` tokens (`Ok(None)`).
    /// Count and insert are one statement, so a double submit cannot slip past the cap on
    /// SQLite's single writer.
    pub async fn create_api_token(
        &self,
        user_id: i64,
        name: &TokenName,
        token_hash: &[u8],
        now: i64,
        max: i64,
    ) -> Result<Option<i64>> {
        let id = on_write!(&self.db, pool => sqlx::query_scalar::<_, i64>(
            "INSERT INTO api_tokens (user_id, name, token_hash, created_at) \
             SELECT $1, $2, $3, $4 \
             WHERE (SELECT COUNT(*) FROM api_tokens WHERE user_id = $1) < $5 \
             RETURNING id",
        )
        .bind(user_id)
        .bind(name.as_str())
        .bind(token_hash)
        .bind(now)
        .bind(max)
        .fetch_optional(pool)
        .await)?;
        Ok(id)
    }

    /// A user's tokens, newest first.
    pub async fn api_tokens(&self, user_id: i64) -> Result<Vec<ApiToken>> {
        let tokens = on_read!(&self.db, pool => sqlx::query_as::<_, ApiToken>(
            "SELECT id, name, created_at, last_used_at FROM api_tokens \
             WHERE user_id = $1 ORDER BY created_at DESC, id DESC",
        )
        .bind(user_id)
        .fetch_all(pool)
        .await)?;
        Ok(tokens)
    }

    /// Deletes one of `user_id`'s tokens; `false` if they have none with that id.
    pub async fn revoke_api_token(&self, user_id: i64, token_id: i64) -> Result<bool> {
        let done = on_write!(&self.db, pool => sqlx::query(
            "DELETE FROM api_tokens WHERE id = $1 AND user_id = $2",
        )
        .bind(token_id)
        .bind(user_id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// The owner of the token with this hash, if it exists.
    pub async fn api_token_owner(&self, token_hash: &[u8]) -> Result<Option<TokenOwner>> {
        let owner = on_read!(&self.db, pool => sqlx::query_as::<_, TokenOwner>(
            "SELECT t.id AS token_id, t.last_used_at, u.id AS user_id, u.username \
             FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(pool)
        .await)?;
        Ok(owner)
    }

    /// Records a use of the token, unless one was recorded in the last minute (the caller
    /// already skips fresh ones; the condition keeps racing requests to one write).
    pub async fn touch_api_token(&self, token_id: i64, now: i64) -> Result<()> {
        on_write!(&self.db, pool => sqlx::query(
            "UPDATE api_tokens SET last_used_at = $2 \
             WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(token_id)
        .bind(now)
        .bind(now - 60_000)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }
}
