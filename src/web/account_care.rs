//! Care of one's account (issue 18): `/profile/sessions`, `/profile/username`,
//! `/profile/export` and `/profile/delete`.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use poem::{
    Body, Response, handler,
    http::{HeaderValue, StatusCode, header},
    web::Path,
};
use serde::{Deserialize, Serialize};

use super::{NoFields, UserForm, member_nav, respond, see_other};
use crate::{
    State,
    actions::account::{self as act, Messages, Renamed},
    auth::{self, AppData, CurrentUser, SESSION_COOKIE},
    config::RateLimit,
    error::AppError,
    refusal::{Budget, Refusal},
    store::{ExportMessage, ExportRoom, Store, now_ms},
    views::{
        account_care::{self as view, DeleteForm, RenameForm},
        messages::file_href,
    },
};

/// Exports of one's data per person: a few an hour (each reads every message they wrote).
pub const EXPORTS: RateLimit = RateLimit::new(3, Duration::from_secs(3600));

/// Messages read from the store per page of an export: memory holds one page at a time.
const EXPORT_PAGE: i64 = 500;

/// `GET /profile/sessions`: my signed-in browsers and API tokens.
#[handler]
pub async fn sessions(state: AppData<'_>, user: CurrentUser) -> poem::Result<Response> {
    let list = state
        .store
        .sessions_of(user.id, now_ms())
        .await
        .map_err(AppError::from)?;
    let tokens = state
        .store
        .api_tokens(user.id)
        .await
        .map_err(AppError::from)?;
    let csrf = user.session.csrf();
    let page = view::sessions(
        member_nav(&user, &csrf),
        &csrf,
        &list,
        &user.session.token_hash,
        &tokens,
    );
    Ok(respond(StatusCode::OK, page))
}

/// `POST /profile/sessions/{id}/end`: ends that session (its sockets close with 4401 on every
/// instance). Ending this browser's own session signs it out.
#[handler]
pub async fn end_session(
    state: AppData<'_>,
    Path(id): Path<String>,
    UserForm { user, htmx, .. }: UserForm<NoFields>,
) -> poem::Result<Response> {
    let this = state
        .store
        .sessions_of(user.id, now_ms())
        .await
        .map_err(AppError::from)?
        .into_iter()
        .any(|s| s.public_id == id && s.token_hash == user.session.token_hash);
    act::end_session(&state, user.actor(), &id)
        .await
        .map_err(AppError::from)?;
    if this {
        return Ok(signed_out(&state, see_other("/", htmx)));
    }
    Ok(see_other("/profile/sessions", htmx))
}

