//! A room's messages: reading history by `seq` cursor, and posting exactly as the page does.

use poem::{Request, web::Data};
use poem_openapi::{
    ApiRequest, ApiResponse, Object, OpenApi,
    param::{Header, Path, Query},
    payload::Json,
    types::Example,
};
use time::OffsetDateTime;

use super::{
    Tag,
    auth::Token,
    files::AttachmentJson,
    problem::{ApiError, Problems, status},
    rooms::member_room,
    text::Text,
    timestamp,
    upload::MessageWithFiles,
};
use crate::{
    State, actions, config::Config, domain::MessageBody, refusal::Refusal, store::Message,
};

/// Messages per page unless `limit` says otherwise.
const DEFAULT_LIMIT: i64 = 50;
/// The most messages one page may hold.
const MAX_LIMIT: i64 = 200;
/// The header that makes a post safe to retry.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// One message.
#[derive(Debug, Object)]
#[oai(rename = "Message", example)]
pub struct MessageJson {
    /// Its number in the room: 1, 2, 3, … in commit order. The cursor for history.
    pub seq: i64,
    /// The author's username.
    pub author: String,
    pub author_id: i64,
    /// The text as stored: line breaks are `\n`, ends trimmed. Plain text, never markup.
    /// Empty once the message is deleted.
    pub body: String,
    pub created_at: OffsetDateTime,
    /// When its author last edited it (`null`: never).
    pub edited_at: Option<OffsetDateTime>,
    /// When it was deleted (`null`: it was not). A deleted message keeps its place and `seq`;
    /// its text is gone.
    pub deleted_at: Option<OffsetDateTime>,
    /// Who it mentions with `@username`: members of the room when it was posted (or last
    /// edited), by user id.
    /// A name in the text that is not listed here is not a mention (not a member, no such
    /// person, part of an address or a link).
    pub mentions: Vec<MentionJson>,
    /// Its files, in the order they were attached (empty: none; a deleted message has none).
    pub attachments: Vec<AttachmentJson>,
    /// `true` for a system line: a change to the room by its owner (`author`), described in
    /// `body` ("renamed the room to …"). Absent for a person's message.
    #[oai(skip_serializing_if_is_none)]
    pub system: Option<bool>,
}

/// A person a message mentions.
#[derive(Debug, Object)]
#[oai(rename = "Mention")]
pub struct MentionJson {
    pub user_id: i64,
    /// Their username as it is now (the text may spell it in another case).
    pub username: String,
}

impl MessageJson {
    /// `m` as the API shows it (`config` for its files' addresses).
    fn of(m: &Message, config: &Config) -> Self {
        Self {
            seq: m.seq,
            author: m.author.clone(),
            author_id: m.user_id,
            body: m.body.clone(),
            created_at: timestamp(m.created_at),
            edited_at: m.edited_at.map(timestamp),
            deleted_at: m.deleted_at.map(timestamp),
            mentions: m
                .mentions
                .0
                .iter()
                .map(|(user_id, username)| MentionJson {
                    user_id: *user_id,
                    username: username.clone(),
                })
                .collect(),
            attachments: m
                .attachments
                .0
                .iter()
                .map(|file| AttachmentJson::of(file, config))
                .collect(),
            system: m.is_system().then_some(true),
        }
    }
}

impl Example for MessageJson {
    fn example() -> Self {
        Self {
            seq: 42,
            author: "ada".into(),
            author_id: 7,
            body: "Thanks @bob, hello from curl!".into(),
            created_at: timestamp(1_767_312_000_000),
            edited_at: None,
            deleted_at: None,
            mentions: vec![MentionJson {
                user_id: 8,
                username: "bob".into(),
            }],
            attachments: vec![AttachmentJson::example()],
            system: None,
        }
    }
}

/// A page of history, in ascending `seq` order.
#[derive(Debug, Object)]
#[oai(example)]
pub struct MessagePage {
    pub messages: Vec<MessageJson>,
    /// Whether more messages lie beyond this page in the direction you are paging: older ones
    /// (ask again with `before` = the first `seq`) when paging back, newer ones (ask again
    /// with `after` = the last `seq`) when paging forward with `after`.
    pub has_more: bool,
    /// The room's newest `seq` when the page was read.
    pub last_seq: i64,
}

