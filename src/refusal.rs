//! Why natter says no: the one refusal model.
//!
//! Every refusal knows its HTTP status, its `Retry-After` and its sentence. `actions` refuse
//! with these, whichever way people ask; the web layer turns one into a page or an htmx
//! fragment in one place (`web::refused`, and the error page in `web::middleware`), the API
//! into a problem document in one place (`From<Refusal> for api::problem::ApiError`).

use std::{borrow::Cow, time::Duration};

use poem::http::StatusCode;

use crate::limits::{Limiter, retry_after_secs, wait_in_words};

/// A rate limit, by what it limits: the sentence says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Posts per person.
    Posts,
    /// Rooms created per person.
    Rooms,
    /// Wrong room codes per person.
    JoinFails,
    /// Joins and leaves per person.
    Membership,
    /// Sign-in attempts per client address.
    SignIns,
    /// Read-mark writes per person and room (`actions::mark_read`).
    Reads,
    /// Changes to a room's settings per person (`actions::settings`).
    Manage,
    /// Searches per person.
    Searches,
    /// Exports of one's data per person (`web::account_care::EXPORTS`).
    Exports,
}

impl Budget {
    /// Spends one unit of `key`'s budget in `limiter` (the one this budget names), or refuses
    /// with how long to wait.
    pub fn spend<K: Eq + std::hash::Hash + Clone>(
        self,
        limiter: &Limiter<K>,
        key: &K,
    ) -> Result<(), Refusal> {
        limiter.check(key).map_err(|retry_after| Refusal::TooFast {
            retry_after,
            budget: self,
        })
    }
}