/// The response with the session cookie cleared.
fn signed_out(state: &State, mut response: Response) -> Response {
    if let Ok(value) = auth::clear_cookie(&state.config, SESSION_COOKIE).parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `GET /profile/username`: the form to change one's username.
#[handler]
pub async fn username_form(state: AppData<'_>, user: CurrentUser) -> poem::Result<Response> {
    let next_at = state
        .store
        .next_rename_at(user.id, now_ms())
        .await
        .map_err(AppError::from)?;
    Ok(rename_page(
        &user,
        &user.username,
        None,
        next_at,
        StatusCode::OK,
    ))
}

fn rename_page(
    user: &CurrentUser,
    typed: &str,
    error: Option<&str>,
    next_at: Option<i64>,
    status: StatusCode,
) -> Response {
    let csrf = user.session.csrf();
    let form = RenameForm {
        current: &user.username,
        typed,
        error,
        next_at,
    };
    respond(
        status,
        view::username(member_nav(user, &csrf), &csrf, &form),
    )
}

/// The username form.
#[derive(Deserialize)]
pub struct RenameFields {
    #[serde(default)]
    username: String,
}

/// `POST /profile/username`: the same rules as choosing a name (422 with the typed value), at
/// most once a day (429 with `Retry-After` and when it is possible again).
#[handler]
pub async fn change_username(
    state: AppData<'_>,
    UserForm {
        user, form, htmx, ..
    }: UserForm<RenameFields>,
) -> poem::Result<Response> {
    match act::change_username(&state, user.actor(), &form.username).await {
        Ok(Renamed::Done | Renamed::Unchanged) => Ok(see_other("/profile", htmx)),
        Ok(Renamed::TooSoon { next_at }) => {
            let why = "You can change your username once a day.";
            let mut response = rename_page(
                &user,
                &form.username,
                Some(why),
                Some(next_at),
                StatusCode::TOO_MANY_REQUESTS,
            );
            let secs = ((next_at - now_ms()).max(1000) + 999) / 1000;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            Ok(response)
        }
        Err(refusal @ Refusal::Invalid(why)) => {
            let page = rename_page(&user, &form.username, Some(why), None, refusal.status());
            Ok(page)
        }
        Err(refusal) => Err(AppError::from(refusal).into()),
    }
}

/// `GET /profile/export`: a JSON download of my profile, memberships and messages, streamed
/// from the store a page at a time (memory stays bounded however many messages there are).
#[handler]
pub async fn export(state: AppData<'_>, user: CurrentUser) -> poem::Result<Response> {
    Budget::Exports
        .spend(&state.limits.exports, &user.id)
        .map_err(AppError::from)?;
    let rooms = state
        .store
        .export_rooms(user.id)
        .await
        .map_err(AppError::from)?;
    let head = export_head(&user, &rooms);
    let origin = state.config.public_url.clone();
    let export = Export {
        store: state.store.clone(),
        user_id: user.id,
        origin,
    };
    let pages = stream::unfold(Some(((0, 0), true)), move |cursor| {
        let export = export.clone();
        async move {
            let (after, first) = cursor?;
            match export.page(after, first).await {
                Ok((chunk, Some(next))) => Some((Ok(chunk), Some((next, false)))),
                Ok((chunk, None)) => Some((Ok(chunk), None)),
                Err(e) => {
                    // The download stops short: an invalid file, never a silently partial one.
                    tracing::warn!(error = %e, "export failed midway");
                    Some((Err(std::io::Error::other(e)), None))
                }
            }
        }
    });
    let body = stream::iter([Ok::<Bytes, std::io::Error>(Bytes::from(head))]).chain(pages);
    tracing::info!(user_id = user.id, "data export started");
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .header(
            header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"natter-export-{}.json\"",
                user.username
            ),
        )
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from_bytes_stream(body)))
}

/// What an export needs to read its pages.
#[derive(Clone)]
struct Export {
    store: Store,
    user_id: i64,
    origin: url::Url,
}

/// The export's opening: profile and memberships, then the start of the messages array.
fn export_head(user: &CurrentUser, rooms: &[ExportRoom]) -> String {
    #[derive(Serialize)]
    struct Profile<'a> {
        username: &'a str,
        email: &'a str,
        member_since: String,
    }
    #[derive(Serialize)]
    struct Membership<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        direct_with: Option<&'a str>,
        joined_at: String,
    }
    let profile = Profile {
        username: &user.username,
        email: &user.session.user.email,
        member_since: iso(user.session.user.created_at),
    };
    let memberships: Vec<Membership> = rooms
        .iter()
        .map(|r| {
            let direct = r.code.is_empty();
            Membership {
                room: (!direct).then_some(r.code.as_str()),
                name: (!direct).then_some(r.name.as_str()),
                direct_with: if direct {
                    Some(r.direct_with.as_deref().unwrap_or("deleted user"))
                } else {
                    None
                },
                joined_at: iso(r.joined_at),
            }
        })
        .collect();
    // serde_json writes these two: every string is escaped by it, never by hand.
    let profile = serde_json::to_string(&profile).unwrap_or_else(|_| "{}".into());
    let memberships = serde_json::to_string(&memberships).unwrap_or_else(|_| "[]".into());
    format!(
        "{{\"format\":\"natter-export-1\",\"exported_at\":\"{}\",\"profile\":{profile},\"memberships\":{memberships},\"messages\":[",
        iso(now_ms())
    )
}

