//! The FHIR base URL of every link the server writes (`Location`, `fullUrl`, Bundle links,
//! CapabilityStatement `implementation.url`), and the checks that keep a client from choosing it.
//!
//! With a configured [`PublicBaseUrl`] the request has no say. Without one the base is
//! `{scheme}://{host}/fhir`, where the host is the request's `Host` (which must be a well-formed
//! `host[:port]`: no userinfo, no spaces, a port in 1–65535) and, when [`LinkConfig::allowed_hosts`] is not
//! empty, one of those hosts. The scheme is `http`, unless the peer is a trusted proxy
//! ([`LinkConfig::trusted_proxies`]): then `Forwarded` (RFC 7239) or, without it, `X-Forwarded-Proto` and
//! `X-Forwarded-Host` decide the scheme and host, by the last (nearest) value. A malformed `Host` is refused
//! with 400 in every configuration.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::ApiError;

/// The public FHIR base URL: an absolute `http` or `https` URL with a host, no userinfo, query or
/// fragment, kept without a trailing slash (e.g. `https://cdr.example.org/fhir`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicBaseUrl(String);

impl PublicBaseUrl {
    /// The URL, without a trailing slash.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PublicBaseUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<PublicBaseUrl, String> {
        let uri: Uri = text.parse().map_err(|error| format!("'{text}' is not a URL: {error}"))?;
        let scheme = uri.scheme_str().map(str::to_ascii_lowercase);
        if !matches!(scheme.as_deref(), Some("http" | "https")) {
            return Err(format!("'{text}' must be an absolute http:// or https:// URL"));
        }
        let authority =
            uri.authority().ok_or_else(|| format!("'{text}' has no host"))?.as_str().to_owned();
        let host = Host::parse(&authority).map_err(|error| format!("'{text}': {error}"))?;
        if text.contains('?') || text.contains('#') {
            return Err(format!("'{text}' must not have a query or a fragment"));
        }
        let path = uri.path().trim_end_matches('/');
        Ok(PublicBaseUrl(format!("{}://{host}{path}", scheme.unwrap_or_default())))
    }
}

impl fmt::Display for PublicBaseUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// A well-formed `host[:port]`: a DNS name or IPv4 address (letters, digits, `-`, `_`, in non-empty
/// dot-separated labels) or a bracketed IPv6 address, and an optional port in 1–65535. Names are
/// kept in lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    name: String,
    port: Option<u16>,
}

impl Host {
    /// Parses the text of a `Host` header (or an authority without userinfo).
    ///
    /// # Errors
    /// Why the text is not a `host[:port]`.
    pub fn parse(text: &str) -> Result<Host, String> {
        let (name, port) = if let Some(rest) = text.strip_prefix('[') {
            let (address, after) =
                rest.split_once(']').ok_or_else(|| format!("host '{text}' lacks its ']'"))?;
            address
                .parse::<Ipv6Addr>()
                .map_err(|_| format!("host '{text}' is not a bracketed IPv6 address"))?;
            let port = match after {
                "" => None,
                _ => Some(
                    after.strip_prefix(':').ok_or_else(|| format!("host '{text}' is malformed"))?,
                ),
            };
            (format!("[{}]", address.to_ascii_lowercase()), port)
        } else {
            let (name, port) = match text.split_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (text, None),
            };
            let well_formed = !name.is_empty()
                && name.len() <= 253
                && name.split('.').all(|label| {
                    !label.is_empty()
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                });
            if !well_formed {
                return Err(format!(
                    "host '{text}' is not a host name or address (with an optional :port)"
                ));
            }
            (name.to_ascii_lowercase(), port)
        };
        let port = match port {
            None => None,
            Some(digits) => {
                let valid = !digits.is_empty()
                    && digits.len() <= 5
                    && digits.bytes().all(|b| b.is_ascii_digit());
                match digits.parse::<u16>() {
                    Ok(port) if valid && port > 0 => Some(port),
                    _ => return Err(format!("host '{text}' has an invalid port")),
                }
            }
        };
        Ok(Host { name, port })
    }

    /// Whether this host is allowed by `entry`: the same name, and the same port when the entry names one.
    fn allowed_by(&self, entry: &Host) -> bool {
        self.name == entry.name && (entry.port.is_none() || entry.port == self.port)
    }
}

impl FromStr for Host {
    type Err = String;

    fn from_str(text: &str) -> Result<Host, String> {
        Host::parse(text)
    }
}

impl fmt::Display for Host {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(formatter, "{}:{port}", self.name),
            None => formatter.write_str(&self.name),
        }
    }
}

/// A block of IP addresses: `10.0.0.0/8`, `::1/128`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpCidr {
    network: IpAddr,
    prefix: u8,
}