/// Why a request was not done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not signed in: go to the landing page, then come back to `next` (303).
    #[error("sign-in required")]
    SignInRequired {
        /// Where to come back to after signing in (a local path).
        next: Option<String>,
    },
    /// Signed in, but no username chosen yet (303 to `/username`).
    #[error("username required")]
    UsernameRequired,
    /// The resource lives at another URL: a room code spelled another way answers 308 to
    /// its canonical spelling.
    #[error("moved to {location}")]
    Moved {
        /// The canonical URL (a path and query on natter).
        location: String,
    },
    /// The request itself is malformed (400); the text says how.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// A CSRF token or Origin check failed (403); the text says which.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// A member asked for what only the room's owner may do (403); the text says so.
    #[error("not the owner: {0}")]
    NotOwner(&'static str),
    /// No such thing, or not the person's (404): a room someone is not a member of does not
    /// exist for them.
    #[error("not found")]
    NotFound,
    /// The route exists, not with this method (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request body is larger than natter accepts (413).
    #[error("request body too large")]
    TooLarge,
    /// A file is larger than natter takes (413); the text of its message comes back.
    #[error("file too large")]
    FileTooLarge {
        /// The largest file, in bytes.
        max: u64,
    },
    /// More files than one message carries (413).
    #[error("too many files")]
    TooManyFiles {
        /// The most files.
        max: usize,
    },
    /// The room's files have used its quota (413).
    #[error("room quota used")]
    RoomFull {
        /// The room's quota, in bytes.
        quota: u64,
    },
    /// The request body did not arrive in time (408).
    #[error("request body too slow")]
    TooSlow,
    /// The thing is not in a state that allows this (409): editing a deleted message.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The input broke a rule (422); the text says which.
    #[error("invalid: {0}")]
    Invalid(&'static str),
    /// Over a rate limit (429, `Retry-After`).
    #[error("rate limited ({budget:?})")]
    TooFast {
        /// How long until the budget allows one more.
        retry_after: Duration,
        /// Which budget ran out.
        budget: Budget,
    },
    /// The database failed; nothing was done (503, `Retry-After: 5`).
    #[error("service unavailable")]
    Unavailable,
    /// A bug (500). Details are in the log, never on the page.
    #[error("internal error")]
    Internal,
}

/// How long a client should wait after a 503 before trying again.
const UNAVAILABLE_RETRY_SECS: u64 = 5;

impl Refusal {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::SignInRequired { .. } | Refusal::UsernameRequired => StatusCode::SEE_OTHER,
            Refusal::Moved { .. } => StatusCode::PERMANENT_REDIRECT,
            Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
            Refusal::Forbidden(_) | Refusal::NotOwner(_) => StatusCode::FORBIDDEN,
            Refusal::NotFound => StatusCode::NOT_FOUND,
            Refusal::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Refusal::TooLarge
            | Refusal::FileTooLarge { .. }
            | Refusal::TooManyFiles { .. }
            | Refusal::RoomFull { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::TooSlow => StatusCode::REQUEST_TIMEOUT,
            Refusal::Conflict(_) => StatusCode::CONFLICT,
            Refusal::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Refusal::TooFast { .. } => StatusCode::TOO_MANY_REQUESTS,
            Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Seconds for `Retry-After`, when trying again later can help.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Refusal::TooFast { retry_after, .. } => Some(retry_after_secs(*retry_after)),
            Refusal::Unavailable => Some(UNAVAILABLE_RETRY_SECS),
            _ => None,
        }
    }

    /// The refusal behind a status poem answered by itself (no such route, wrong method, a
    /// body that could not be read).
    pub fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => Refusal::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => Refusal::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => Refusal::TooLarge,
            StatusCode::REQUEST_TIMEOUT => Refusal::TooSlow,
            StatusCode::SERVICE_UNAVAILABLE => Refusal::Unavailable,
            StatusCode::FORBIDDEN => Refusal::Forbidden(
                "The form may have expired. Go back, reload the page and try again.",
            ),
            StatusCode::UNPROCESSABLE_ENTITY => {
                Refusal::Invalid("Something in the form was not valid.")
            }
            s if s.is_client_error() => Refusal::BadRequest("The address or form was malformed."),
            _ => Refusal::Internal,
        }
    }

    /// The heading of the error page.
    pub fn title(&self) -> &'static str {
        match self {
            Refusal::SignInRequired { .. } | Refusal::UsernameRequired => "Sign in first",
            Refusal::Moved { .. } => "Moved",
            Refusal::BadRequest(_) => "That request did not make sense",
            Refusal::Forbidden(_) => "That request was refused",
            Refusal::NotOwner(_) => "Only the room's owner can do that",
            Refusal::NotFound => "Not found",
            Refusal::MethodNotAllowed => "Not allowed",
            Refusal::TooLarge | Refusal::FileTooLarge { .. } | Refusal::TooManyFiles { .. } => {
                "Too large"
            }
            Refusal::RoomFull { .. } => "No room for more files",
            Refusal::TooSlow => "That took too long",
            Refusal::Conflict(_) => "That cannot be done any more",
            Refusal::Invalid(_) => "Please check what you entered",
            Refusal::TooFast { .. } => "Slow down a little",
            Refusal::Unavailable => "natter is having trouble",
            Refusal::Internal => "Something went wrong",
        }
    }

    /// What went wrong and what to do, for people: beside the form field it concerns, and as
    /// an API problem's `detail`.
    pub fn sentence(&self) -> Cow<'static, str> {
        match self {
            Refusal::NotFound => "There is no such room, or you are not a member.".into(),
            Refusal::Unavailable => {
                "natter could not save this just now (database unavailable). Try again in a moment."
                    .into()
            }
            other => other.explanation(),
        }
    }

    /// What the error page says under its title. It differs from `sentence` where the page
    /// speaks of the whole request (any address can be not found; a database that is down
    /// fails more than saving).
    pub fn explanation(&self) -> Cow<'static, str> {
        let wait = |w: &Duration| wait_in_words(*w);
        match self {
            Refusal::BadRequest(why)
            | Refusal::Forbidden(why)
            | Refusal::NotOwner(why)
            | Refusal::Conflict(why)
            | Refusal::Invalid(why) => (*why).into(),
            Refusal::NotFound => "There is nothing here, or it is not yours to see. If someone \
                                  gave you a room link, check its code."
                .into(),
            Refusal::MethodNotAllowed => {
                "This address does not accept that kind of request.".into()
            }
            Refusal::TooLarge => {
                "That was more than natter accepts in one go. Shorten it and try again.".into()
            }
            Refusal::FileTooLarge { max } => format!(
                "A file can be at most {}. Choose a smaller one (your text is still here).",
                crate::files::human_size(*max)
            )
            .into(),
            Refusal::TooManyFiles { max } => {
                format!("A message can carry at most {max} files. Send the rest in another one.")
                    .into()
            }
            Refusal::RoomFull { quota } => format!(
                "This room's files have used all of its {} of space. Delete some older files, \
                 or ask whoever runs natter for more.",
                crate::files::human_size(*quota)
            )
            .into(),
            Refusal::TooSlow => {
                "What you sent arrived too slowly, so natter stopped waiting. Check your \
                 connection and send it again."
                    .into()
            }
            Refusal::TooFast {
                retry_after,
                budget,
            } => match budget {
                Budget::Posts => format!(
                    "You are sending messages very fast. Wait {}, then send again.",
                    wait(retry_after)
                ),
                Budget::Rooms => format!(
                    "You have created many rooms recently. You can create another in {}.",
                    wait(retry_after)
                ),
                Budget::JoinFails => format!(
                    "Too many wrong codes. Wait {}, then try again.",
                    wait(retry_after)
                ),
                Budget::Membership => format!(
                    "You have joined and left rooms many times just now. Try again in {}.",
                    wait(retry_after)
                ),
                Budget::SignIns => format!(
                    "You have done that a lot just now. Try again in {}.",
                    wait(retry_after)
                ),
                Budget::Manage => format!(
                    "You have changed this room many times just now. Try again in {}.",
                    wait(retry_after)
                ),
                Budget::Reads => format!(
                    "Your place in this room was saved a moment ago. Try again in {}.",
                    wait(retry_after)
                ),
                Budget::Searches => format!(
                    "You have searched a lot just now. Wait {}, then search again.",
                    wait(retry_after)
                ),
                Budget::Exports => format!(
                    "You have downloaded your data several times recently. You can download it again in {}.",
                    wait(retry_after)
                ),
            }
            .into(),
            Refusal::Unavailable => {
                "natter cannot reach its database right now. Please try again in a minute.".into()
            }
            Refusal::SignInRequired { .. }
            | Refusal::UsernameRequired
            | Refusal::Moved { .. }
            | Refusal::Internal => {
                "An unexpected error happened on our side. Please try again.".into()
            }
        }
    }
}

