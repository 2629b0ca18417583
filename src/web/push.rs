//! Web Push routes: the service worker (`GET /sw.js`, its scope the whole site), a browser's
//! subscription (`POST /push/subscriptions`, `POST /push/subscriptions/delete`), and "do not
//! disturb until" on the profile (`POST /profile/dnd`). The subscription routes are posted by
//! `js/notify.js` (form fields `endpoint`, `p256dh`, `auth`, with the CSRF header or field);
//! they answer 204, or a JSON `{"error": …}` at the refusal's status.

use poem::{
    Response, handler,
    http::{StatusCode, header},
};
use serde::Deserialize;

use super::{UserForm, refused, see_other};
use crate::{
    auth::{AppData, CurrentUser},
    error::AppError,
    push::{MAX_SUBSCRIPTIONS, check_keys},
    refusal::Refusal,
    store::now_ms,
    views::{push::DND_CHOICES, tokens::TokenPanel},
};

/// `GET /sw.js`: the service worker (`assets/sw.js`), served from the root so its scope is
/// the whole site (`Service-Worker-Allowed: /` says so too). Revalidated on every check, so
/// a new version reaches browsers at once.
#[handler]
pub fn service_worker() -> Response {
    let Some((file, hash)) = crate::assets::find("sw.js") else {
        return StatusCode::NOT_FOUND.into();
    };
    Response::builder()
        .header(header::CONTENT_TYPE, file.content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::ETAG, format!("\"{hash}\""))
        .header("Service-Worker-Allowed", "/")
        .body(file.bytes)
}

/// A subscription as `js/notify.js` posts it.
#[derive(Deserialize)]
pub struct SubscriptionForm {
    #[serde(default)]
    endpoint: String,
    #[serde(default)]
    p256dh: String,
    #[serde(default)]
    auth: String,
}

/// A refusal as the script reads it: its status, and its sentence as JSON.
fn json_refusal(refusal: Refusal) -> Response {
    let body = serde_json::json!({ "error": refusal.sentence() }).to_string();
    Response::builder()
        .status(refusal.status())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(body)
}

/// `POST /push/subscriptions`: this browser's push subscription, kept for its session (and
/// deleted with it). 204; 422 for an endpoint or keys natter cannot use, or past
/// `MAX_SUBSCRIPTIONS` browsers.
#[handler]
pub async fn subscribe(
    state: AppData<'_>,
    UserForm { user, form, .. }: UserForm<SubscriptionForm>,
) -> poem::Result<Response> {
    let endpoint = form.endpoint.trim();
    if !state.push.endpoint_allowed(endpoint) {
        return Ok(json_refusal(Refusal::Invalid(
            "The subscription's endpoint must be an https:// URL of a push service.",
        )));
    }
    let (p256dh, auth) = match check_keys(&form.p256dh, &form.auth) {
        Ok(keys) => keys,
        Err(why) => return Ok(json_refusal(Refusal::Invalid(why))),
    };
    let saved = state
        .store
        .save_push_subscription(
            &user.session.token_hash,
            user.id,
            endpoint,
            &p256dh,
            &auth,
            now_ms(),
            MAX_SUBSCRIPTIONS,
        )
        .await
        .map_err(AppError::from)?;
    if !saved {
        return Ok(json_refusal(Refusal::Invalid(
            "You have notifications on in too many browsers: turn them off in one first.",
        )));
    }
    state.push.subscribed();
    tracing::info!(user_id = user.id, "push subscription saved");
    Ok(StatusCode::NO_CONTENT.into())
}

/// `POST /push/subscriptions/delete`: forget this browser's subscription (`endpoint`). 204
/// whether or not there was one.
#[handler]
pub async fn unsubscribe(
    state: AppData<'_>,
    UserForm { user, form, .. }: UserForm<SubscriptionForm>,
) -> poem::Result<Response> {
    state
        .store
        .delete_push_subscription(user.id, form.endpoint.trim())
        .await
        .map_err(AppError::from)?;
    Ok(StatusCode::NO_CONTENT.into())
}

/// The "do not disturb" form.
#[derive(Deserialize)]
pub struct DndForm {
    #[serde(default)]
    dnd: String,
}

/// `GET /profile/dnd`: until when "do not disturb" is on, as JSON (`{"until": ms}`, `null`
/// when off), for `js/notify.js`'s desktop notifications.
#[handler]
pub async fn dnd_state(state: AppData<'_>, user: CurrentUser) -> poem::Result<Response> {
    let now = now_ms();
    let until = state
        .store
        .dnd_until(user.id)
        .await
        .map_err(AppError::from)?
        .filter(|t| *t > now);
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(serde_json::json!({ "until": until }).to_string()))
}

/// `POST /profile/dnd`: do not disturb for a while (or no longer); 303 back to the profile, or
/// the profile again (422) with why the choice was refused.
#[handler]
pub async fn set_dnd(
    state: AppData<'_>,
    UserForm {
        user, form, htmx, ..
    }: UserForm<DndForm>,
) -> poem::Result<Response> {
    let Some((_, _, minutes)) = DND_CHOICES.iter().find(|(v, _, _)| *v == form.dnd) else {
        let refusal = Refusal::Invalid("Choose off or one of the durations listed.");
        let page = super::account::profile_page_with(
            &state,
            &user,
            TokenPanel::default(),
            None,
            Some("Choose off or one of the durations listed."),
        )
        .await?;
        return Ok(refused(&refusal, page));
    };
    let until = (*minutes > 0).then(|| now_ms() + minutes * 60_000);
    state
        .store
        .set_dnd_until(user.id, until)
        .await
        .map_err(AppError::from)?;
    Ok(see_other("/profile#notifications", htmx))
}
