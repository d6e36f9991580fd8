//! Error responses in the shape the Qualys FIM API uses:
//! `{"errorCode":"400","message":"..."}`.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An error response: HTTP status and the message clients receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Token is expired or invalid")
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, message)
    }

    /// Returns the JSON body of the response.
    pub fn body(&self) -> String {
        serde_json::json!({
            "errorCode": self.status.to_string(),
            "message": self.message,
        })
        .to_string()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            self.body(),
        )
            .into_response()
    }
}
