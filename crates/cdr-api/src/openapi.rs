//! `GET /openapi.json`: an OpenAPI 3.1 document of the routes in `routes::ROUTES`, built with utoipa's
//! builders. The FHIR routes are generic (`/{type}`), so the document repeats each for every served type,
//! with that type's search parameters as the CapabilityStatement declares them (name, and the FHIR search
//! type as the description: every value is a string in the query). Errors are OperationOutcomes.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use utoipa::openapi::path::{
    Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, HeaderBuilder, HttpMethod, InfoBuilder, Object,
    ObjectBuilder, OpenApi, OpenApiBuilder, Paths, Ref, Required, ResponseBuilder,
    SecurityRequirement, Type,
};

use crate::AppState;
use crate::links::BaseUrl;
use crate::routes::{Endpoint, Mount, ROUTES, Route, Verb};

/// The media type of FHIR JSON bodies.
const FHIR_JSON: &str = "application/fhir+json";
/// The media type of FHIR XML bodies (the same resources, R4's XML form).
const FHIR_XML: &str = "application/fhir+xml";

/// The name of the bearer security scheme under `--auth smart`.
const BEARER: &str = "smart";

pub(crate) async fn document(State(state): State<AppState>, BaseUrl(base): BaseUrl) -> Response {
    let capabilities = state.engine.capabilities(&base);
    Json(build(&capabilities, state.auth.is_some(), state.config.metrics)).into_response()
}

/// The document of every served route: the auth routes and the SMART configuration only with `auth`,
/// `/metrics` only with `metrics`.
pub(crate) fn build(capabilities: &Value, auth: bool, metrics: bool) -> OpenApi {
    let resources = capabilities
        .pointer("/rest/0/resource")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut paths = Paths::new();
    for route in &ROUTES {
        let served = match (route.mount, route.endpoint) {
            (Mount::Auth, _) | (_, Endpoint::SmartConfiguration) => auth,
            (Mount::Metrics, _) => metrics,
            (Mount::Fhir | Mount::Root, _) => true,
        };
        if !served {
            continue;
        }
        if route.path.contains("{type}") {
            for resource in resources {
                let type_name = resource["type"].as_str().unwrap_or_default();
                if subscription_operation(route.endpoint) && type_name != "Subscription" {
                    continue;
                }
                let operation = operation(route, Some(resource), auth);
                paths.add_path_operation(
                    full_path(route, type_name),
                    vec![method(route.verb)],
                    operation,
                );
            }
        } else {
            paths.add_path_operation(
                full_path(route, ""),
                vec![method(route.verb)],
                operation(route, None, auth),
            );
        }
    }
    let mut components = ComponentsBuilder::new()
        .schema(
            "Resource",
            resource_schema("Any FHIR R4 resource (JSON); see the resource's type."),
        )
        .schema("Bundle", resource_schema("A FHIR R4 Bundle (JSON)."))
        .schema(
            "OperationOutcome",
            resource_schema("A FHIR R4 OperationOutcome: the body of every error."),
        )
        .schema("Parameters", resource_schema("A FHIR R4 Parameters resource."));
    if auth {
        components = components.security_scheme(
            BEARER,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "SMART on FHIR backend services: a JWT from a configured issuer or from POST /auth/token.",
                    ))
                    .build(),
            ),
        );
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("imaging-cdr")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The FHIR R4 REST API of imaging-cdr (FHIR base /fhir), generated from the routes the server serves and the search parameters of its CapabilityStatement (/fhir/metadata).",
                )),
        )
        .paths(paths)
        .components(Some(components.build()))
        .build()
}

/// The operations served on Subscription alone.
fn subscription_operation(endpoint: Endpoint) -> bool {
    matches!(
        endpoint,
        Endpoint::SubscriptionStatus
            | Endpoint::SubscriptionEvents
            | Endpoint::SubscriptionDeliveries
            | Endpoint::SubscriptionResend
    )
}

/// A route's path from the root, `{type}` replaced by `type_name`.
fn full_path(route: &Route, type_name: &str) -> String {
    let path = route.path.replace("{type}", type_name);
    match (route.mount, path.as_str()) {
        (Mount::Fhir, "/") => "/fhir".to_owned(),
        (Mount::Fhir, _) => format!("/fhir{path}"),
        _ => path,
    }
}

