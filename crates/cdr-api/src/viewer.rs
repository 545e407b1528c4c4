//! `GET /`: the imaging record viewer, a small web app of hand-written HTML, CSS and JavaScript compiled into the
//! binary (`assets/viewer/`), with no build step and nothing fetched from elsewhere. Its script reads everything
//! through the FHIR API under `fhir/`, relative to the page, so it works behind any host or path prefix.
//!
//! Each asset is served with its content type, a strict Content-Security-Policy (scripts and styles from this
//! origin only, no inline script; frames only of `blob:` URLs, the report PDFs the script makes from
//! `presentedForm` data), `X-Content-Type-Options: nosniff`, and `Cache-Control: no-cache` with a weak ETag of
//! its content's hash, so a browser revalidates (304) and sees a new binary's assets at once.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// What every asset of the viewer may load: this origin's scripts, styles, images and API, and `blob:` frames.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; frame-src blob:; object-src 'none'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One file of the viewer, compiled in.
struct Asset {
    body: &'static str,
    content_type: &'static str,
    /// The FNV-1a hash of `body`, the ETag's opaque part: it changes with the content, and only a cache
    /// compares it.
    hash: u64,
}

impl Asset {
    const fn new(body: &'static str, content_type: &'static str) -> Asset {
        let bytes = body.as_bytes();
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let mut index = 0;
        while index < bytes.len() {
            hash ^= bytes[index] as u64;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
            index += 1;
        }
        Asset { body, content_type, hash }
    }
}

const PAGE: Asset =
    Asset::new(include_str!("../assets/viewer/index.html"), "text/html; charset=utf-8");
const SCRIPT: Asset =
    Asset::new(include_str!("../assets/viewer/viewer.js"), "text/javascript; charset=utf-8");
const STYLE: Asset =
    Asset::new(include_str!("../assets/viewer/viewer.css"), "text/css; charset=utf-8");

/// `GET /`: the page.
pub(crate) async fn page(headers: HeaderMap) -> Response {
    serve(&PAGE, &headers)
}

/// `GET /viewer.js`: the page's script.
pub(crate) async fn script(headers: HeaderMap) -> Response {
    serve(&SCRIPT, &headers)
}

/// `GET /viewer.css`: the page's style sheet.
pub(crate) async fn style(headers: HeaderMap) -> Response {
    serve(&STYLE, &headers)
}

/// The asset, or 304 when `If-None-Match` names its ETag (weak comparison, RFC 9110 §13.1.2).
fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let opaque = format!("\"{:016x}\"", asset.hash);
    let unchanged = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == opaque);
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY)),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::ETAG,
            HeaderValue::from_str(&format!("W/{opaque}"))
                .unwrap_or(HeaderValue::from_static("W/\"\"")),
        ),
    ];
    if unchanged {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (headers, asset.body).into_response()
}
