//! Attachments: files people share in a room. Their bytes live in `storage` (a local directory
//! or S3-compatible object storage); what they are (name, size, type, dimensions) is in the
//! database next to the message that carries them.

pub mod image;
pub mod name;
pub mod sniff;
pub mod storage;
