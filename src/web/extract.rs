//! What handlers take from a request besides the session (`auth`): posted forms, CSRF-checked,
//! and the room of a room route, found through the person's membership.

use poem::{
    FromRequest, Request, RequestBody,
    http::{Method, header},
    web::Path,
};
use serde::{Deserialize, de::DeserializeOwned};

use crate::{
    State,
    actions::{self, ThroughMembership},
    auth::{self, CurrentUser, Session},
    domain::RoomCode,
    error::AppError,
    files::{Files, Spooled, Upload},
    refusal::Refusal,
    views::FormEcho,
};

/// Whether htmx made this request (it answers with fragments or `HX-Redirect`).
pub fn is_htmx(req: &Request) -> bool {
    req.headers().contains_key("hx-request")
}

/// The shared state, which `lib::app` puts on every request.
pub(super) fn state(req: &Request) -> Result<&State, AppError> {
    req.data::<State>().ok_or_else(|| {
        tracing::error!("application state missing");
        Refusal::Internal.into()
    })
}

#[derive(Deserialize)]
struct CsrfField {
    csrf: Option<String>,
}

/// A posted form, read whole (its text at most the configured size), and where it was posted.
/// A multipart form's text fields are kept as the urlencoded form they would have been, so
/// every form is read, checked and given back the same way; its files (on routes that take
/// them) are spooled to disk as they arrive.
struct Posted {
    action: poem::http::Uri,
    bytes: bytes::Bytes,
    /// The files, spooled.
    uploads: Vec<Upload>,
    /// Why files were refused (too large, too many): the rest of the form is still read, so
    /// its text can come back with the reason.
    files_refused: Option<Refusal>,
}

/// Whether a route takes files, and what must be proven before one is written to disk.
#[derive(Clone, Copy)]
pub enum FilePolicy<'s> {
    /// Files are refused (400).
    None,
    /// Files are spooled once a CSRF token good for this session was seen (the `X-CSRF-Token`
    /// header, or a `csrf` field before the files: natter's forms put it first).
    Spool(&'s Session),
    /// Files are spooled: the caller proved who it is with an API token, which (unlike a
    /// cookie) no other site can make a browser send, so there is no CSRF token to check.
    Bearer,
}

/// How much longer than a form's body deadline an upload may take to arrive (30 s × 20: ten
/// minutes for the largest files on a slow line).
const UPLOAD_DEADLINE_FACTOR: u32 = 20;

impl Posted {
    async fn read(
        req: &Request,
        body: &mut RequestBody,
        files: FilePolicy<'_>,
    ) -> Result<Self, AppError> {
        let is_multipart = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
        if is_multipart {
            return Self::read_multipart(req, body, files).await;
        }
        let config = &state(req)?.config;
        let limit = config.limits.body_bytes;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(Refusal::TooLarge.into());
        }
        let reading = body
            .take()
            .map_err(|_| Refusal::BadRequest("The form was empty."))?
            .into_bytes_limit(limit);
        let bytes = tokio::time::timeout(config.timeouts.body, reading)
            .await
            .map_err(|_| Refusal::TooSlow)?
            .map_err(|e| match e {
                poem::error::ReadBodyError::PayloadTooLarge => Refusal::TooLarge,
                _ => Refusal::BadRequest("The form could not be read."),
            })?;
        Ok(Posted {
            action: req.original_uri().clone(),
            bytes,
            uploads: Vec::new(),
            files_refused: None,
        })
    }

    /// A `multipart/form-data` body (`read_multipart`), its text fields kept as the
    /// urlencoded form they would have been.
    async fn read_multipart(
        req: &Request,
        body: &mut RequestBody,
        files: FilePolicy<'_>,
    ) -> Result<Self, AppError> {
        let read = read_multipart(req, body, files).await?;
        let bytes = serde_urlencoded::to_string(&read.fields)
            .map_err(|_| Refusal::BadRequest("The form was malformed."))?;
        Ok(Posted {
            action: req.original_uri().clone(),
            bytes: bytes.into(),
            uploads: read.uploads,
            files_refused: read.refused,
        })
    }

    fn form<T: DeserializeOwned>(&self) -> Result<T, AppError> {
        serde_urlencoded::from_bytes(&self.bytes)
            .map_err(|_| Refusal::BadRequest("The form was malformed.").into())
    }

    /// The CSRF token it carries: the `csrf` field, else the `X-CSRF-Token` header htmx sends.
    fn csrf(&self, req: &Request) -> Option<String> {
        serde_urlencoded::from_bytes::<CsrfField>(&self.bytes)
            .ok()
            .and_then(|f| f.csrf)
            .or_else(|| {
                req.headers()
                    .get("x-csrf-token")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            })
    }

    /// What was typed, to give back: every field as posted (its CSRF token is still good for
    /// the session), to be posted again to where it went.
    fn echo(&self) -> FormEcho {
        FormEcho {
            action: self.action.path().to_string(),
            fields: serde_urlencoded::from_bytes(&self.bytes).unwrap_or_default(),
        }
    }
}