impl Example for MessagePage {
    fn example() -> Self {
        Self {
            messages: vec![MessageJson::example()],
            has_more: true,
            last_seq: 42,
        }
    }
}

/// A message to post.
#[derive(Debug, Object)]
#[oai(example)]
pub struct NewMessage {
    /// 1–4000 characters after trimming; CRLF becomes LF; no control characters but line
    /// breaks and tabs.
    pub body: Text,
}

impl Example for NewMessage {
    fn example() -> Self {
        Self {
            body: "Hello from curl!".into(),
        }
    }
}

/// A message to post: JSON for text alone, `multipart/form-data` to attach files.
#[derive(ApiRequest)]
enum NewPost {
    /// Text only.
    Json(Json<NewMessage>),
    /// Text and files: a `body` part (the text; may be empty or left out when files are
    /// attached) and one `files` part per file, each with its `filename`.
    Multipart(MessageWithFiles),
}

#[derive(ApiResponse)]
enum Read {
    /// A page of messages, in ascending `seq` order.
    #[oai(status = 200)]
    Page(Json<MessagePage>),
}

#[derive(ApiResponse)]
enum Edited {
    /// Saved (or the same text it had): the message as it is now. Everyone with the room open
    /// sees the change in place.
    #[oai(status = 200)]
    Message(Json<MessageJson>),
}

#[derive(ApiResponse)]
enum Deleted {
    /// Deleted (or deleted already): its text is gone from natter, and everyone with the room
    /// open sees "Message deleted" in its place.
    #[oai(status = 204)]
    Done,
}

#[derive(ApiResponse)]
enum Posted {
    /// Posted: everyone with the room open sees it now. A retry with the same
    /// `Idempotency-Key` and the same body (and files) answers the same (201 with the message
    /// first posted under that key) and posts nothing new; the same key with another body is
    /// refused (422).
    #[oai(status = 201)]
    Message(Json<MessageJson>),
}

/// Whether a cursor or limit is acceptable, as a 422 problem if not.
fn check(
    name: &str,
    value: Option<i64>,
    range: std::ops::RangeInclusive<i64>,
) -> Result<(), ApiError> {
    match value {
        Some(v) if !range.contains(&v) => Err(ApiError::invalid_parameter(format!(
            "`{name}` must be between {} and {}.",
            range.start(),
            range.end()
        ))),
        _ => Ok(()),
    }
}

pub struct Api;

