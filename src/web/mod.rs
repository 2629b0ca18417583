//! Pages and fragments. One module per area; every route is listed in `routes()` so `grep` for a
//! path finds its handler.

pub mod account;
pub mod account_care;
pub mod assets;
pub mod changes;
pub mod direct;
pub mod extract;
pub mod files;
pub mod home;
pub mod live;
pub mod middleware;
pub mod ops;
pub mod push;
pub mod room;
pub mod search;
pub mod settings;
pub mod tokens;

use poem::{
    Response, Route, get,
    http::{HeaderValue, StatusCode, header},
    post,
};

pub use extract::{GuestForm, InRoom, NoFields, SessionForm, UserForm, is_htmx};

use crate::{auth::CurrentUser, refusal::Refusal, views::Nav};

/// Every route natter serves (DESIGN.md §3).
pub fn routes() -> Route {
    Route::new()
        .at("/", get(account::landing))
        .at("/auth/login", get(account::login))
        .at("/auth/callback", get(account::callback))
        .at(
            "/auth/dev",
            get(account::dev_form).post(account::dev_sign_in),
        )
        .at("/auth/logout", post(account::logout))
        .at("/auth/logout/everywhere", post(account::logout_everywhere))
        .at(
            "/username",
            get(account::username_form).post(account::choose_username),
        )
        .at("/profile", get(account::profile))
        .at("/profile/notify", post(account::set_notify_default))
        .at("/profile/dnd", get(push::dnd_state).post(push::set_dnd))
        .at("/push/subscriptions", post(push::subscribe))
        .at("/push/subscriptions/delete", post(push::unsubscribe))
        .at("/sw.js", get(push::service_worker))
        .at("/profile/tokens", post(tokens::create))
        .at("/profile/tokens/:id/revoke", post(tokens::revoke))
        .at("/profile/sessions", get(account_care::sessions))
        .at("/profile/sessions/:id/end", post(account_care::end_session))
        .at(
            "/profile/username",
            get(account_care::username_form).post(account_care::change_username),
        )
        .at("/profile/export", get(account_care::export))
        .at(
            "/profile/delete",
            get(account_care::delete_form).post(account_care::delete),
        )
        .at("/me.css", get(account::me_css))
        .at("/home", get(home::home))
        .at("/home/read", post(home::mark_all_read))
        .at("/rooms", post(home::create_room))
        .at("/rooms/join", post(home::join_room))
        .at("/join/:code", get(home::invitation))
        .at("/rooms/:code", get(room::show))
        .at(
            "/rooms/:code/messages",
            get(room::older).post(room::post_message),
        )
        .at("/rooms/:code/messages/:seq", get(room::message))
        .at(
            "/rooms/:code/messages/:seq/edit",
            get(changes::edit_form).post(changes::edit),
        )
        .at(
            "/rooms/:code/messages/:seq/delete",
            get(changes::delete_form).post(changes::delete),
        )
        .at("/rooms/:code/ws", get(live::connect))
        .at("/rooms/:code/live", get(live::live))
        .at("/rooms/:code/events", get(live::events))
        .at(
            "/rooms/:code/compose",
            get(room::compose_form).post(room::compose),
        )
        .at("/rooms/:code/notify", post(room::set_notify))
        .at("/rooms/:code/read", post(room::read))
        .at("/rooms/:code/leave", post(room::leave))
        .at("/rooms/:code/rail", get(direct::rail))
        .at("/dm/:username", get(direct::show).post(direct::open))
        .at("/dm/:username/close", post(direct::close))
        .at(
            "/rooms/:code/settings",
            get(settings::show).post(settings::update),
        )
        .at("/rooms/:code/settings/rotate", post(settings::rotate))
        .at(
            "/rooms/:code/members/:username/remove",
            post(settings::remove),
        )
        .at("/rooms/:code/owner", post(settings::hand_over))
        .at("/search", get(search::search))
        .at("/healthz", get(ops::healthz))
        .at("/readyz", get(ops::readyz))
        .at("/metrics", get(ops::metrics))
        .at("/files/:token/:name", get(files::serve))
        .at("/assets/*name", get(assets::serve))
        .nest("/api", crate::api::routes())
}

/// A complete HTML response.
pub fn respond(status: StatusCode, markup: maud::Markup) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(markup.into_string())
}

/// A page or fragment saying why something was refused (the form again with the reason, the
/// composer with its text, the error page): at the refusal's status, with its `Retry-After`.
/// Every HTML answer to a refusal goes through here.
pub fn refused(refusal: &Refusal, markup: maud::Markup) -> Response {
    let mut response = respond(refusal.status(), markup);
    if let Some(secs) = refusal.retry_after_secs() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// `303 See Other` to `location` (after a successful form post), or for htmx an `HX-Redirect`
/// (a plain redirect would be followed by the XHR and swapped into the target).
pub fn see_other(location: &str, htmx: bool) -> Response {
    if htmx {
        Response::builder()
            .status(StatusCode::OK)
            .header("HX-Redirect", location)
            .finish()
    } else {
        Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(header::LOCATION, location)
            .finish()
    }
}

/// The header's account links for a signed-in person.
pub fn member_nav<'a>(user: &'a CurrentUser, csrf: &'a str) -> Nav<'a> {
    Nav::Member {
        username: &user.username,
        user_id: user.id,
        csrf,
    }
}