impl Export {
    /// The page of messages after `after` as JSON array items (with a leading comma unless
    /// `first`), and the key to continue from; `None` after the last page (the chunk then also
    /// closes the array and the document).
    async fn page(
        &self,
        after: (i64, i64),
        first: bool,
    ) -> Result<(Bytes, Option<(i64, i64)>), crate::store::StoreError> {
        let rows = self
            .store
            .export_messages(self.user_id, after, EXPORT_PAGE)
            .await?;
        let mut out = Vec::with_capacity(rows.len() * 200);
        for (i, m) in rows.iter().enumerate() {
            if !(first && i == 0) {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, &self.item(m))
                .map_err(|e| crate::store::StoreError::Sqlx(sqlx::Error::Encode(Box::new(e))))?;
        }
        let next = match rows.last() {
            Some(last) if rows.len() as i64 == EXPORT_PAGE => Some((last.room_id, last.seq)),
            _ => None,
        };
        if next.is_none() {
            out.extend_from_slice(b"]}\n");
        }
        Ok((Bytes::from(out), next))
    }

    fn item<'a>(&self, m: &'a ExportMessage) -> ExportItem<'a> {
        let direct = m.code.is_empty();
        ExportItem {
            room: (!direct).then_some(m.code.as_str()),
            direct_with: if direct {
                Some(m.direct_with.as_deref().unwrap_or("deleted user"))
            } else {
                None
            },
            seq: m.seq,
            body: &m.body,
            created_at: iso(m.created_at),
            edited_at: m.edited_at.map(iso),
            attachments: m
                .attachments
                .0
                .iter()
                .map(|a| {
                    self.origin
                        .join(&file_href(a))
                        .map(String::from)
                        .unwrap_or_default()
                })
                .collect(),
        }
    }
}

/// One message in an export.
#[derive(Serialize)]
struct ExportItem<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    room: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    direct_with: Option<&'a str>,
    seq: i64,
    body: &'a str,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    edited_at: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attachments: Vec<String>,
}

/// Unix ms as RFC 3339 in UTC (`2026-12-03T07:09:11.123Z`).
fn iso(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// `GET /profile/delete`: what deleting the account does, and the form.
#[handler]
pub async fn delete_form(state: AppData<'_>, user: CurrentUser) -> poem::Result<Response> {
    delete_page(&state, &user, "", "keep", None, StatusCode::OK).await
}

async fn delete_page(
    state: &State,
    user: &CurrentUser,
    typed: &str,
    messages: &str,
    error: Option<&str>,
    status: StatusCode,
) -> poem::Result<Response> {
    let rooms = state
        .store
        .rooms_of(user.id)
        .await
        .map_err(AppError::from)?;
    let owned = rooms.iter().filter(|r| r.owned_by(user.id)).count();
    let csrf = user.session.csrf();
    let form = DeleteForm {
        username: &user.username,
        rooms: (rooms.len(), owned),
        typed,
        messages,
        error,
    };
    Ok(respond(
        status,
        view::delete(member_nav(user, &csrf), &csrf, &form),
    ))
}

/// The deletion form.
#[derive(Deserialize)]
pub struct DeleteFields {
    #[serde(default)]
    messages: String,
    #[serde(default)]
    confirm: String,
}

/// `POST /profile/delete`: deletes the account (`messages=keep|delete`, `confirm` = the
/// username), then signs this browser out.
#[handler]
pub async fn delete(
    state: AppData<'_>,
    UserForm {
        user, form, htmx, ..
    }: UserForm<DeleteFields>,
) -> poem::Result<Response> {
    let why = match Messages::parse(&form.messages) {
        None => Some("Choose what happens to your messages: keep them or delete them."),
        Some(_) if !form.confirm.trim().eq_ignore_ascii_case(&user.username) => {
            Some("Type your username exactly as shown to confirm.")
        }
        Some(_) => None,
    };
    let (Some(messages), None) = (Messages::parse(&form.messages), why) else {
        let why = why.unwrap_or_default();
        let status = Refusal::Invalid(why).status();
        return delete_page(
            &state,
            &user,
            &form.confirm,
            &form.messages,
            Some(why),
            status,
        )
        .await;
    };
    act::delete_account(&state, user.actor(), messages)
        .await
        .map_err(AppError::from)?;
    Ok(signed_out(&state, see_other("/", htmx)))
}