fn method(verb: Verb) -> HttpMethod {
    match verb {
        Verb::Get => HttpMethod::Get,
        Verb::Post => HttpMethod::Post,
        Verb::Put => HttpMethod::Put,
        Verb::Patch => HttpMethod::Patch,
        Verb::Delete => HttpMethod::Delete,
    }
}

/// The operation of one route, for one served type (`resource`, its CapabilityStatement entry) or none.
fn operation(route: &Route, resource: Option<&Value>, auth: bool) -> Operation {
    let type_name = resource.and_then(|resource| resource["type"].as_str());
    let facts = describe(route.endpoint);
    let summary = match type_name {
        Some(name) => format!("{} ({name})", facts.summary),
        None => facts.summary.to_owned(),
    };
    let tag = match route.mount {
        Mount::Fhir => type_name.unwrap_or("system"),
        Mount::Auth => "auth",
        Mount::Metrics | Mount::Root => "service",
    };
    // The method and the path, in identifier characters: unique, since each path has each method once.
    let path = full_path(route, type_name.unwrap_or_default());
    let id: String = format!("{:?}{path}", route.verb)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let mut builder = OperationBuilder::new()
        .tag(tag)
        .summary(Some(summary))
        .operation_id(Some(id))
        .parameters(Some(path_parameters(route.path)))
        .parameters(Some(facts.headers.iter().map(|name| header_parameter(name))));
    if route.mount == Mount::Fhir {
        builder = builder.parameter(query_parameter(
            "_format",
            "The response format: json (application/fhir+json, application/json) or xml (application/fhir+xml, \
             application/xml, text/xml); without it, Accept decides, and JSON is the default.",
        ));
    }
    if facts.search {
        let params = resource
            .and_then(|resource| resource["searchParam"].as_array())
            .map(Vec::as_slice)
            .unwrap_or_default();
        builder = builder.parameters(Some(params.iter().map(|param| {
            let name = param["name"].as_str().unwrap_or_default();
            let kind = param["type"].as_str().unwrap_or_default();
            let definition = param["definition"].as_str().unwrap_or_default();
            query_parameter(name, &format!("FHIR search parameter of type {kind} ({definition})"))
        })));
        builder = builder.parameters(Some(
            RESULT_PARAMETERS.iter().map(|(name, text)| query_parameter(name, text)),
        ));
    }
    if facts.history {
        builder = builder.parameters(Some(
            HISTORY_PARAMETERS.iter().map(|(name, text)| query_parameter(name, text)),
        ));
    }
    if let Some(body) = facts.body {
        let mut request = RequestBodyBuilder::new()
            .required(Some(Required::True))
            .description(Some(body.description));
        for media_type in body.media_types {
            request = request
                .content(*media_type, ContentBuilder::new().schema(Some(body.schema())).build());
        }
        builder = builder.request_body(Some(request.build()));
    }
    for (status, text, headers) in facts.responses {
        let mut response = ResponseBuilder::new().description(*text);
        for header in *headers {
            response = response.header(
                *header,
                HeaderBuilder::new().schema(Some(Object::with_type(Type::String))).build(),
            );
        }
        // A FHIR route answers a resource (none on 204 and 304) or, on an error, an OperationOutcome.
        let schema = match status.as_bytes().first() {
            _ if route.mount != Mount::Fhir => None,
            Some(b'4' | b'5') => Some("OperationOutcome"),
            _ if facts.answer.is_empty() || ["204", "304"].contains(status) => None,
            _ => Some(facts.answer),
        };
        if let Some(schema) = schema {
            for media_type in [FHIR_JSON, FHIR_XML] {
                response = response.content(
                    media_type,
                    ContentBuilder::new().schema(Some(Ref::from_schema_name(schema))).build(),
                );
            }
        }
        builder = builder.response(*status, response);
    }
    if route.mount == Mount::Fhir {
        for (status, text) in
            FHIR_ERRORS.iter().chain(if auth { AUTH_ERRORS.iter() } else { [].iter() })
        {
            builder = builder.response(*status, error_response(text));
        }
        let public =
            matches!(route.endpoint, Endpoint::Capabilities | Endpoint::SmartConfiguration);
        if auth && !public {
            builder = builder.security(SecurityRequirement::new(BEARER, Vec::<String>::new()));
        }
    }
    builder.build()
}

/// A request body: its media types, what it is, and its schema.
#[derive(Debug, Clone, Copy)]
struct Body {
    media_types: &'static [&'static str],
    description: &'static str,
    schema: &'static str,
}