/// A `multipart/form-data` body, read.
#[derive(Debug, Default)]
pub struct MultipartForm {
    /// The text fields, in the order they came.
    pub fields: Vec<(String, String)>,
    /// The files posted as `files`, spooled (none when `refused`).
    pub uploads: Vec<Upload>,
    /// Why the files were refused (too large, too many): the rest of the body is still read,
    /// so the text can come back with the reason.
    pub refused: Option<Refusal>,
    /// The names of file parts other than `files`, read and thrown away.
    pub strays: Vec<String>,
}

/// Reads a `multipart/form-data` body field by field, for the pages and the API alike: text
/// fields (at most the body limit in all) in memory, files (where `files` allows them) spooled
/// by `Files::spool` as they arrive, never whole in memory, within the upload limits
/// (`NATTER_MAX_UPLOAD`, `NATTER_MAX_FILES`) and a deadline long enough for them.
pub async fn read_multipart(
    req: &Request,
    body: &mut RequestBody,
    files: FilePolicy<'_>,
) -> Result<MultipartForm, Refusal> {
    let state = req.data::<State>().ok_or_else(|| {
        tracing::error!("application state missing");
        Refusal::Internal
    })?;
    let config = &state.config;
    let text_limit = config.limits.body_bytes;
    let (whole, deadline) = match files {
        FilePolicy::None => (text_limit as u64, config.timeouts.body),
        FilePolicy::Spool(_) | FilePolicy::Bearer => {
            let limits = state.files.config();
            // Every file at its largest, one more that will be refused, and the text.
            let files = (limits.max_files as u64 + 1) * (limits.max_upload + 4096);
            (
                files + text_limit as u64,
                config.timeouts.body * UPLOAD_DEADLINE_FACTOR,
            )
        }
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > whole) {
        return Err(Refusal::TooLarge);
    }
    let boundary = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| multer::parse_boundary(v).ok())
        .ok_or(Refusal::BadRequest("The form was malformed."))?;
    let stream = body
        .take()
        .map_err(|_| Refusal::BadRequest("The form was empty."))?
        .into_bytes_stream();
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(whole));
    let multipart = multer::Multipart::with_constraints(stream, boundary, constraints);
    let reading = Multipart {
        inner: multipart,
        header_csrf: req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        text_limit,
    }
    .read(&state.files, files);
    tokio::time::timeout(deadline, reading)
        .await
        .map_err(|_| Refusal::TooSlow)?
}

/// A multipart body being read.
struct Multipart {
    inner: multer::Multipart<'static>,
    /// The CSRF token htmx sent as a header, if it did.
    header_csrf: Option<String>,
    /// The most bytes of text fields, together.
    text_limit: usize,
}

impl Multipart {
    async fn read(
        mut self,
        files: &Files,
        policy: FilePolicy<'_>,
    ) -> Result<MultipartForm, Refusal> {
        let mut fields: Vec<(String, String)> = Vec::new();
        let mut uploads = Vec::new();
        let mut refused = None;
        let mut strays = Vec::new();
        let mut text_bytes = 0;
        while let Some(mut field) = self.inner.next_field().await.map_err(malformed)? {
            let name = field.name().unwrap_or_default().to_string();
            if field.file_name().is_none() {
                let mut text = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                    text_bytes += chunk.len();
                    if text_bytes > self.text_limit {
                        return Err(Refusal::TooLarge);
                    }
                    text.extend_from_slice(&chunk);
                }
                let text = String::from_utf8(text)
                    .map_err(|_| Refusal::BadRequest("The form was malformed."))?;
                fields.push((name, text));
                continue;
            }
            match policy {
                FilePolicy::None => {
                    return Err(Refusal::BadRequest("This form does not take files."));
                }
                FilePolicy::Spool(session) => {
                    let csrf = self.header_csrf.as_deref().or_else(|| {
                        fields
                            .iter()
                            .find(|(name, _)| name == "csrf")
                            .map(|(_, v)| v.as_str())
                    });
                    if !csrf.is_some_and(|c| session.verify_csrf(c)) {
                        return Err(Refusal::Forbidden(CSRF_REFUSED));
                    }
                }
                FilePolicy::Bearer => {}
            }
            if name != "files" || refused.is_some() {
                // Read away: only `files` carries attachments, and once one was refused the
                // post will be too.
                if name != "files" {
                    strays.push(name);
                }
                while field.chunk().await.map_err(malformed)?.is_some() {}
                continue;
            }
            match files.spool(field).await? {
                Spooled::File(upload) if uploads.len() < files.config().max_files => {
                    uploads.push(upload)
                }
                Spooled::File(_) => {
                    refused = Some(Refusal::TooManyFiles {
                        max: files.config().max_files,
                    })
                }
                Spooled::TooLarge => {
                    refused = Some(Refusal::FileTooLarge {
                        max: files.config().max_upload,
                    })
                }
                Spooled::Nothing => {}
            }
        }
        if refused.is_some() {
            uploads.clear();
        }
        Ok(MultipartForm {
            fields,
            uploads,
            refused,
            strays,
        })
    }
}

