//! The references of a resource in a Bundle, found and rewritten in place: `Reference.reference` wherever it
//! occurs (extensions and contained resources included), `Attachment.url`, and links in the narrative
//! (R4 bundle.html#references, http.html#trules).

use serde_json::Value;

/// Calls `visit` with every `reference` string of `value` and its location (`subject`,
/// `contained[0].subject`, …), replacing the string when `visit` returns a new one; stops at the first
/// error. `url` strings and narrative links are handed to `other` (their exact text), which may return a
/// replacement.
pub(crate) fn rewrite<E>(
    value: &mut Value,
    visit: &mut impl FnMut(&str, &str) -> Result<Option<String>, E>,
    other: &impl Fn(&str) -> Option<String>,
) -> Result<(), E> {
    let mut path = String::new();
    walk(value, &mut path, visit, other)
}

fn walk<E>(
    value: &mut Value,
    path: &mut String,
    visit: &mut impl FnMut(&str, &str) -> Result<Option<String>, E>,
    other: &impl Fn(&str) -> Option<String>,
) -> Result<(), E> {
    match value {
        Value::Object(object) => {
            for (key, child) in object.iter_mut() {
                let length = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                match (key.as_str(), child) {
                    ("reference", Value::String(reference)) => {
                        if let Some(new) = visit(reference, path)? {
                            *reference = new;
                        }
                    }
                    ("url", Value::String(url)) => {
                        if let Some(new) = other(url) {
                            *url = new;
                        }
                    }
                    ("div", Value::String(div)) => {
                        if let Some(new) = rewrite_links(div, other) {
                            *div = new;
                        }
                    }
                    (_, child) => walk(child, path, visit, other)?,
                }
                path.truncate(length);
            }
        }
        Value::Array(items) => {
            for (position, item) in items.iter_mut().enumerate() {
                let length = path.len();
                path.push('[');
                path.push_str(&position.to_string());
                path.push(']');
                walk(item, path, visit, other)?;
                path.truncate(length);
            }
        }
        _ => {}
    }
    Ok(())
}

/// The narrative with every `href="…"` and `src="…"` value that `other` replaces rewritten, or `None`
/// when nothing changes.
fn rewrite_links(div: &str, other: &impl Fn(&str) -> Option<String>) -> Option<String> {
    let mut result = String::with_capacity(div.len());
    let mut rest = div;
    let mut changed = false;
    while let Some(start) = ["href=\"", "src=\""]
        .iter()
        .filter_map(|attribute| rest.find(attribute).map(|at| at + attribute.len()))
        .min()
    {
        result.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find('"').unwrap_or(rest.len());
        match other(&rest[..end]) {
            Some(new) => {
                result.push_str(&new);
                changed = true;
            }
            None => result.push_str(&rest[..end]),
        }
        rest = &rest[end..];
    }
    result.push_str(rest);
    changed.then_some(result)
}

/// Whether a reference is conditional (`Patient?identifier=…`), and then its type name and criteria.
pub(crate) fn conditional(reference: &str) -> Option<(&str, &str)> {
    let (type_name, criteria) = reference.split_once('?')?;
    let is_type_name = type_name.starts_with(|c: char| c.is_ascii_uppercase())
        && type_name.chars().all(|c| c.is_ascii_alphanumeric());
    is_type_name.then_some((type_name, criteria))
}

/// The absolute URL a relative reference (`Patient/123`) means inside an entry whose `fullUrl` is the
/// absolute RESTful URL `full_url` (`http://example.org/fhir/Observation/1` gives
/// `http://example.org/fhir/Patient/123`); `None` when either is not of that form.
pub(crate) fn resolve_relative(reference: &str, full_url: &str) -> Option<String> {
    if reference.contains(':') || reference.split('/').count() != 2 {
        return None;
    }
    if !(full_url.starts_with("http://") || full_url.starts_with("https://")) {
        return None;
    }
    let mut segments = full_url.rsplitn(3, '/');
    let (_id, _type_name, base) = (segments.next()?, segments.next()?, segments.next()?);
    Some(format!("{base}/{reference}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_reference_is_visited_with_its_location() {
        let mut resource = json!({
            "resourceType": "ImagingStudy",
            "subject": {"reference": "urn:uuid:1"},
            "extension": [{"url": "x", "valueReference": {"reference": "urn:uuid:2"}}],
            "contained": [{"resourceType": "Practitioner", "id": "p",
                           "extension": [{"url": "y", "valueReference": {"reference": "urn:uuid:1"}}]}],
            "series": [{"performer": [{"actor": {"reference": "#p"}}]}]
        });
        let mut seen = Vec::new();
        rewrite::<()>(
            &mut resource,
            &mut |reference, path| {
                seen.push(format!("{path}={reference}"));
                Ok(reference.strip_prefix("urn:uuid:").map(|id| format!("Patient/{id}")))
            },
            &|_| None,
        )
        .unwrap();
        seen.sort();
        assert_eq!(
            seen,
            [
                "contained[0].extension[0].valueReference.reference=urn:uuid:1",
                "extension[0].valueReference.reference=urn:uuid:2",
                "series[0].performer[0].actor.reference=#p",
                "subject.reference=urn:uuid:1",
            ]
        );
        assert_eq!(resource["subject"]["reference"], "Patient/1");
        assert_eq!(
            resource["contained"][0]["extension"][0]["valueReference"]["reference"],
            "Patient/1"
        );
        assert_eq!(resource["series"][0]["performer"][0]["actor"]["reference"], "#p");
    }

    #[test]
    fn attachment_urls_and_narrative_links_are_rewritten_when_known() {
        let mut resource = json!({
            "text": {"status": "generated",
                     "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><a href=\"urn:uuid:9\">x</a><img src=\"other\"/></div>"},
            "presentedForm": [{"url": "urn:uuid:9"}, {"url": "http://elsewhere.example/x"}]
        });
        let known = |url: &str| (url == "urn:uuid:9").then(|| "Binary/9".to_owned());
        rewrite::<()>(&mut resource, &mut |_, _| Ok(None), &known).unwrap();
        assert_eq!(
            resource["text"]["div"],
            "<div xmlns=\"http://www.w3.org/1999/xhtml\"><a href=\"Binary/9\">x</a><img src=\"other\"/></div>"
        );
        assert_eq!(resource["presentedForm"][0]["url"], "Binary/9");
        assert_eq!(resource["presentedForm"][1]["url"], "http://elsewhere.example/x");
    }

    #[test]
    fn conditional_and_relative_references_are_recognised() {
        assert_eq!(
            conditional("Patient?identifier=http://x|1"),
            Some(("Patient", "identifier=http://x|1"))
        );
        assert_eq!(conditional("http://x/Patient?a=b"), None);
        assert_eq!(conditional("Patient/1"), None);
        assert_eq!(
            resolve_relative("Patient/123", "http://example.org/fhir/Observation/1").as_deref(),
            Some("http://example.org/fhir/Patient/123")
        );
        assert_eq!(resolve_relative("Patient/123", "urn:uuid:1"), None);
        assert_eq!(resolve_relative("urn:uuid:1", "http://example.org/fhir/Observation/1"), None);
    }
}
