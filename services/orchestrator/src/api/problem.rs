//! RFC 9457 problem details: every API error is `application/problem+json` with a
//! stable `type`, never an internal message.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::admin::AdminError;
use crate::domain::Invalid;
use crate::enroll::EnrollError;

/// A problem document.
#[derive(Debug, Serialize)]
pub struct Problem {
    /// Stable identifier of the problem kind.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind.
    pub title: &'static str,
    /// HTTP status.
    pub status: u16,
    /// What happened this time.
    pub detail: String,
    /// Field-level validation failures.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<Invalid>,
}

impl Serialize for Invalid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Invalid", 2)?;
        st.serialize_field("field", &self.field)?;
        st.serialize_field("rule", &self.rule)?;
        st.end()
    }
}

impl Problem {
    /// A problem of kind `slug` (the `type` becomes `urn:pqescape:problem:<slug>`).
    pub fn new(
        status: StatusCode,
        slug: &str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind: format!("urn:pqescape:problem:{slug}"),
            title,
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let unauthenticated = status == StatusCode::UNAUTHORIZED;
        let mut response = (status, Json(self)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if unauthenticated {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"pqescape\""),
            );
        }
        response
    }
}

impl From<AdminError> for Problem {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Unauthenticated => Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Unauthenticated",
                e.to_string(),
            ),
            AdminError::Forbidden { .. } => {
                Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", e.to_string())
            }
            AdminError::Invalid(errors) => Problem {
                errors,
                ..Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid",
                    "Invalid request",
                    "see errors",
                )
            },
            AdminError::NotFound(_) => {
                Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", e.to_string())
            }
            AdminError::Conflict(_) | AdminError::Exists(_) => {
                Problem::new(StatusCode::CONFLICT, "conflict", "Conflict", e.to_string())
            }
            AdminError::Internal(detail) => {
                tracing::error!(error = %detail, "request failed");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    "the request could not be completed",
                )
            }
        }
    }
}

impl From<Invalid> for Problem {
    fn from(i: Invalid) -> Self {
        AdminError::from(i).into()
    }
}

impl From<EnrollError> for Problem {
    fn from(e: EnrollError) -> Self {
        metrics::counter!("pqescape_enrollment_failures_total", "kind" => e.kind()).increment(1);
        match e {
            EnrollError::Protocol(p) => {
                tracing::warn!(error.kind = p.kind(), "enrollment message refused");
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "enrollment-refused",
                    "Enrollment refused",
                    e.to_string(),
                )
            }
            EnrollError::Token => Problem::new(
                StatusCode::FORBIDDEN,
                "enrollment-token",
                "Enrollment refused",
                e.to_string(),
            ),
            EnrollError::Internal(detail) => AdminError::Internal(detail).into(),
        }
    }
}

/// JSON body extractor whose rejections are problems (400, 413, 415), not plain text.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_problem(&rejection)),
        }
    }
}

fn json_problem(rejection: &JsonRejection) -> Problem {
    let status = rejection.status();
    let (slug, title) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ("too-large", "Request body too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ("unsupported-media-type", "Expected application/json")
        }
        StatusCode::UNPROCESSABLE_ENTITY => ("invalid", "Invalid request"),
        _ => ("malformed", "Malformed request body"),
    };
    Problem::new(status, slug, title, rejection.body_text())
}

/// Query-string extractor whose rejections are problems.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Problem> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(rejection) => Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-query",
                "Invalid query string",
                rejection.body_text(),
            )),
        }
    }
}
