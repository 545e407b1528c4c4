//! `GET /docs`: the API docs page, one self-contained HTML file compiled into the binary
//! (`assets/docs.html`). Its script fetches `/openapi.json` and lists every path with its operations,
//! parameters and answers; nothing is downloaded at build or run time.

use axum::http::header;
use axum::response::IntoResponse;

const PAGE: &str = include_str!("../assets/docs.html");

pub(crate) async fn page() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE)
}
