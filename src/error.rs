//! The web layer's one error type: a `Refusal`, and what was typed into the form that was
//! refused, when natter can give it back. `web::middleware` turns any error that escapes a
//! handler into a page (or an htmx redirect) in the site layout, with the request id people
//! can quote. Internal details go to the log, never to the page.

use poem::{Response, error::ResponseError, http::StatusCode};

use crate::{refusal::Refusal, store::StoreError, views::FormEcho};

/// A refused web request.
#[derive(Debug, thiserror::Error)]
#[error("{refusal}")]
pub struct AppError {
    /// Why.
    pub refusal: Refusal,
    /// The posted form, given back on the error page when nothing could be checked or saved
    /// (the database was down), ready to send again.
    pub typed: Option<FormEcho>,
}

impl AppError {
    /// Not found: no such thing, or not the person's.
    pub const NOT_FOUND: AppError = AppError {
        refusal: Refusal::NotFound,
        typed: None,
    };
}

impl From<Refusal> for AppError {
    fn from(refusal: Refusal) -> Self {
        AppError {
            refusal,
            typed: None,
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        Refusal::from(e).into()
    }
}

impl ResponseError for AppError {
    fn status(&self) -> StatusCode {
        self.refusal.status()
    }

    /// A bare response; the error middleware replaces it with the full page.
    fn as_response(&self) -> Response {
        Response::builder().status(self.status()).finish()
    }
}
