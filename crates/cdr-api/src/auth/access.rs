//! Which scope letters each interaction needs, and the check of a request or a Bundle entry against the
//! granted scopes.
//!
//! SMART v2 letters: read and vread `r`; search and history (every level) `s`; create `c`; update and patch
//! `u`; delete `d`. A conditional create, update, patch or delete also needs `s` on its type, since its
//! answer tells whether a resource matches its criteria. `$validate` writes nothing and reads at most the
//! instance it names, so it needs `r` on its type (on every type at system level, whose body may be of any
//! type). The status of an asynchronous request (`_async/{id}`) can hold any resource the Bundle wrote or
//! read, so it needs `r` and `s` on every type.
//!
//! The letters are the same in every context (`system/`, `patient/`, `user/`); whose records they reach is
//! decided apart (`mod.rs`): a `patient/` token's request runs confined to its patient's compartment, and a
//! `user/` scope counts only for an eligible practitioner.

use axum::http::Method;

use super::scopes::{Allowance, Grants, Letter};
use crate::error::ApiError;

/// One permission an interaction needs: a letter on a type (`None`: on every type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Need {
    pub(crate) resource_type: Option<String>,
    pub(crate) letter: Letter,
}

impl Need {
    fn on(resource_type: &str, letter: Letter) -> Need {
        Need { resource_type: Some(resource_type.to_owned()), letter }
    }

    fn everywhere(letter: Letter) -> Need {
        Need { resource_type: None, letter }
    }
}

/// What a request (or a Bundle entry) is, for authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Interaction {
    /// Open to everyone (`metadata`, the SMART configuration).
    Open,
    /// A search; its handler checks it with the parameters (`_type`, the granular restrictions).
    Search { resource_type: Option<String> },
    /// A read of one resource: `r`, and its granular restrictions are checked on the resource read.
    Read { resource_type: String, id: String },
    /// A transaction or batch: each entry is checked by the Bundle handler.
    Bundle,
    /// Anything else: these permissions, which granular scopes do not satisfy.
    Other(Vec<Need>),
}

/// The interaction of `method` on `path` (relative to the FHIR base, without the query), or why this
/// server does not know it (refused, so that nothing unclassified is served).
pub(crate) fn classify(
    method: &Method,
    path: &str,
    conditional_create: bool,
) -> Option<Interaction> {
    // HEAD is answered as GET is, without the body.
    let method = if method == Method::HEAD { &Method::GET } else { method };
    let segments: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let is = |wanted: &Method| method == wanted;
    let other = |needs: Vec<Need>| Some(Interaction::Other(needs));
    match segments.as_slice() {
        ["metadata"] | [".well-known", "smart-configuration"] if is(&Method::GET) => {
            Some(Interaction::Open)
        }
        [] if is(&Method::GET) => Some(Interaction::Search { resource_type: None }),
        [] | ["Bundle"] if is(&Method::POST) => Some(Interaction::Bundle),
        ["_search"] if is(&Method::POST) => Some(Interaction::Search { resource_type: None }),
        ["_history"] if is(&Method::GET) => other(vec![Need::everywhere(Letter::Search)]),
        ["$validate"] if is(&Method::POST) => other(vec![Need::everywhere(Letter::Read)]),
        ["_async", _] if is(&Method::GET) || is(&Method::DELETE) => {
            other(vec![Need::everywhere(Letter::Read), Need::everywhere(Letter::Search)])
        }
        [resource_type] => {
            let needs = match *method {
                Method::GET => {
                    return Some(Interaction::Search {
                        resource_type: Some((*resource_type).to_owned()),
                    });
                }
                Method::POST if conditional_create => {
                    vec![
                        Need::on(resource_type, Letter::Create),
                        Need::on(resource_type, Letter::Search),
                    ]
                }
                Method::POST => vec![Need::on(resource_type, Letter::Create)],
                Method::PUT | Method::PATCH => {
                    vec![
                        Need::on(resource_type, Letter::Update),
                        Need::on(resource_type, Letter::Search),
                    ]
                }
                Method::DELETE => {
                    vec![
                        Need::on(resource_type, Letter::Delete),
                        Need::on(resource_type, Letter::Search),
                    ]
                }
                _ => return None,
            };
            other(needs)
        }
        [resource_type, "_search"] if is(&Method::POST) => {
            Some(Interaction::Search { resource_type: Some((*resource_type).to_owned()) })
        }
        [resource_type, "_history"] if is(&Method::GET) => {
            other(vec![Need::on(resource_type, Letter::Search)])
        }
        [resource_type, "$validate"] if is(&Method::POST) => {
            other(vec![Need::on(resource_type, Letter::Read)])
        }
        [resource_type, id] => match *method {
            Method::GET => Some(Interaction::Read {
                resource_type: (*resource_type).to_owned(),
                id: (*id).to_owned(),
            }),
            Method::PUT | Method::PATCH => other(vec![Need::on(resource_type, Letter::Update)]),
            Method::DELETE => other(vec![Need::on(resource_type, Letter::Delete)]),
            _ => None,
        },
        [resource_type, _, "_history"] if is(&Method::GET) => {
            other(vec![Need::on(resource_type, Letter::Search)])
        }
        [resource_type, _, "$validate"] if is(&Method::POST) => {
            other(vec![Need::on(resource_type, Letter::Read)])
        }
        [resource_type, _, "$status" | "$events" | "$deliveries"] if is(&Method::GET) => {
            other(vec![Need::on(resource_type, Letter::Read)])
        }
        [resource_type, _, "$resend"] if is(&Method::POST) => {
            other(vec![Need::on(resource_type, Letter::Update)])
        }
        [resource_type, _, "_history", _] if is(&Method::GET) => {
            other(vec![Need::on(resource_type, Letter::Read)])
        }
        _ => None,
    }
}