#[OpenApi(tag = "Tag::Messages")]
impl Api {
    /// Read a room's messages
    ///
    /// Pages through history by `seq`, always answering in ascending order. `before` and
    /// `after` are exclusive cursors and may be combined (`after < seq < before`):
    ///
    /// - neither: the newest `limit` messages; `has_more` says whether older ones exist;
    /// - `before` only: the newest `limit` messages below it (paging back); `has_more` as above;
    /// - `after` (with or without `before`): the oldest `limit` messages above it (catching up);
    ///   `has_more` says whether newer ones exist (below `before`, if given).
    #[oai(
        path = "/rooms/:code/messages",
        method = "get",
        operation_id = "list_messages"
    )]
    async fn list(
        &self,
        token: Token,
        state: Data<&State>,
        /// The room's code, `ABCD-EFGH`.
        code: Path<String>,
        /// Only messages with a smaller `seq`.
        #[oai(example = "example_before")]
        before: Query<Option<i64>>,
        /// Only messages with a larger `seq`.
        after: Query<Option<i64>>,
        /// How many messages at most: 1–200, 50 if not given.
        #[oai(example = "example_limit")]
        limit: Query<Option<i64>>,
    ) -> Result<
        Read,
        Problems<{ status::ALWAYS | status::NOT_FOUND | status::INVALID | status::RATE_LIMITED }>,
    > {
        check("before", before.0, 0..=i64::MAX)?;
        check("after", after.0, 0..=i64::MAX)?;
        check("limit", limit.0, 1..=MAX_LIMIT)?;
        let limit = limit.0.unwrap_or(DEFAULT_LIMIT);
        let room = member_room(&state, &token, &code.0).await?;
        let (messages, has_more) = match after.0 {
            Some(after) => {
                let upto = before.0.map_or(i64::MAX, |b| b - 1);
                let mut messages = state
                    .store
                    .messages_between(room.id, after, upto, limit + 1)
                    .await?;
                let has_more = messages.len() as i64 > limit;
                messages.truncate(limit as usize);
                (messages, has_more)
            }
            None => {
                let page = state
                    .store
                    .messages_before(room.id, before.0, limit)
                    .await?;
                (page.messages, page.has_older)
            }
        };
        Ok(Read::Page(Json(MessagePage {
            messages: messages
                .iter()
                .map(|m| MessageJson::of(m, &state.config))
                .collect(),
            has_more,
            last_seq: room.last_seq,
        })))
    }

    /// Post a message
    ///
    /// Takes exactly the path of a message typed on the room page: the same validation, the
    /// same rate limit (by default 20 posts per 10 s), and the same live delivery to every
    /// browser with the room open.
    ///
    /// Send JSON for text alone, or `multipart/form-data` to attach files: the text as a
    /// `body` part (it may be empty when files come with it) and each file as a `files` part.
    /// Files are limited as on the page (by default 10 files of at most 10 MiB each: 413
    /// beyond); natter judges each file's type by its bytes and makes a thumbnail of each
    /// image it can decode (an image of more than 40 megapixels is refused: 422). The answer
    /// lists them under `attachments`, with the addresses to download them from.
    ///
    /// ```sh
    /// curl -X POST -H "Authorization: Bearer $NATTER_TOKEN" \
    ///      -H 'Content-Type: application/json' -H "Idempotency-Key: $(uuidgen)" \
    ///      -d '{"body": "Hello from curl!"}' \
    ///      https://natter.example/api/v1/rooms/ABCD-EFGH/messages
    /// curl -X POST -H "Authorization: Bearer $NATTER_TOKEN" -H "Idempotency-Key: $(uuidgen)" \
    ///      -F 'body=The plan, as drawn' -F files=@whiteboard.png -F files=@plan.pdf \
    ///      https://natter.example/api/v1/rooms/ABCD-EFGH/messages
    /// ```
    #[oai(
        path = "/rooms/:code/messages",
        method = "post",
        operation_id = "post_message"
    )]
    async fn post(
        &self,
        token: Token,
        state: Data<&State>,
        /// The room's code, `ABCD-EFGH`.
        code: Path<String>,
        /// Makes retries safe: a second post with the same key (per room and person), the
        /// same body and the same files (names, sizes, types) posts nothing new and answers
        /// with the first; with anything else it is refused (422). 1–64 letters, digits, `-`
        /// or `_` (a UUID will do).
        #[oai(name = "Idempotency-Key", example = "example_key")]
        key: Header<Option<String>>,
        message: NewPost,
        req: &Request,
    ) -> Result<
        Posted,
        Problems<
            { status::JSON_BODY | status::NOT_FOUND | status::INVALID | status::RATE_LIMITED },
        >,
    > {
        let room = member_room(&state, &token, &code.0).await?;
        // poem-openapi skips a header that is not visible ASCII as if it were absent; a key
        // must never be dropped silently (the retry would post twice), so look at them all.
        let sent = req.headers().get_all(IDEMPOTENCY_KEY).iter().count();
        let valid = key.0.as_deref().is_some_and(actions::valid_client_id);
        if sent > 1 || (sent == 1 && !valid) {
            return Err(ApiError::invalid_parameter(
                "Send one `Idempotency-Key` of 1–64 letters, digits, `-` or `_`.",
            )
            .into());
        }
        let (text, files) = match message {
            NewPost::Json(Json(message)) => (message.body.0, Vec::new()),
            NewPost::Multipart(message) => (message.body, message.files),
        };
        let sent_files: Vec<(String, i64, &str)> = files
            .iter()
            .map(|f| (f.name.clone(), f.size as i64, f.sniffed.mime))
            .collect();
        let seq = actions::post(
            &state,
            token.actor(),
            &actions::PostingRoom::member_of(&room)?,
            &text,
            key.0.as_deref(),
            files,
        )
        .await?;
        let posted = state
            .store
            .messages_between(room.id, seq - 1, seq, 1)
            .await?
            .pop()
            .ok_or(Refusal::Unavailable)?;
        // A key answers for one message: the same key with other text or other files is a
        // mistake (a key reused for a new message), and answering with the first would hide
        // that nothing new was posted. "The same" is after the trimming and line-break rules
        // every post gets, and files by name, size and type (their bytes are not kept to
        // compare). A message edited or deleted since has lost its first text: its key
        // answers with it as it is now.
        let changed = posted.edited_at.is_some() || posted.is_deleted();
        let text = match sent_files.is_empty() {
            true => MessageBody::parse(&text),
            false => MessageBody::parse_caption(&text),
        };
        let same_files = posted
            .attachments
            .0
            .iter()
            .map(|a| (a.name.clone(), a.size, a.mime.as_str()))
            .eq(sent_files);
        let same = changed || (same_files && text.is_ok_and(|b| b.as_str() == posted.body));
        if !same {
            return Err(ApiError::invalid_parameter(
                "This `Idempotency-Key` was used for another message: send a new key with new text.",
            )
            .into());
        }
        Ok(Posted::Message(Json(MessageJson::of(
            &posted,
            &state.config,
        ))))
    }

    /// Edit a message
    ///
    /// Only its author can, and not once it is deleted (409). The new text follows the rules
    /// of a post and counts against the same rate limit. Another person's message answers 404,
    /// as one that does not exist.
    #[oai(
        path = "/rooms/:code/messages/:seq",
        method = "patch",
        operation_id = "edit_message"
    )]
    async fn edit(
        &self,
        token: Token,
        state: Data<&State>,
        /// The room's code, `ABCD-EFGH`.
        code: Path<String>,
        /// The message's `seq`.
        seq: Path<i64>,
        message: Json<NewMessage>,
    ) -> Result<
        Edited,
        Problems<
            {
                status::JSON_BODY
                    | status::NOT_FOUND
                    | status::CONFLICT
                    | status::INVALID
                    | status::RATE_LIMITED
            },
        >,
    > {
        let room = member_room(&state, &token, &code.0).await?;
        actions::edit(&state, token.actor(), &room, seq.0, &message.0.body.0).await?;
        let now = state.store.message(room.id, seq.0).await?;
        let now = now.ok_or(Refusal::NotFound)?;
        Ok(Edited::Message(Json(MessageJson::of(&now, &state.config))))
    }

    /// Delete a message
    ///
    /// Its author can, and so can the room's creator (anyone's message). The text is removed
    /// from natter; the message keeps its `seq` and shows as deleted. Deleting it again
    /// answers the same. A message you may not delete answers 404, as one that does not exist.
    #[oai(
        path = "/rooms/:code/messages/:seq",
        method = "delete",
        operation_id = "delete_message"
    )]
    async fn delete(
        &self,
        token: Token,
        state: Data<&State>,
        /// The room's code, `ABCD-EFGH`.
        code: Path<String>,
        /// The message's `seq`.
        seq: Path<i64>,
    ) -> Result<Deleted, Problems<{ status::ALWAYS | status::NOT_FOUND }>> {
        let room = member_room(&state, &token, &code.0).await?;
        actions::delete(&state, token.actor(), &room, seq.0).await?;
        Ok(Deleted::Done)
    }
}

fn example_before() -> Option<i64> {
    Some(43)
}

fn example_limit() -> Option<i64> {
    Some(50)
}

fn example_key() -> Option<String> {
    Some("0b9a3c1e-5f7d-4d2a-9c1b-7e2f4a6d8c10".into())
}