fn malformed(e: multer::Error) -> Refusal {
    match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            Refusal::TooLarge
        }
        e => {
            tracing::debug!(error = %e, "multipart form unreadable");
            Refusal::BadRequest("The form could not be read. Send it again.")
        }
    }
}

const CSRF_REFUSED: &str =
    "The form's security token did not match your session. Reload the page and try again.";

/// A form posted by a signed-in person with a username, CSRF-checked. With `FILES`, its
/// route takes attachments (`files`, multipart): `take_files` hands them over.
pub struct UserForm<T, const FILES: bool = false> {
    /// Who posted it.
    pub user: CurrentUser,
    /// Its fields.
    pub form: T,
    /// Whether htmx posted it.
    pub htmx: bool,
    /// What was posted, for `keeping`.
    posted: Posted,
}

impl<T, const FILES: bool> UserForm<T, FILES> {
    /// The files posted with the form, spooled; or why they were refused (too large, too
    /// many), which refuses the whole post.
    pub fn take_files(&mut self) -> Result<Vec<Upload>, Refusal> {
        match self.posted.files_refused.take() {
            Some(refusal) => Err(refusal),
            None => Ok(std::mem::take(&mut self.posted.uploads)),
        }
    }

    /// `refusal`, with what was typed given back on the error page, ready to send again: the
    /// one way a refused form's text comes back when no page of its own can show it.
    pub fn keeping(&self, refusal: Refusal) -> AppError {
        AppError {
            refusal,
            typed: Some(self.posted.echo()),
        }
    }
}

impl<T, const FILES: bool> UserForm<T, FILES> {
    /// What another extractor found (the room of a room route), or, when it failed because
    /// the database did, that refusal with what was typed given back.
    pub fn or_keeping<R>(&self, found: poem::Result<R>) -> poem::Result<R> {
        found.map_err(|e| match e.downcast_ref::<AppError>() {
            Some(e) if e.refusal == Refusal::Unavailable => {
                self.keeping(Refusal::Unavailable).into()
            }
            _ => e,
        })
    }
}

impl<'a, T: DeserializeOwned, const FILES: bool> FromRequest<'a> for UserForm<T, FILES> {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        let SessionForm {
            session,
            form,
            htmx,
            posted,
        } = SessionForm::extract(req, body, FILES).await?;
        Ok(UserForm {
            user: CurrentUser::from_session(session)?,
            form,
            htmx,
            posted,
        })
    }
}

/// A form posted by a signed-in browser (username not required: choosing one, signing out),
/// CSRF-checked.
pub struct SessionForm<T> {
    /// The browser's session.
    pub session: Session,
    /// Its fields.
    pub form: T,
    /// Whether htmx posted it.
    pub htmx: bool,
    posted: Posted,
}

impl<'a, T: DeserializeOwned> FromRequest<'a> for SessionForm<T> {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        Self::extract(req, body, false).await
    }
}

impl<T: DeserializeOwned> SessionForm<T> {
    /// The form, with its files spooled when the route takes them (`files`).
    async fn extract(req: &Request, body: &mut RequestBody, files: bool) -> poem::Result<Self> {
        debug_assert_eq!(req.method(), Method::POST);
        let session = match Session::from_request(req, body).await {
            Ok(session) => session,
            Err(e)
                if e.downcast_ref::<AppError>()
                    .is_some_and(|e| e.refusal == Refusal::Unavailable) =>
            {
                // The database is down: nothing can be checked or saved, but what was typed
                // goes back to the person instead of being lost.
                let typed = match Posted::read(req, body, FilePolicy::None).await {
                    Ok(posted) => posted.echo(),
                    Err(_) => FormEcho {
                        action: req.original_uri().path().to_string(),
                        fields: Vec::new(),
                    },
                };
                return Err(AppError {
                    refusal: Refusal::Unavailable,
                    typed: Some(typed),
                }
                .into());
            }
            Err(e) => return Err(e),
        };
        let policy = match files {
            true => FilePolicy::Spool(&session),
            false => FilePolicy::None,
        };
        let posted = Posted::read(req, body, policy).await?;
        let form = posted.form::<T>()?;
        if !posted.csrf(req).is_some_and(|c| session.verify_csrf(&c)) {
            return Err(AppError::from(Refusal::Forbidden(CSRF_REFUSED)).into());
        }
        Ok(SessionForm {
            session,
            form,
            htmx: is_htmx(req),
            posted,
        })
    }
}