/// What the document says of an endpoint.
#[derive(Debug, Clone, Copy)]
struct Facts {
    summary: &'static str,
    /// The request headers it reads.
    headers: &'static [&'static str],
    /// Whether it takes the type's search parameters and the result parameters.
    search: bool,
    /// Whether it takes the history parameters.
    history: bool,
    body: Option<Body>,
    /// Its answers other than the common errors: status, description and response headers.
    responses: &'static [(&'static str, &'static str, &'static [&'static str])],
    /// The schema of its successful FHIR answers (empty: not a FHIR resource).
    answer: &'static str,
}

const RESOURCE: Body = Body {
    media_types: &[FHIR_JSON, "application/json", FHIR_XML, "application/xml"],
    description: "The resource, as FHIR JSON or FHIR XML.",
    schema: "Resource",
};
const BUNDLE: Body = Body {
    media_types: &[FHIR_JSON, "application/json", FHIR_XML, "application/xml"],
    description: "A transaction or batch Bundle.",
    schema: "Bundle",
};
const PATCH: Body = Body {
    media_types: &["application/json-patch+json", FHIR_JSON, FHIR_XML],
    description: "A JSON Patch (RFC 6902) document, or a FHIRPath Patch Parameters resource as FHIR JSON or XML.",
    schema: "Parameters",
};
const FORM: Body = Body {
    media_types: &["application/x-www-form-urlencoded"],
    description: "Search parameters as a form (they may also be in the query).",
    schema: "",
};
const VALIDATE: Body = Body {
    media_types: &[FHIR_JSON, "application/json", FHIR_XML, "application/xml"],
    description: "The resource, or a Parameters with resource, mode and profile.",
    schema: "Resource",
};
const TOKEN: Body = Body {
    media_types: &["application/x-www-form-urlencoded"],
    description: "grant_type=client_credentials, scope, client_assertion_type and client_assertion (a signed JWT).",
    schema: "",
};

const VERSION_HEADERS: &[&str] = &["ETag", "Last-Modified"];
const WRITE_HEADERS: &[&str] = &["ETag", "Last-Modified", "Location"];
const PREFER_WRITE: &[&str] = &["Prefer"];

/// The query parameters of every search besides the type's own.
const RESULT_PARAMETERS: [(&str, &str); 9] = [
    ("_count", "Page size (20 by default, 500 at most)."),
    ("_sort", "Sort keys, comma-separated; a leading '-' sorts descending."),
    ("_include", "Resources the matches refer to (SourceType:param[:TargetType], or *)."),
    ("_revinclude", "Resources that refer to the matches (SourceType:param[:TargetType], or *)."),
    ("_summary", "true, text, data, count or false."),
    ("_elements", "The elements to return, comma-separated."),
    ("_total", "none, estimate or accurate."),
    ("_contained", "false, true or both."),
    ("_cursor", "The opaque position of a page, as the Bundle's next link gives it."),
];

/// The query parameters of the history interactions.
const HISTORY_PARAMETERS: [(&str, &str); 3] = [
    ("_count", "Page size."),
    ("_since", "Only versions written at or after this instant."),
    ("_cursor", "The opaque position of a page, as the Bundle's next link gives it."),
];

/// The errors any FHIR route may answer, each with an OperationOutcome.
const FHIR_ERRORS: [(&str, &str); 5] = [
    ("400", "The request is malformed or its parameters are not understood."),
    (
        "406",
        "The Accept header or _format asks for a format the server does not produce (it produces FHIR JSON and XML).",
    ),
    ("413", "The request body is larger than the server accepts."),
    ("415", "The request body's Content-Type or Content-Encoding is not supported."),
    ("503", "Too many requests in flight or the request took too long (Retry-After)."),
];

/// The errors of the FHIR routes under `--auth smart`.
const AUTH_ERRORS: [(&str, &str); 2] = [
    ("401", "No bearer token, or one that does not verify."),
    ("403", "The token's scopes do not allow the interaction."),
];

fn facts(
    summary: &'static str,
    headers: &'static [&'static str],
    body: Option<Body>,
    responses: &'static [(&'static str, &'static str, &'static [&'static str])],
) -> Facts {
    Facts { summary, headers, search: false, history: false, body, responses, answer: "Resource" }
}

/// The answer to a conditional `GET` of a viewer file that the client has.
const UNCHANGED_ASSET: (&str, &str, &[&str]) =
    ("304", "Unchanged: If-None-Match names its ETag.", &["ETag"]);

