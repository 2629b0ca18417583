//! Direct conversations: `/dm/{username}` shows the one with that person (or a button that
//! opens it), `POST /dm/{username}` opens it, `POST /dm/{username}/close` closes it. Inside,
//! a direct conversation is a room: posting, the socket, edits and reading use the room
//! routes with its internal code (`web::room`), which nobody is shown.

use poem::{Response, handler, http::StatusCode, web::Path};

use super::{InRoom, NoFields, UserForm, member_nav, respond, room, see_other};
use crate::{
    actions::{self, direct},
    auth::{AppData, CurrentUser},
    error::AppError,
    refusal::Refusal,
    store::RoomOverview,
    views::direct as view,
};

/// `GET /dm/{username}`: the conversation with that person, as a room page; before it exists,
/// a page whose button opens it. Unknown names and people who share no room with the viewer
/// are not found (404, a failed guess); the viewer's own name is 422.
#[handler]
pub async fn show(
    state: AppData<'_>,
    user: CurrentUser,
    Path(name): Path<String>,
) -> poem::Result<Response> {
    let (person, found) = direct::find(&state, user.actor(), &name)
        .await
        .map_err(AppError::from)?;
    // One address per person: as they spell their name.
    if person.username != name {
        return Ok(see_other(&format!("/dm/{}", person.username), false));
    }
    let Some(found) = found else {
        let csrf = user.session.csrf();
        let page = view::start_page(member_nav(&user, &csrf), &csrf, &person.username);
        return Ok(respond(StatusCode::OK, page));
    };
    let overview = actions::room_for::<RoomOverview>(&state, &found.code, user.id)
        .await
        .map_err(AppError::from)?;
    room::show_page(&state, &user, &overview).await
}

/// `POST /dm/{username}` (`csrf`): opens the conversation with that person, creating it on
/// first use, and goes there (303, or `HX-Redirect`).
#[handler]
pub async fn open(
    state: AppData<'_>,
    UserForm { user, htmx, .. }: UserForm<NoFields>,
    Path(name): Path<String>,
) -> poem::Result<Response> {
    let (person, _) = direct::open(&state, user.actor(), &name)
        .await
        .map_err(AppError::from)?;
    Ok(see_other(&format!("/dm/{}", person.username), htmx))
}

/// `GET /rooms/{code}/rail`: the room page's rail as it is now, for `js/unread.js` when live
/// activity names a room the page's rail does not list (a direct conversation that just
/// began, or was reopened by a message). Without JavaScript it appears on the next page.
#[handler]
pub async fn rail(InRoom { room, .. }: InRoom<RoomOverview>) -> Response {
    respond(
        StatusCode::OK,
        crate::views::room::rooms_rail(&room.links, &room.room.code),
    )
}

/// `POST /dm/{username}/close` (`csrf`): closes the conversation for me: it leaves my list
/// until a message arrives in it. 303 home.
#[handler]
pub async fn close(
    state: AppData<'_>,
    UserForm { user, htmx, .. }: UserForm<NoFields>,
    Path(name): Path<String>,
) -> poem::Result<Response> {
    let (_, found) = direct::find(&state, user.actor(), &name)
        .await
        .map_err(AppError::from)?;
    let room = found.ok_or(AppError::from(Refusal::NotFound))?;
    direct::close(&state, user.actor(), &room)
        .await
        .map_err(AppError::from)?;
    Ok(see_other("/home", htmx))
}
