//! Everything people see, as maud functions: one function per thing on screen, used by the
//! full page, the htmx answer and the live frame alike, so a message, a member or a notice
//! looks the same wherever it comes from. Views only turn data into markup: they take store
//! types and plain values, never a request, and nothing else in natter writes HTML.
//!
//! Below both `web` (pages and fragments) and `chat` (the live frames hubs broadcast).

pub mod account;
pub mod account_care;
pub mod changes;
pub mod direct;
pub mod errors;
pub mod home;
pub mod layout;
pub mod members;
pub mod messages;
pub mod page_cache;
pub mod push;
pub mod room;
pub mod search;
pub mod settings;
pub mod status;
pub mod stream;
pub mod times;
pub mod tokens;
pub mod typing;
pub mod unread;

pub use errors::FormEcho;
pub use layout::{Nav, Page};
pub use page_cache::{NewestPage, NewestPages};