impl IpCidr {
    /// Whether `address` is in the block (an IPv4-mapped IPv6 address counts as its IPv4 address).
    #[must_use]
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, address.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpCidr {
    type Err = String;

    fn from_str(text: &str) -> Result<IpCidr, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr =
            address.parse().map_err(|_| format!("'{text}' is not an IP address or CIDR block"))?;
        let network = network.to_canonical();
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(digits) => match digits.parse::<u8>() {
                Ok(prefix) if prefix <= width && prefix.to_string() == digits => prefix,
                _ => return Err(format!("'{text}' has an invalid prefix length (0–{width})")),
            },
        };
        Ok(IpCidr { network, prefix })
    }
}

impl fmt::Display for IpCidr {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.network, self.prefix)
    }
}

/// How the base URL of links is decided.
#[derive(Debug, Clone, Default)]
pub struct LinkConfig {
    /// The public FHIR base URL; when set, it is the base of every link and the request has no say.
    pub base_url: Option<PublicBaseUrl>,
    /// Without a base URL: the hosts a request may name (by `Host` or a trusted proxy's forwarded host);
    /// an entry without a port allows every port. Empty: any well-formed host.
    pub allowed_hosts: Vec<Host>,
    /// Peers whose `Forwarded` / `X-Forwarded-Proto` / `X-Forwarded-Host` headers are believed.
    pub trusted_proxies: Vec<IpCidr>,
}

/// The FHIR base URL of this request's links (see the module documentation).
#[derive(Debug, Clone)]
pub(crate) struct BaseUrl(pub(crate) String);

impl FromRequestParts<AppState> for BaseUrl {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<BaseUrl, ApiError> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
        resolve(&state.config.links, &parts.headers, &parts.uri, peer).map(BaseUrl)
    }
}

/// Refuses, with 400, every request whose `Host` is not a well-formed `host[:port]`, whatever the
/// configuration: such a Host is an attack or a broken client, never something to serve.
pub(crate) async fn check_host(request: Request, next: Next) -> Response {
    if let Err(error) = request_host(request.headers(), request.uri()) {
        return error.into_response();
    }
    next.run(request).await
}

/// The request's host: its `Host` header, else the authority of its URI (HTTP/2, absolute-form).
fn request_host(headers: &HeaderMap, uri: &Uri) -> Result<Option<Host>, ApiError> {
    match headers.get(header::HOST) {
        Some(value) => Ok(Some(host_header(value.to_str().ok(), "Host")?)),
        None => uri
            .authority()
            .map(|authority| host_header(Some(authority.as_str()), "Host"))
            .transpose(),
    }
}

/// The base URL for a request with these headers and URI from `peer`.
fn resolve(
    config: &LinkConfig,
    headers: &HeaderMap,
    uri: &Uri,
    peer: Option<IpAddr>,
) -> Result<String, ApiError> {
    let host = request_host(headers, uri)?;
    if let Some(base) = &config.base_url {
        return Ok(base.as_str().to_owned());
    }
    let trusted =
        peer.is_some_and(|peer| config.trusted_proxies.iter().any(|net| net.contains(peer)));
    let (mut scheme, mut host) = ("http", host);
    if trusted {
        let forwarded = forwarded(headers)?;
        if let Some(proto) = forwarded.proto {
            scheme = proto;
        }
        if forwarded.host.is_some() {
            host = forwarded.host;
        }
    }
    let host = host.ok_or_else(|| ApiError::BadRequest("the request has no Host header".into()))?;
    if !config.allowed_hosts.is_empty()
        && !config.allowed_hosts.iter().any(|entry| host.allowed_by(entry))
    {
        return Err(ApiError::BadRequest(format!("host '{host}' is not served here")));
    }
    Ok(format!("{scheme}://{host}/fhir"))
}

fn host_header(text: Option<&str>, header: &str) -> Result<Host, ApiError> {
    let text = text.ok_or_else(|| ApiError::BadRequest(format!("{header} is not ASCII")))?;
    Host::parse(text.trim())
        .map_err(|error| ApiError::BadRequest(format!("invalid {header}: {error}")))
}

/// What a trusted proxy says about the client's request.
#[derive(Debug, Default)]
struct Forwarded {
    proto: Option<&'static str>,
    host: Option<Host>,
}

/// The scheme and host a trusted proxy forwarded: from the last element of `Forwarded` when present,
/// else from the last values of `X-Forwarded-Proto` and `X-Forwarded-Host`.
fn forwarded(headers: &HeaderMap) -> Result<Forwarded, ApiError> {
    let mut result = Forwarded::default();
    if let Some(element) = last_value(headers, "forwarded")? {
        for pair in element.split(';') {
            let Some((name, value)) = pair.split_once('=') else {
                return Err(ApiError::BadRequest(format!("Forwarded '{element}' is malformed")));
            };
            let value = value.trim().trim_matches('"');
            match name.trim().to_ascii_lowercase().as_str() {
                "proto" => result.proto = Some(scheme(value, "Forwarded proto")?),
                "host" => result.host = Some(host_header(Some(value), "Forwarded host")?),
                _ => {}
            }
        }
        return Ok(result);
    }
    if let Some(proto) = last_value(headers, "x-forwarded-proto")? {
        result.proto = Some(scheme(proto, "X-Forwarded-Proto")?);
    }
    if let Some(host) = last_value(headers, "x-forwarded-host")? {
        result.host = Some(host_header(Some(host), "X-Forwarded-Host")?);
    }
    Ok(result)
}

