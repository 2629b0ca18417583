//! Operator-facing behaviour: several instances on PostgreSQL, Caddy in front, graceful
//! restarts, crashes, and the database going away. Uses real processes where it matters
//! (signals), the real `caddy` binary and the project's Caddyfile.

#[path = "../common/mod.rs"]
mod common;

mod caddy;
mod export;
mod multi;
mod nats;
mod observe;
mod procs;
mod resilience;
mod slow;
mod storage;
mod writer;
