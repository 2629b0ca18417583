//! Editing and deleting messages: `GET,POST /rooms/{code}/messages/{seq}/edit` and
//! `GET,POST /rooms/{code}/messages/{seq}/delete`. Without JavaScript, an edit page and a
//! confirmation page, each answering 303 back to the message; with htmx, the edit form in
//! place of the message and its new content as the answer (the change reaches every page,
//! this one too, over the room's socket).
//!
//! Another person's message answers 404 like a message that does not exist (it tells
//! nothing); the room's creator may delete anyone's. Editing a deleted message is 409.

use poem::{Response, handler, http::StatusCode, web::Path};
use serde::Deserialize;

use super::{InRoom, NoFields, UserForm, is_htmx, member_nav, refused, respond, see_other};
use crate::{
    State, actions,
    auth::{AppData, CurrentUser},
    error::AppError,
    refusal::Refusal,
    store::{Message, Room},
    views::{changes, messages},
};

/// `{seq}` of a message route, as typed.
#[derive(Deserialize)]
pub struct SeqParam {
    seq: String,
}

/// The edit form.
#[derive(Deserialize)]
pub struct EditForm {
    #[serde(default)]
    body: String,
}

/// Message `seq` of `room` as it is now, if `may` lets this person change it; otherwise 404,
/// the same as for a message that does not exist.
async fn changeable(
    state: &State,
    room: &Room,
    seq: &str,
    may: impl FnOnce(&Message) -> bool,
) -> Result<Message, AppError> {
    let seq = super::room::message_number(seq).ok_or(AppError::NOT_FOUND)?;
    let message = state.store.message(room.id, seq).await?;
    // A system line (a change to the room) is nobody's to change.
    message
        .filter(|m| !m.is_system() && may(m))
        .ok_or(AppError::NOT_FOUND)
}

/// Where a change goes back to: the message, on whichever page shows it.
fn back_to(room: &Room, m: &Message) -> String {
    messages::permalink(&room.code, m.seq)
}

/// `GET /rooms/{code}/messages/{seq}/edit`: the edit page, or for htmx the form that replaces
/// the message's content.
#[handler]
pub async fn edit_form(
    state: AppData<'_>,
    req: &poem::Request,
    InRoom { user, room }: InRoom<Room>,
    Path(SeqParam { seq }): Path<SeqParam>,
) -> poem::Result<Response> {
    let m = changeable(&state, &room, &seq, |m| m.user_id == user.id).await?;
    if is_htmx(req) {
        // Deleted meanwhile: the message as it is now, in place of the form.
        let markup = match m.is_deleted() {
            true => messages::message_content(&room.code, &m),
            false => changes::inline_edit(&room.code, &m, &m.body, None),
        };
        return Ok(respond(StatusCode::OK, markup));
    }
    if m.is_deleted() {
        return Err(AppError::from(Refusal::Conflict(actions::DELETED)).into());
    }
    Ok(edit_page(&user, &room, &m, &m.body, None))
}

fn edit_page(
    user: &CurrentUser,
    room: &Room,
    m: &Message,
    text: &str,
    refusal: Option<&Refusal>,
) -> Response {
    let csrf = user.session.csrf();
    let why = refusal.map(Refusal::sentence);
    let page = changes::edit_page(
        member_nav(user, &csrf),
        &csrf,
        &room.code,
        m,
        text,
        why.as_deref(),
    );
    match refusal {
        Some(refusal) => refused(refusal, page),
        None => respond(StatusCode::OK, page),
    }
}

/// `POST /rooms/{code}/messages/{seq}/edit`: saves the new text. Refused (empty, too long,
/// too fast, deleted meanwhile), the form comes back with the typed text and why.
#[handler]
pub async fn edit(
    state: AppData<'_>,
    posted: UserForm<EditForm>,
    found: poem::Result<InRoom<Room>>,
    Path(SeqParam { seq }): Path<SeqParam>,
) -> poem::Result<Response> {
    let InRoom { user, room } = posted.or_keeping(found)?;
    let text = &posted.form.body;
    let m = changeable(&state, &room, &seq, |m| m.user_id == user.id).await?;
    let refusal = match actions::edit(&state, user.actor(), &room, m.seq, text).await {
        Ok(()) if posted.htmx => {
            // The new content for the page that edited; every page gets it over its socket.
            let now = state.store.message(room.id, m.seq).await;
            let now = now.map_err(AppError::from)?.ok_or(AppError::NOT_FOUND)?;
            let content = messages::message_content(&room.code, &now);
            return Ok(respond(StatusCode::OK, content));
        }
        Ok(()) => return Ok(see_other(&back_to(&room, &m), false)),
        Err(Refusal::NotFound) => return Err(AppError::NOT_FOUND.into()),
        Err(Refusal::Unavailable) => return Err(posted.keeping(Refusal::Unavailable).into()),
        Err(refusal) => refusal,
    };
    if posted.htmx {
        let why = refusal.sentence();
        let form = changes::inline_edit(&room.code, &m, text, Some(&why));
        return Ok(refused(&refusal, form));
    }
    Ok(edit_page(&user, &room, &m, text, Some(&refusal)))
}

/// `GET /rooms/{code}/messages/{seq}/delete`: asks first. A message deleted already has
/// nothing to ask: back to it.
#[handler]
pub async fn delete_form(
    state: AppData<'_>,
    req: &poem::Request,
    InRoom { user, room }: InRoom<Room>,
    Path(SeqParam { seq }): Path<SeqParam>,
) -> poem::Result<Response> {
    let moderator = room.owned_by(user.id);
    let m = changeable(&state, &room, &seq, |m| m.user_id == user.id || moderator).await?;
    if m.is_deleted() {
        return Ok(see_other(&back_to(&room, &m), is_htmx(req)));
    }
    let csrf = user.session.csrf();
    let own = m.user_id == user.id;
    let page = changes::delete_page(member_nav(&user, &csrf), &csrf, &room.code, &m, own);
    Ok(respond(StatusCode::OK, page))
}

/// `POST /rooms/{code}/messages/{seq}/delete`: deletes it (its text leaves the database), and
/// goes back to where it was.
#[handler]
pub async fn delete(
    state: AppData<'_>,
    posted: UserForm<NoFields>,
    found: poem::Result<InRoom<Room>>,
    Path(SeqParam { seq }): Path<SeqParam>,
) -> poem::Result<Response> {
    let InRoom { user, room } = posted.or_keeping(found)?;
    let moderator = room.owned_by(user.id);
    let m = changeable(&state, &room, &seq, |m| m.user_id == user.id || moderator).await?;
    actions::delete(&state, user.actor(), &room, m.seq)
        .await
        .map_err(AppError::from)?;
    Ok(see_other(&back_to(&room, &m), posted.htmx))
}