/// Refuses unless an unrestricted scope grants every need.
pub(crate) fn require(grants: &Grants, needs: &[Need]) -> Result<(), ApiError> {
    for need in needs {
        match grants.allowance(need.resource_type.as_deref(), need.letter) {
            Allowance::Unrestricted => {}
            Allowance::Restricted(_) => {
                return Err(forbidden(
                    grants,
                    &format!(
                        "only granular scopes (with search parameters) grant '{}' on {}, and they are \
                         honoured on reads and searches only",
                        need.letter,
                        type_text(need.resource_type.as_deref())
                    ),
                ));
            }
            Allowance::Denied => {
                return Err(forbidden(
                    grants,
                    &format!(
                        "no scope of the token grants '{}' on {}",
                        need.letter,
                        type_text(need.resource_type.as_deref())
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn type_text(resource_type: Option<&str>) -> String {
    resource_type.map_or_else(|| "every resource type (*)".to_owned(), ToOwned::to_owned)
}

/// A 403 saying why, and why some of the token's scopes grant nothing when it held such.
pub(crate) fn forbidden(grants: &Grants, reason: &str) -> ApiError {
    let mut message = format!("forbidden: {reason}");
    for withheld in &grants.withheld {
        message.push_str("; ");
        message.push_str(withheld);
    }
    ApiError::Forbidden(message)
}

/// The search parameters a search must be narrowed with, from what the scopes allow on its type: none for
/// an unrestricted scope, the parameters of the one granular scope, or of several that restrict the same
/// single parameter (joined with `,`, FHIR's OR); refused otherwise, or when nothing allows it.
fn search_restriction(
    grants: &Grants,
    resource_type: Option<&str>,
) -> Result<Vec<(String, String)>, ApiError> {
    match grants.allowance(resource_type, Letter::Search) {
        Allowance::Unrestricted => Ok(Vec::new()),
        Allowance::Denied => Err(forbidden(
            grants,
            &format!("no scope of the token grants 's' on {}", type_text(resource_type)),
        )),
        Allowance::Restricted(mut restrictions) => {
            if restrictions.len() == 1 {
                return Ok(restrictions.remove(0));
            }
            let single_name = restrictions[0].first().map(|(name, _)| name.clone());
            let joinable = restrictions.iter().all(|restriction| {
                restriction.len() == 1 && Some(&restriction[0].0) == single_name.as_ref()
            });
            match single_name {
                Some(name) if joinable => {
                    let values: Vec<&str> =
                        restrictions.iter().map(|restriction| restriction[0].1.as_str()).collect();
                    Ok(vec![(name, values.join(","))])
                }
                _ => Err(forbidden(
                    grants,
                    &format!(
                        "the token's granular scopes on {} restrict different search parameters, which \
                         one search cannot combine: search with one of them",
                        type_text(resource_type)
                    ),
                )),
            }
        }
    }
}

/// Checks a search against the scopes and narrows it by their granular restrictions: `s` on its type, or
/// for a system search on each `_type` (on every type without one; granular scopes are not combined
/// across types); `s` on each type a chain or `_has` steps into (every type for a chain without a type
/// modifier or of more than one step). What `_include` and `_revinclude` add is filtered afterwards
/// (`filter_included`).
pub(crate) fn authorize_search(
    grants: &Grants,
    resource_type: Option<&str>,
    params: &mut Vec<(String, String)>,
) -> Result<(), ApiError> {
    let mut needs = Vec::new();
    for (name, _) in params.iter() {
        if let Some(rest) = name.strip_prefix("_has:") {
            match rest.split(':').next() {
                Some(target) if !target.is_empty() => needs.push(Need::on(target, Letter::Search)),
                _ => needs.push(Need::everywhere(Letter::Search)),
            }
        } else if let Some((first, rest)) = name.split_once('.') {
            let target = first.split_once(':').map(|(_, modifier)| modifier);
            match target {
                Some(target)
                    if !rest.contains('.')
                        && target.bytes().next().is_some_and(|b| b.is_ascii_uppercase()) =>
                {
                    needs.push(Need::on(target, Letter::Search));
                }
                _ => needs.push(Need::everywhere(Letter::Search)),
            }
        }
    }
    require(grants, &needs)?;
    match resource_type {
        Some(resource_type) => {
            let restriction = search_restriction(grants, Some(resource_type))?;
            params.extend(restriction);
        }
        None => {
            let types: Vec<String> = params
                .iter()
                .filter(|(name, _)| name == "_type")
                .flat_map(|(_, value)| {
                    value.split(',').map(str::trim).map(str::to_owned).collect::<Vec<_>>()
                })
                .filter(|name| !name.is_empty())
                .collect();
            let needs: Vec<Need> = if types.is_empty() {
                vec![Need::everywhere(Letter::Search)]
            } else {
                types.iter().map(|name| Need::on(name, Letter::Search)).collect()
            };
            require(grants, &needs)?;
        }
    }
    Ok(())
}

/// Drops from a searchset the `include` entries of types the scopes do not grant `s` on without restriction.
pub(crate) fn filter_included(grants: &Grants, bundle: &mut serde_json::Value) {
    let Some(entries) = bundle.get_mut("entry").and_then(serde_json::Value::as_array_mut) else {
        return;
    };
    entries.retain(|entry| {
        if entry.pointer("/search/mode").and_then(serde_json::Value::as_str) != Some("include") {
            return true;
        }
        let resource_type =
            entry.pointer("/resource/resourceType").and_then(serde_json::Value::as_str);
        resource_type.is_some_and(|resource_type| {
            grants.allowance(Some(resource_type), Letter::Search) == Allowance::Unrestricted
        })
    });
}

/// The refusal of each entry of a transaction or batch (`None` where the entry is allowed), and whether it
/// is a transaction; `None` when the body is not a Bundle with entries (the engine then says what is wrong).
///
/// An entry is checked as the same request alone would be, but granular scopes do not satisfy it (the
/// restriction cannot be applied inside a Bundle), and a search entry with `_include` or `_revinclude`
/// needs `s` on every type (its included resources are not filtered).
pub(crate) fn bundle_refusals(
    grants: &Grants,
    body: &[u8],
    base: &str,
) -> Option<(bool, Vec<Option<ApiError>>)> {
    let bundle: serde_json::Value = serde_json::from_slice(body).ok()?;
    let transaction = bundle.get("type").and_then(serde_json::Value::as_str) == Some("transaction");
    let entries = bundle.get("entry").and_then(serde_json::Value::as_array)?;
    let refusals = entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            entry_refusal(grants, entry, base).err().map(|error| match error {
                ApiError::Forbidden(message) => {
                    ApiError::Forbidden(format!("Bundle.entry[{index}]: {message}"))
                }
                other => other,
            })
        })
        .collect();
    Some((transaction, refusals))
}

fn entry_refusal(grants: &Grants, entry: &serde_json::Value, base: &str) -> Result<(), ApiError> {
    let request = entry.get("request");
    let text = |name: &str| {
        request.and_then(|request| request.get(name)).and_then(serde_json::Value::as_str)
    };
    let method = text("method").and_then(|method| Method::from_bytes(method.as_bytes()).ok());
    let (Some(method), Some(url)) = (method, text("url")) else {
        // The engine refuses an entry without a method or URL.
        return Ok(());
    };
    let relative = url.strip_prefix(base).unwrap_or(url);
    let (path, query) = relative.split_once('?').unwrap_or((relative, ""));
    let conditional = text("ifNoneExist").is_some();
    let unrestricted =
        |resource_type: &str, letter: Letter| require(grants, &[Need::on(resource_type, letter)]);
    match classify(&method, path, conditional) {
        Some(Interaction::Open) => Ok(()),
        Some(Interaction::Other(needs)) => require(grants, &needs),
        Some(Interaction::Read { resource_type, .. }) => unrestricted(&resource_type, Letter::Read),
        Some(Interaction::Search { resource_type }) => {
            let mut params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
                .map(|(name, value)| (name.into_owned(), value.into_owned()))
                .collect();
            let asked = params.len();
            authorize_search(grants, resource_type.as_deref(), &mut params)?;
            if params.len() != asked {
                return Err(forbidden(
                    grants,
                    "only granular scopes (with search parameters) allow this search, and they are \
                     honoured on searches outside Bundles only",
                ));
            }
            if params
                .iter()
                .any(|(name, _)| name.starts_with("_include") || name.starts_with("_revinclude"))
            {
                require(grants, &[Need::everywhere(Letter::Search)])?;
            }
            Ok(())
        }
        Some(Interaction::Bundle) | None => Err(forbidden(
            grants,
            &format!("{method} {path} is not an interaction a Bundle entry may hold"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needs(method: &Method, path: &str) -> Vec<Need> {
        match classify(method, path, false) {
            Some(Interaction::Other(needs)) => needs,
            other => panic!("{method} {path}: {other:?}"),
        }
    }

    #[test]
    fn every_interaction_needs_its_letter() {
        let letters = |method, path| -> Vec<Letter> {
            needs(&method, path).iter().map(|need| need.letter).collect()
        };
        assert_eq!(letters(Method::POST, "/Patient"), [Letter::Create]);
        assert_eq!(letters(Method::PUT, "/Patient/1"), [Letter::Update]);
        assert_eq!(letters(Method::PATCH, "/Patient/1"), [Letter::Update]);
        assert_eq!(letters(Method::DELETE, "/Patient/1"), [Letter::Delete]);
        assert_eq!(letters(Method::GET, "/Patient/1/_history/2"), [Letter::Read]);
        assert_eq!(letters(Method::GET, "/Patient/1/_history"), [Letter::Search]);
        assert_eq!(letters(Method::GET, "/Patient/_history"), [Letter::Search]);
        assert_eq!(letters(Method::PUT, "/Patient"), [Letter::Update, Letter::Search]);
        assert_eq!(letters(Method::DELETE, "/Patient"), [Letter::Delete, Letter::Search]);
        assert_eq!(needs(&Method::GET, "/_history"), [Need::everywhere(Letter::Search)]);
        assert_eq!(
            classify(&Method::GET, "/Patient/1", false),
            Some(Interaction::Read { resource_type: "Patient".into(), id: "1".into() })
        );
        assert_eq!(
            classify(&Method::GET, "/Patient", false),
            Some(Interaction::Search { resource_type: Some("Patient".into()) })
        );
        assert_eq!(classify(&Method::POST, "/", false), Some(Interaction::Bundle));
        assert_eq!(classify(&Method::GET, "/metadata", false), Some(Interaction::Open));
        assert_eq!(classify(&Method::GET, "/a/b/c/d/e", false), None);
    }
}
