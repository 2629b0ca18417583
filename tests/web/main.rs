//! natter's integration tests: the real server on a random port, real databases (SQLite and
//! PostgreSQL), the fake OIDC provider, real WebSocket clients. One binary so it builds once.

#[path = "../common/mod.rs"]
mod common;

mod account_care;
mod accounts;
mod changes;
mod direct;
mod fanout;
mod files;
mod frames;
mod live;
mod mentions;
mod permalinks;
mod push;
mod rooms;
mod search;
mod security;
mod settings;
mod slow;
mod sse;
mod stream;
mod text;
mod typing;
mod unread;