/// A file of the viewer: the headers it reads (`If-None-Match`) and its answers.
fn asset(
    summary: &'static str,
    responses: &'static [(&'static str, &'static str, &'static [&'static str])],
) -> Facts {
    Facts { answer: "", ..facts(summary, &["If-None-Match"], None, responses) }
}

#[allow(clippy::too_many_lines, reason = "one table of every endpoint")]
fn describe(endpoint: Endpoint) -> Facts {
    use Endpoint as E;
    const NOT_FOUND: (&str, &str, &[&str]) =
        ("404", "No resource with this id, or the type is not served.", &[]);
    const GONE: (&str, &str, &[&str]) = ("410", "The resource is deleted.", VERSION_HEADERS);
    const CONFLICT: (&str, &str, &[&str]) =
        ("409", "A concurrent write of the same resource won.", &[]);
    const PRECONDITION: (&str, &str, &[&str]) = (
        "412",
        "If-Match names another version, or the criteria match more than one resource.",
        &[],
    );
    const INVALID: (&str, &str, &[&str]) =
        ("422", "The resource does not validate; nothing is written.", &[]);
    let bundle = |summary: &'static str| Facts {
        answer: "Bundle",
        ..facts(summary, &[], None, &[("200", "A Bundle.", &[])])
    };
    match endpoint {
        E::Read => facts(
            "read",
            &["If-None-Match", "If-Modified-Since"],
            None,
            &[
                ("200", "The current version.", VERSION_HEADERS),
                ("304", "The client's copy is current.", VERSION_HEADERS),
                NOT_FOUND,
                GONE,
            ],
        ),
        E::Vread => {
            facts("vread", &[], None, &[("200", "That version.", VERSION_HEADERS), NOT_FOUND, GONE])
        }
        E::Update => facts(
            "update",
            &["If-Match", "Prefer"],
            Some(RESOURCE),
            &[
                ("200", "Updated (or unchanged).", WRITE_HEADERS),
                ("201", "Created (update as create, when the server allows it).", WRITE_HEADERS),
                ("405", "Update as create is off and the resource does not exist.", &[]),
                CONFLICT,
                PRECONDITION,
                INVALID,
            ],
        ),
        E::ConditionalUpdate => Facts {
            search: true,
            ..facts(
                "conditional update (the query holds the criteria)",
                &["If-Match", "Prefer"],
                Some(RESOURCE),
                &[
                    ("200", "The one match is updated.", WRITE_HEADERS),
                    ("201", "No match: created.", WRITE_HEADERS),
                    CONFLICT,
                    PRECONDITION,
                    INVALID,
                ],
            )
        },
        E::Patch => facts(
            "patch",
            &["If-Match", "Prefer"],
            Some(PATCH),
            &[("200", "Patched.", WRITE_HEADERS), NOT_FOUND, GONE, CONFLICT, PRECONDITION, INVALID],
        ),
        E::ConditionalPatch => Facts {
            search: true,
            ..facts(
                "conditional patch (the query holds the criteria)",
                &["If-Match", "Prefer"],
                Some(PATCH),
                &[
                    ("200", "The one match is patched.", WRITE_HEADERS),
                    NOT_FOUND,
                    CONFLICT,
                    PRECONDITION,
                    INVALID,
                ],
            )
        },
        E::Delete => facts(
            "delete",
            PREFER_WRITE,
            None,
            &[
                ("200", "Deleted (Prefer: return=OperationOutcome).", VERSION_HEADERS),
                ("204", "Deleted, or nothing to delete.", VERSION_HEADERS),
                CONFLICT,
            ],
        ),
        E::ConditionalDelete => Facts {
            search: true,
            ..facts(
                "conditional delete (the query holds the criteria)",
                PREFER_WRITE,
                None,
                &[
                    ("200", "Deleted (Prefer: return=OperationOutcome).", VERSION_HEADERS),
                    ("204", "Deleted, or nothing matched.", VERSION_HEADERS),
                    PRECONDITION,
                ],
            )
        },
        E::Create => facts(
            "create (conditional with If-None-Exist)",
            &["If-None-Exist", "Prefer"],
            Some(RESOURCE),
            &[
                ("201", "Created.", WRITE_HEADERS),
                ("200", "If-None-Exist matched one resource; nothing is created.", WRITE_HEADERS),
                PRECONDITION,
                INVALID,
            ],
        ),
        E::SearchType => Facts { search: true, headers: &["Prefer"], ..bundle("search") },
        E::SearchTypePost => Facts {
            search: true,
            headers: &["Prefer"],
            body: Some(FORM),
            ..bundle("search (POST _search)")
        },
        E::SearchSystem => Facts { headers: &["Prefer"], ..bundle("search across types (_type)") },
        E::SearchSystemPost => Facts {
            headers: &["Prefer"],
            body: Some(FORM),
            ..bundle("search across types (POST _search)")
        },
        E::Bundle => Facts {
            answer: "Bundle",
            ..facts(
                "transaction or batch",
                &["Prefer"],
                Some(BUNDLE),
                &[
                    ("200", "The transaction-response or batch-response Bundle.", &[]),
                    (
                        "202",
                        "Prefer: respond-async: queued; Content-Location is the status URL.",
                        &["Content-Location"],
                    ),
                    CONFLICT,
                    PRECONDITION,
                    INVALID,
                    ("429", "Too many asynchronous requests are unfinished.", &[]),
                ],
            )
        },
        E::HistoryInstance => Facts { history: true, ..bundle("history of an instance") },
        E::HistoryType => Facts { history: true, ..bundle("history of a type") },
        E::HistorySystem => Facts { history: true, ..bundle("history of every type") },
        E::Capabilities => Facts {
            answer: "Resource",
            ..facts("CapabilityStatement", &[], None, &[("200", "The CapabilityStatement.", &[])])
        },
        E::ValidateSystem | E::ValidateType | E::ValidateInstance => Facts {
            answer: "OperationOutcome",
            ..facts(
                "$validate (mode and profile may be query parameters)",
                &[],
                Some(VALIDATE),
                &[("200", "The validation ran: its OperationOutcome.", &[])],
            )
        },
        E::SubscriptionStatus => {
            bundle("$status: the Subscription's status Parameters (Subscriptions Backport)")
        }
        E::SubscriptionEvents => bundle(
            "$events: the events from eventsSinceNumber to eventsUntilNumber (content: empty, id-only, full-resource)",
        ),
        E::SubscriptionDeliveries => {
            bundle("$deliveries: the delivery state and the latest delivery attempts")
        }
        E::SubscriptionResend => {
            bundle("$resend: deliver the events from eventsSinceNumber on again; answers $status")
        }
        E::AsyncStatus => facts(
            "status of an asynchronous request",
            &[],
            None,
            &[
                ("202", "Still queued or running (X-Progress).", &["X-Progress"]),
                ("200", "Done: the response the synchronous request would have had.", &[]),
                NOT_FOUND,
            ],
        ),
        E::AsyncCancel => Facts {
            answer: "OperationOutcome",
            ..facts(
                "cancel an asynchronous request or delete its response",
                &[],
                None,
                &[("202", "Cancelled, or its response deleted.", &[]), NOT_FOUND],
            )
        },
        E::SmartConfiguration => Facts {
            answer: "",
            ..facts(
                "SMART configuration",
                &[],
                None,
                &[("200", "The SMART configuration (application/json).", &[])],
            )
        },
        E::Livez => facts("liveness", &[], None, &[("200", "The process is up.", &[])]),
        E::Readyz => facts(
            "readiness",
            &[],
            None,
            &[("200", "The database answers.", &[]), ("503", "The database does not answer.", &[])],
        ),
        E::Metrics => facts(
            "Prometheus metrics",
            &[],
            None,
            &[("200", "The Prometheus text exposition format.", &[])],
        ),
        E::Token => facts(
            "token endpoint (SMART backend services)",
            &[],
            Some(TOKEN),
            &[
                ("200", "An access token (JSON).", &[]),
                ("400", "An OAuth 2.0 error (JSON).", &[]),
                ("401", "The client is not authenticated (JSON).", &[]),
            ],
        ),
        E::Jwks => facts(
            "the server's public keys (JWKS)",
            &[],
            None,
            &[("200", "A JSON Web Key Set.", &[])],
        ),
        E::OpenApi => facts(
            "this OpenAPI document",
            &[],
            None,
            &[("200", "The OpenAPI 3.1 document (JSON).", &[])],
        ),
        E::Docs => facts(
            "the API docs page",
            &[],
            None,
            &[("200", "An HTML page rendering this document.", &[])],
        ),
        E::Viewer => asset(
            "the imaging record viewer",
            &[("200", "The viewer's HTML page.", &["ETag"]), UNCHANGED_ASSET],
        ),
        E::ViewerScript => asset(
            "the viewer's script",
            &[("200", "JavaScript (text/javascript).", &["ETag"]), UNCHANGED_ASSET],
        ),
        E::ViewerStyle => asset(
            "the viewer's style sheet",
            &[("200", "CSS (text/css).", &["ETag"]), UNCHANGED_ASSET],
        ),
    }
}

