//! Content codings: responses compressed (gzip or br) as `Accept-Encoding` asks, and request bodies sent
//! with `Content-Encoding: gzip` or `br` decompressed before the handlers read them, so the body limit
//! (`max_body_bytes`) counts the decompressed bytes and a small body that expands past it is a 413.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower::layer::util::{Identity, Stack};
use tower::util::MapRequestLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::decompression::{DecompressionBody, RequestDecompressionLayer};

use crate::error::ApiError;

/// The content codings a request body may have (`identity` is none at all).
const REQUEST_CODINGS: [&str; 3] = ["gzip", "br", "identity"];

/// The predicate deciding which responses are compressed: those of at least `min_bytes` (by their
/// `Content-Length`, or any streamed one), except images and event streams.
pub(crate) type CompressPredicate =
    tower_http::compression::predicate::And<SizeAbove, NotForContentType>;

/// gzip or br, as the client prefers by `Accept-Encoding` (its q-values), for responses of at least
/// `min_bytes`.
pub(crate) fn compression(min_bytes: u16) -> CompressionLayer<CompressPredicate> {
    // SizeAbove keeps responses strictly larger than its bound.
    let predicate = SizeAbove::new(min_bytes.saturating_sub(1)).and(NotForContentType::IMAGES);
    CompressionLayer::new().no_deflate().no_zstd().compress_when(predicate)
}

/// The decompressed body handed on as an axum [`Body`].
type ToAxumBody = MapRequestLayer<fn(Request<DecompressionBody<Body>>) -> Request>;

/// The decoding of gzip and br request bodies (any other coding never reaches it: [`refuse_unknown`]),
/// handing the handlers an axum [`Body`].
pub(crate) fn decompression()
-> ServiceBuilder<Stack<ToAxumBody, Stack<RequestDecompressionLayer, Identity>>> {
    ServiceBuilder::new()
        .layer(RequestDecompressionLayer::new().no_deflate().no_zstd())
        .map_request(|request: Request<DecompressionBody<Body>>| request.map(Body::new))
}

/// Refuses, with 415 and an OperationOutcome, a request body in a content coding this server cannot
/// decode (RFC 9110 §8.4.1: an origin server "MAY respond with a status code of 415 (Unsupported Media
/// Type) if a representation in the request message has a content coding that is not acceptable"), and a
/// body with more than one coding applied; writes the one accepted coding in lower case, as the
/// decompression layer compares it.
pub(crate) async fn refuse_unknown(mut request: Request, next: Next) -> Response {
    let codings: Vec<String> = request
        .headers()
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("\u{fffd}").split(','))
        .map(|coding| coding.trim().to_ascii_lowercase())
        .filter(|coding| !coding.is_empty())
        .collect();
    if let Some(coding) = codings.iter().find(|coding| !REQUEST_CODINGS.contains(&coding.as_str()))
    {
        return ApiError::UnsupportedMediaType(format!(
            "Content-Encoding '{coding}' is not supported: send the body as it is, or in gzip or br"
        ))
        .into_response();
    }
    match codings.as_slice() {
        [] => {}
        [coding] => {
            let coding =
                HeaderValue::from_str(coding).unwrap_or(HeaderValue::from_static("identity"));
            request.headers_mut().insert(header::CONTENT_ENCODING, coding);
        }
        [..] => {
            return ApiError::UnsupportedMediaType(format!(
                "Content-Encoding '{}' applies several codings: send the body in one (gzip or br)",
                codings.join(", ")
            ))
            .into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::routing::post;
    use tower::ServiceExt;

    use super::*;

    async fn status_of(codings: &[&str]) -> (u16, Option<String>) {
        let app = axum::Router::new()
            .route(
                "/",
                post(|request: Request| async move {
                    request
                        .headers()
                        .get(header::CONTENT_ENCODING)
                        .map(|value| value.to_str().unwrap().to_owned())
                        .unwrap_or_default()
                }),
            )
            .layer(axum::middleware::from_fn(refuse_unknown));
        let mut request = Request::post("/");
        for coding in codings {
            request = request.header(header::CONTENT_ENCODING, *coding);
        }
        let response = app.oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        (status, Some(String::from_utf8(body.to_vec()).unwrap()).filter(|_| status == 200))
    }

    #[tokio::test]
    async fn codings() {
        assert_eq!(status_of(&[]).await, (200, Some(String::new())));
        assert_eq!(status_of(&[" GZip "]).await, (200, Some("gzip".into())));
        assert_eq!(status_of(&["br"]).await, (200, Some("br".into())));
        assert_eq!(status_of(&["identity"]).await, (200, Some("identity".into())));
        assert_eq!(status_of(&["deflate"]).await.0, 415);
        assert_eq!(status_of(&["gzip, br"]).await.0, 415);
        assert_eq!(status_of(&["gzip", "gzip"]).await.0, 415);
    }
}