/// A form posted before signing in, CSRF-checked against the pre-session cookie.
pub struct GuestForm<T> {
    /// Its fields.
    pub form: T,
}

impl<'a, T: DeserializeOwned> FromRequest<'a> for GuestForm<T> {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        let state = state(req)?;
        let posted = Posted::read(req, body, FilePolicy::None).await?;
        let form = posted.form::<T>()?;
        let secret = auth::read_cookie(req, &state.config, auth::PRE_SESSION_COOKIE)
            .and_then(|v| auth::decode_token(&v))
            .map(|t| auth::csrf::pre_session_secret(&t));
        match (secret, posted.csrf(req)) {
            (Some(secret), Some(csrf)) if auth::csrf::verify(&secret, &csrf) => {
                Ok(GuestForm { form })
            }
            _ => Err(AppError::from(Refusal::Forbidden(CSRF_REFUSED)).into()),
        }
    }
}

/// An empty form: only its CSRF token matters (sign out, leave).
#[derive(Deserialize)]
pub struct NoFields {}

/// The `{code}` of a room route.
#[derive(Deserialize)]
struct CodeParam {
    code: String,
}

/// The room of a room route (`/rooms/{code}/…`), for a signed-in person with a username, found
/// through their membership: the one access check every room route makes. `T` is what the
/// route needs of the room (see `actions::ThroughMembership`), loaded in the statement that
/// checks membership.
///
/// In order: the session (303 to sign in), the code's spelling (a page or fragment asked for
/// with a valid code spelled another way, `abcd-efgh`, answers 308 to the canonical URL; posts
/// and sockets accept any spelling), then the code and membership (404 for no such room and
/// for someone else's alike, each a failed guess: 429 once those are spent, see
/// `actions::not_found`).
pub struct InRoom<T = crate::store::Room> {
    /// Who asks.
    pub user: CurrentUser,
    /// The room, as the route needs it.
    pub room: T,
}

impl<'a, T: ThroughMembership> FromRequest<'a> for InRoom<T> {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        let user = CurrentUser::from_request(req, body).await?;
        let Path(CodeParam { code: raw }) = Path::from_request(req, body).await?;
        let is_page = req.method() == Method::GET && !req.headers().contains_key(header::UPGRADE);
        if is_page
            && let Ok(code) = RoomCode::parse(&raw)
            && code.canonical() != raw
        {
            return Err(AppError::from(Refusal::Moved {
                location: canonical_location(req, code),
            })
            .into());
        }
        let state = state(req)?;
        let refusal = match actions::room_for::<T>(state, &raw, user.id).await {
            Ok(room) => return Ok(InRoom { user, room }),
            Err(refusal) => refusal,
        };
        if refusal == Refusal::NotFound {
            return Err(moved_or_not_found(state, req, &raw, user.id).await);
        }
        Err(AppError::from(refusal).into())
    }
}

/// The answer to a member who asks for a room by the code it had before its last rotation: 308
/// to the same URL with the room's code now (their open pages and links keep working; a form
/// posted there is posted again at the new address). Anyone else, and any other code, is
/// `NotFound` (already charged as a failed guess: a member's old code is given back).
async fn moved_or_not_found(state: &State, req: &Request, raw: &str, user_id: i64) -> poem::Error {
    let moved = match RoomCode::parse(raw) {
        Ok(code) => state.store.room_moved_from(code, user_id).await,
        Err(_) => Ok(None),
    };
    match moved {
        Ok(Some(room)) => match RoomCode::parse(&room.code) {
            Ok(code) => {
                state.limits.join_fails.refund(&user_id);
                AppError::from(Refusal::Moved {
                    location: canonical_location(req, code),
                })
                .into()
            }
            Err(_) => AppError::from(Refusal::NotFound).into(),
        },
        Ok(None) => AppError::from(Refusal::NotFound).into(),
        Err(e) => AppError::from(Refusal::from(e)).into(),
    }
}

/// The request's URL with the room code spelled canonically. The code is the third piece of
/// the path, percent-encoded there (the parameter is decoded), so the new path is built from
/// the pieces, not by replacing the parameter's text.
fn canonical_location(req: &Request, code: RoomCode) -> String {
    let mut pieces = req.uri().path().splitn(4, '/').skip(1);
    let prefix = pieces.next().unwrap_or("rooms");
    let rest = pieces.nth(1).map(|r| format!("/{r}")).unwrap_or_default();
    let path = format!("/{prefix}/{}{rest}", code.canonical());
    match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    }
}