impl Body {
    fn schema(self) -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        if self.schema.is_empty() {
            Object::with_type(Type::Object).into()
        } else {
            Ref::from_schema_name(self.schema).into()
        }
    }
}

/// The `{name}` segments of a route's path, as required string path parameters.
fn path_parameters(path: &str) -> Vec<Parameter> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .filter(|name| *name != "type")
        .map(|name| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(Object::with_type(Type::String)))
                .build()
        })
        .collect()
}

fn query_parameter(name: &str, description: &str) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(Object::with_type(Type::String)))
        .build()
}

fn header_parameter(name: &str) -> Parameter {
    let description = match name {
        "If-Match" => "Write only if the current version has this ETag (W/\"n\"); else 412.",
        "If-None-Exist" => "Conditional create: search criteria (a query string without '?').",
        "If-None-Match" => "304 if the current version has this ETag.",
        "If-Modified-Since" => "304 if the resource has not changed since this HTTP date.",
        "Prefer" => {
            "return=minimal|representation|OperationOutcome; handling=strict|lenient on searches; respond-async on Bundles."
        }
        _ => "",
    };
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(Object::with_type(Type::String)))
        .build()
}

fn error_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            FHIR_JSON,
            ContentBuilder::new().schema(Some(Ref::from_schema_name("OperationOutcome"))).build(),
        )
        .content(
            FHIR_XML,
            ContentBuilder::new().schema(Some(Ref::from_schema_name("OperationOutcome"))).build(),
        )
        .build()
}

