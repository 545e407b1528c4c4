//! The grammar of a literal `Reference.reference` (R4 references.html#literal): `[type]/[id]`,
//! `[type]/[id]/_history/[vid]`, an absolute `http(s)` URL, `#id` (or `#`) for a contained resource (or the
//! container), and `urn:uuid:`/`urn:oid:`, which R4 defines for references between the entries of a Bundle.
//!
//! The validator cannot tell whether the resource it checks came from a Bundle, so two Bundle forms are judged by
//! their grammar only. A `urn:` reference is accepted wherever it occurs: on a create outside a Bundle it stays
//! unresolved, which R4 allows of any reference. A conditional reference (`[type]?[search parameters]`) must name
//! a resource type and some criteria; a transaction validates its entries before it resolves their conditional
//! references, so the validator passes them, and the engine decides where they are allowed.

use cdr_model::LogicalId;

/// Checks `reference`; `is_type` says whether a name is a resource type. `Some(message)` says what is wrong.
pub(crate) fn check(reference: &str, is_type: impl Fn(&str) -> bool) -> Option<String> {
    let problem = if let Some(local) = reference.strip_prefix('#') {
        (!local.is_empty() && !is_id(local))
            .then_some("'#' must be followed by a contained resource's id")
    } else if let Some(uuid) = reference.strip_prefix("urn:uuid:") {
        (!is_uuid(uuid)).then_some("a urn:uuid: reference needs a lower-case UUID")
    } else if let Some(oid) = reference.strip_prefix("urn:oid:") {
        (!is_oid(oid))
            .then_some("a urn:oid: reference needs an OID (0, 1 or 2, then .-separated numbers)")
    } else if let Some(rest) =
        reference.strip_prefix("https://").or_else(|| reference.strip_prefix("http://"))
    {
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        (host.is_empty() || rest.chars().any(|c| c.is_whitespace() || c.is_control()))
            .then_some("an absolute reference needs a host and no white space")
    } else if let Some((type_name, query)) = reference.split_once('?') {
        (!is_type(type_name) || query.is_empty())
            .then_some("a conditional reference is [type]?[search parameters]")
    } else {
        relative(reference, &is_type)
    };
    problem.map(|problem| {
        format!(
            "invalid reference '{}': {problem}; expected [type]/[id], [type]/[id]/_history/[vid], an absolute \
             http(s) URL, #[id], urn:uuid:, urn:oid: or (in a transaction) [type]?[criteria]",
            shorten(reference)
        )
    })
}

/// `[type]/[id]` or `[type]/[id]/_history/[vid]`.
fn relative(reference: &str, is_type: &impl Fn(&str) -> bool) -> Option<&'static str> {
    let segments: Vec<&str> = reference.split('/').collect();
    let (type_name, id, version) = match segments.as_slice() {
        [type_name, id] => (*type_name, *id, None),
        [type_name, id, "_history", version] => (*type_name, *id, Some(*version)),
        _ => return Some("not a relative reference"),
    };
    if !is_type(type_name) {
        return Some("the first segment is not a resource type");
    }
    if !is_id(id) || version.is_some_and(|version| !is_id(version)) {
        return Some("an id is 1 to 64 of A-Z, a-z, 0-9, '-' and '.'");
    }
    None
}

fn is_id(text: &str) -> bool {
    LogicalId::parse(text).is_ok()
}

/// R4's `uuid` regex: `[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`.
fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(group, length)| {
            group.len() == length
                && group.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
        })
}

/// R4's `oid` regex: `[0-2](\.(0|[1-9][0-9]*))+`.
fn is_oid(text: &str) -> bool {
    let mut arcs = text.split('.');
    let first_ok = matches!(arcs.next(), Some("0" | "1" | "2"));
    let mut rest = arcs.peekable();
    first_ok
        && rest.peek().is_some()
        && rest.all(|arc| {
            !arc.is_empty()
                && arc.bytes().all(|byte| byte.is_ascii_digit())
                && (arc == "0" || !arc.starts_with('0'))
        })
}

fn shorten(text: &str) -> &str {
    text.char_indices().nth(80).map_or(text, |(end, _)| &text[..end])
}

#[cfg(test)]
mod tests {
    use super::check;

    fn is_type(name: &str) -> bool {
        matches!(name, "Patient" | "Organization")
    }

    #[test]
    fn r4_literal_references_pass() {
        for reference in [
            "Patient/123",
            "Patient/a-b.C",
            "Patient/123/_history/2",
            "http://example.org/fhir/Patient/123",
            "https://example.org/fhir/Patient/123/_history/1",
            "https://example.org",
            "#p1",
            "#",
            "urn:uuid:0f5e2a7c-2a4e-4c1b-9d55-2b6f3c1e9a10",
            "urn:oid:1.2.840.10008.1.2",
            "Patient?identifier=urn:x|1",
        ] {
            assert_eq!(check(reference, is_type), None, "{reference}");
        }
    }

    #[test]
    fn malformed_references_are_refused() {
        let cases = [
            ("Patient/not a valid id!", "an id is"),
            ("Patient/", "an id is"),
            (&format!("Patient/{}", "x".repeat(65)), "an id is"),
            ("Patient/1/_history/", "an id is"),
            ("Patient/1/_history/a b", "an id is"),
            ("Patient/1/2", "not a relative reference"),
            ("Patient", "not a relative reference"),
            ("fhir/Patient/1", "not a relative reference"),
            ("Nonsense/1", "not a resource type"),
            ("patient/1", "not a resource type"),
            ("#a b", "contained resource's id"),
            ("urn:uuid:0F5E2A7C-2A4E-4C1B-9D55-2B6F3C1E9A10", "lower-case UUID"),
            ("urn:uuid:1234", "lower-case UUID"),
            ("urn:oid:3.1", "OID"),
            ("urn:oid:1", "OID"),
            ("urn:oid:1.02", "OID"),
            ("http://", "needs a host"),
            ("https://example.org/a b", "no white space"),
            ("Nonsense?x=1", "conditional reference is"),
            ("Patient?", "conditional reference is"),
        ];
        for (reference, expected) in cases {
            let problem = check(reference, is_type).unwrap_or_default();
            assert!(problem.contains(expected), "{reference}: {problem:?}");
        }
    }
}
