//! The runtime's own answers: when it refuses a request, and when the guest gave none.
//!
//! These are the HTTP protocol of a guest call's [`Outcome`](omnia::invoke::Outcome): the
//! status code for each way a call can end without a response (the table in [`super`]). A
//! guest that failed while reading a bad body failed because of the client, and is answered
//! (and recorded) as the client's error.

use std::time::Duration;

use bytes::Bytes;
use hyper::{Response, StatusCode};
use omnia::invoke::{Call, Failure, Outcome};
use omnia::telemetry::{LogLimit, suppressed_note};

use super::BAD_REQUESTS;
use super::request_body::BodyFault;
use super::response_body::GuestBody;

static CLIENT_ERROR_LOG: LogLimit = LogLimit::new(10, Duration::from_secs(10));
static GUEST_ANSWER_LOG: LogLimit = LogLimit::new(10, Duration::from_secs(10));

/// Why a guest gave no response.
#[derive(Debug)]
pub(super) enum NoAnswer {
    /// The call failed (trapped, timed out, ran out of memory budget).
    Failed(Failure),
    /// It returned without setting a response (0.2).
    NoResponse,
    /// It set (0.2) or returned (0.3) an error code instead of a response.
    ErrorCode(String),
}

impl NoAnswer {
    /// What the guest did, as an outcome of its call (its error code is its own error).
    fn outcome(&self) -> Outcome<(), &str> {
        match self {
            Self::Failed(failure) => Outcome::Failed(failure.clone()),
            Self::NoResponse => Outcome::GuestError("it returned without setting a response"),
            Self::ErrorCode(code) => Outcome::GuestError(code),
        }
    }
}

/// Records a `call` that gave no answer: against the client when its body was at `fault`,
/// else as what the guest did.
pub(super) fn finish_unanswered(call: Call, no_answer: &NoAnswer, fault: Option<&BodyFault>) {
    if fault.is_some_and(|fault| fault.is_clients()) {
        call.finish_as_client_error();
    } else {
        call.finish(&no_answer.outcome());
    }
}

/// The answer to a request whose guest gave none (`what`: its method and path, for the log).
pub(super) fn unanswered(
    no_answer: NoAnswer,
    fault: Option<&BodyFault>,
    max_body: usize,
    what: &str,
) -> Response<GuestBody> {
    match fault {
        Some(BodyFault::TooLarge) => {
            return client_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body larger than {max_body} bytes (OMNIA_HTTP_MAX_BODY)\n"),
            );
        }
        Some(BodyFault::Malformed) => {
            return client_error(StatusCode::BAD_REQUEST, "malformed request body\n");
        }
        Some(BodyFault::TooSlow) => {
            return client_error(
                StatusCode::REQUEST_TIMEOUT,
                "request body sent too slowly (OMNIA_HTTP_BODY_TIMEOUT, \
                 OMNIA_HTTP_BODY_MIN_RATE)\n",
            );
        }
        Some(BodyFault::CutForRoom) => {
            return client_error(
                StatusCode::REQUEST_TIMEOUT,
                "request body not arriving while the server is full: cut to serve \
                 another request\n",
            );
        }
        Some(BodyFault::ClientGone) | None => {}
    }
    match no_answer {
        NoAnswer::Failed(Failure::Timeout(_)) => {
            plain(StatusCode::GATEWAY_TIMEOUT, "guest timed out\n")
        }
        NoAnswer::Failed(Failure::OutOfBudget) => {
            unavailable("server busy: out of guest memory (OMNIA_MEMORY_BUDGET)\n")
        }
        NoAnswer::Failed(Failure::Trap(_) | Failure::Cancelled) => {
            plain(StatusCode::INTERNAL_SERVER_ERROR, "guest failed\n")
        }
        NoAnswer::NoResponse => {
            log_guest_answer(what, "it returned without setting a response");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "guest sent no response\n",
            )
        }
        NoAnswer::ErrorCode(code) => {
            log_guest_answer(what, &format!("it answered with the error {code}"));
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("guest answered with an error: {code}\n"),
            )
        }
    }
}

fn log_guest_answer(what: &str, answer: &str) {
    if let Some(suppressed) = GUEST_ANSWER_LOG.check() {
        tracing::error!(
            "http: {what}: guest failed: {answer}{}",
            suppressed_note(suppressed)
        );
    }
}

/// A plain-text response made by the runtime itself.
pub(super) fn plain(status: StatusCode, body: &str) -> Response<GuestBody> {
    let mut response = Response::new(GuestBody::runtime(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// 503 with `Retry-After`, for a runtime that is full right now.
pub(super) fn unavailable(body: &str) -> Response<GuestBody> {
    let mut response = plain(StatusCode::SERVICE_UNAVAILABLE, body);
    response.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("1"),
    );
    response
}

/// A 4xx answer to a request the client got wrong (logged at a limited rate, counted).
pub(super) fn client_error(status: StatusCode, body: &str) -> Response<GuestBody> {
    BAD_REQUESTS.inc();
    if let Some(suppressed) = CLIENT_ERROR_LOG.check() {
        tracing::info!(
            "http: answering {status}: {}{}",
            body.trim_end(),
            suppressed_note(suppressed)
        );
    }
    plain(status, body)
}