/// The last comma-separated value of a header over all its lines: the one the nearest proxy added.
fn last_value<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    let Some(line) = headers.get_all(name).iter().next_back() else {
        return Ok(None);
    };
    let text = line.to_str().map_err(|_| ApiError::BadRequest(format!("{name} is not ASCII")))?;
    Ok(text.rsplit(',').next().map(str::trim).filter(|value| !value.is_empty()))
}

fn scheme(value: &str, header: &str) -> Result<&'static str, ApiError> {
    match value.to_ascii_lowercase().as_str() {
        "http" => Ok("http"),
        "https" => Ok("https"),
        _ => Err(ApiError::BadRequest(format!("{header} '{value}' is neither http nor https"))),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn base_urls() {
        let parse = |text: &str| text.parse::<PublicBaseUrl>().map(|url| url.0);
        assert_eq!(parse("https://cdr.example.org/fhir/").unwrap(), "https://cdr.example.org/fhir");
        assert_eq!(
            parse("HTTP://Cdr.Example.org:8443/r4").unwrap(),
            "http://cdr.example.org:8443/r4"
        );
        assert_eq!(parse("https://[::1]:8080/fhir").unwrap(), "https://[::1]:8080/fhir");
        for bad in [
            "cdr.example.org/fhir",
            "/fhir",
            "ftp://cdr.example.org/fhir",
            "https://good@evil.example/fhir",
            "https://cdr.example.org/fhir?x=1",
            "https://cdr.example.org/fhir#top",
            "https://cdr.example.org:0/fhir",
            "https://cdr.example.org:99999/fhir",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts() {
        assert_eq!(
            Host::parse("CDR.example.org:8080").unwrap().to_string(),
            "cdr.example.org:8080"
        );
        assert_eq!(Host::parse("10.0.0.1").unwrap().to_string(), "10.0.0.1");
        assert_eq!(Host::parse("[2001:DB8::1]:443").unwrap().to_string(), "[2001:db8::1]:443");
        assert_eq!(Host::parse("cdr_1").unwrap().to_string(), "cdr_1");
        for bad in [
            "",
            "good@evil.example",
            "a b",
            "evil.example/x",
            "host:",
            "host:0",
            "host:65536",
            "host:+80",
            "host:80:80",
            "a..b",
            ".a",
            "[::1",
            "[::1]x",
            "[not-v6]",
            "évil.example",
        ] {
            assert!(Host::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cidr_blocks() {
        let block = |text: &str| text.parse::<IpCidr>().unwrap();
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert!(block("10.0.0.0/8").contains(ip("10.255.1.2")));
        assert!(!block("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(block("192.168.1.7").contains(ip("192.168.1.7")));
        assert!(!block("192.168.1.7").contains(ip("192.168.1.8")));
        assert!(block("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(block("127.0.0.1").contains(ip("::ffff:127.0.0.1")));
        assert!(block("fd00::/8").contains(ip("fd12::1")));
        assert!(!block("fd00::/8").contains(ip("fe80::1")));
        assert!(!block("::/0").contains(ip("10.0.0.1")));
        for bad in
            ["10.0.0.0/33", "10.0.0.0/", "10.0.0.0/+8", "10.0.0.0/08", "::/129", "host", "10.0.0/8"]
        {
            assert!(bad.parse::<IpCidr>().is_err(), "{bad}");
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn forwarded_takes_the_nearest_value() {
        let found = forwarded(&headers(&[
            ("forwarded", "for=1.2.3.4;proto=http;host=spoofed.example"),
            ("forwarded", "for=5.6.7.8;proto=https;host=\"cdr.example.org:8443\""),
        ]))
        .unwrap();
        assert_eq!(found.proto, Some("https"));
        assert_eq!(found.host.unwrap().to_string(), "cdr.example.org:8443");
        let found = forwarded(&headers(&[
            ("x-forwarded-proto", "http, https"),
            ("x-forwarded-host", "spoofed.example, cdr.example.org"),
        ]))
        .unwrap();
        assert_eq!(found.proto, Some("https"));
        assert_eq!(found.host.unwrap().to_string(), "cdr.example.org");
        assert!(forwarded(&headers(&[("x-forwarded-proto", "gopher")])).is_err());
        assert!(forwarded(&headers(&[("x-forwarded-host", "good@evil.example")])).is_err());
        assert!(forwarded(&headers(&[("forwarded", "host=good@evil.example")])).is_err());
    }
}