/// A component schema of a resource: a JSON object with its `resourceType`.
fn resource_schema(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(description))
        .property("resourceType", Object::with_type(Type::String))
        .required("resourceType")
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::build;

    fn document(auth: bool, metrics: bool) -> Value {
        let capabilities = json!({"rest": [{"resource": [{
            "type": "Patient",
            "searchParam": [{"name": "identifier", "type": "token", "definition": "http://hl7.org/fhir/SearchParameter/Patient-identifier"}],
        }]}]});
        serde_json::to_value(build(&capabilities, auth, metrics)).unwrap()
    }

    #[test]
    fn the_auth_routes_and_the_bearer_scheme_are_described_under_auth_only() {
        let with = document(true, true);
        for path in ["/auth/token", "/auth/jwks", "/fhir/.well-known/smart-configuration"] {
            assert!(with["paths"].get(path).is_some(), "{path}");
        }
        assert_eq!(with["components"]["securitySchemes"]["smart"]["scheme"], "bearer");
        let read = &with["paths"]["/fhir/Patient/{id}"]["get"];
        assert_eq!(read["security"], json!([{"smart": []}]));
        assert!(read["responses"]["401"].is_object() && read["responses"]["403"].is_object());
        // The CapabilityStatement and the SMART configuration answer without a token.
        assert!(with["paths"]["/fhir/metadata"]["get"].get("security").is_none());
        let smart = &with["paths"]["/fhir/.well-known/smart-configuration"]["get"];
        assert!(smart.get("security").is_none());

        let without = document(false, true);
        for path in ["/auth/token", "/auth/jwks", "/fhir/.well-known/smart-configuration"] {
            assert!(without["paths"].get(path).is_none(), "{path}");
        }
        assert!(without["components"].get("securitySchemes").is_none());
        assert!(without["paths"]["/fhir/Patient/{id}"]["get"]["responses"].get("401").is_none());
    }

    #[test]
    fn metrics_are_described_only_when_served() {
        assert!(document(false, true)["paths"].get("/metrics").is_some());
        assert!(document(false, false)["paths"].get("/metrics").is_none());
    }

    #[test]
    fn operation_ids_are_unique() {
        let document = document(true, true);
        let mut ids: Vec<&str> = document["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .filter_map(|operation| operation["operationId"].as_str())
            .collect();
        let count = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), count);
    }
}
