//! Build script: `sqlx::migrate!` embeds `migrations/` at compile time, and cargo would not
//! otherwise notice a changed or added `.sql` file, leaving a binary with yesterday's schema.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
