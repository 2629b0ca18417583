//! The web layer's one error type. Each variant knows its status; `web::middleware` turns any
//! error that escapes a handler into a page (or an htmx fragment) in the site layout, with the
//! request id people can quote. Internal details go to the log, never to the page.

use std::time::Duration;

use poem::{Response, error::ResponseError, http::StatusCode};
use thiserror::Error;

use crate::{actions::Refusal, store::StoreError, views::FormEcho};

#[derive(Debug, Error)]
pub enum AppError {
    /// Not signed in: go to the landing page, then come back to `next`.
    #[error("sign-in required")]
    SignInRequired { next: Option<String> },
    /// Signed in but no username chosen yet.
    #[error("username required")]
    UsernameRequired,
    #[error("not found")]
    NotFound,
    /// A CSRF token or Origin check failed.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("request body too large")]
    TooLarge,
    #[error("rate limited")]
    RateLimited { retry_after: Duration },
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// Input that broke a rule, where no form can be re-rendered.
    #[error("invalid: {0}")]
    Invalid(&'static str),
    /// The database failed (already logged).
    #[error("service unavailable")]
    Unavailable,
    /// The database failed before a posted form could be handled: the page gives what was
    /// typed back, ready to send again.
    #[error("service unavailable (form kept)")]
    UnavailableKeeping(FormEcho),
    /// The database is unreachable or failing.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ResponseError for AppError {
    fn status(&self) -> StatusCode {
        match self {
            AppError::SignInRequired { .. } | AppError::UsernameRequired => StatusCode::SEE_OTHER,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Store(_) | AppError::Unavailable | AppError::UnavailableKeeping(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A bare response; the error middleware replaces it with the full page.
    fn as_response(&self) -> Response {
        Response::builder().status(self.status()).finish()
    }
}

/// What an error page says.
pub struct ErrorText {
    pub title: &'static str,
    pub message: String,
}

/// The words for an error status, for people.
pub fn error_text(status: StatusCode, error: Option<&AppError>) -> ErrorText {
    let (title, message): (&'static str, String) = match (status.as_u16(), error) {
        (403, Some(AppError::Forbidden(why))) => ("That request was refused", (*why).to_string()),
        (403, _) => ("That request was refused", "The form may have expired. Go back, reload the page and try again.".into()),
        (404, _) => ("Not found", "There is nothing here, or it is not yours to see. If someone gave you a room link, check its code.".into()),
        (405, _) => ("Not allowed", "This address does not accept that kind of request.".into()),
        (413, _) => ("Too large", "That was more than natter accepts in one go. Shorten it and try again.".into()),
        (422, Some(AppError::Invalid(why))) => ("Please check what you entered", (*why).to_string()),
        (422, _) => ("Please check what you entered", "Something in the form was not valid.".into()),
        (429, Some(AppError::RateLimited { retry_after })) => (
            "Slow down a little",
            format!("You have done that a lot just now. Try again in {}.", crate::limits::wait_in_words(*retry_after)),
        ),
        (429, _) => ("Slow down a little", "Too many requests. Wait a moment and try again.".into()),
        (400, Some(AppError::BadRequest(why))) => ("That request did not make sense", (*why).to_string()),
        (400, _) => ("That request did not make sense", "The address or form was malformed.".into()),
        (503, _) => ("natter is having trouble", "natter cannot reach its database right now. Please try again in a minute.".into()),
        _ => ("Something went wrong", "An unexpected error happened on our side. Please try again.".into()),
    };
    ErrorText { title, message }
}

impl From<Refusal> for AppError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Invalid(why) => AppError::Invalid(why),
            Refusal::TooFast { retry_after, .. } => AppError::RateLimited { retry_after },
            Refusal::NotFound => AppError::NotFound,
            Refusal::Unavailable => AppError::Unavailable,
        }
    }
}