impl From<crate::store::StoreError> for Refusal {
    /// A database failure, logged here (with the request's span) and shown to people only as
    /// "unavailable".
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!(error = %e, "database failure");
        Refusal::Unavailable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_knows_its_status_wait_and_words() {
        let too_fast = |budget| Refusal::TooFast {
            retry_after: Duration::from_millis(1500),
            budget,
        };
        assert_eq!(too_fast(Budget::Posts).status(), 429);
        assert_eq!(too_fast(Budget::Posts).retry_after_secs(), Some(2));
        assert_eq!(
            too_fast(Budget::Posts).sentence(),
            "You are sending messages very fast. Wait 2 seconds, then send again."
        );
        assert!(
            too_fast(Budget::Rooms)
                .sentence()
                .contains("created many rooms")
        );
        assert!(
            too_fast(Budget::JoinFails)
                .sentence()
                .contains("wrong codes")
        );
        assert!(
            too_fast(Budget::Membership)
                .sentence()
                .contains("joined and left")
        );
        assert!(
            too_fast(Budget::SignIns)
                .explanation()
                .contains("done that a lot")
        );
        assert_eq!(Refusal::Unavailable.status(), 503);
        assert_eq!(Refusal::Unavailable.retry_after_secs(), Some(5));
        assert_eq!(Refusal::NotFound.retry_after_secs(), None);
        assert_eq!(
            Refusal::Invalid("Say something.").sentence(),
            "Say something."
        );
        assert_eq!(Refusal::Invalid("Say something.").status(), 422);
        assert!(
            Refusal::Unavailable
                .explanation()
                .contains("cannot reach its database")
        );
        assert_eq!(
            Refusal::from_status(StatusCode::METHOD_NOT_ALLOWED).status(),
            405
        );
        assert_eq!(Refusal::from_status(StatusCode::IM_A_TEAPOT).status(), 400);
        assert_eq!(Refusal::TooSlow.status(), 408);
        assert_eq!(
            Refusal::from_status(StatusCode::REQUEST_TIMEOUT),
            Refusal::TooSlow
        );
        assert_eq!(Refusal::from_status(StatusCode::BAD_GATEWAY).status(), 500);
    }
}
