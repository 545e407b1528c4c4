//! Practitioner eligibility for `user/` scopes: the access policy (`--access-policy`, [`AccessPolicy`]) says
//! which qualifications may read clinical records, and the token's `fhirUser` (a Practitioner, or a
//! PractitionerRole's practitioner) is checked against the stored Practitioner on every request that holds
//! `user/` scopes (looked up anew each time, so an update of the Practitioner, such as a licence that ends
//! or an `active: false`, takes effect on the next request).
//!
//! A rule admits a Practitioner that is not `active: false` and holds, with a period covering now (an
//! absent period, start or end is open), an `identifier` of the rule's `system`, or a `qualification`
//! whose `identifier` has that system; a rule with a `qualification` code (`system|code`) needs a
//! `qualification` with that code among its `code.coding` (and, when the rule also names a `system`, an
//! identifier of that system on the same qualification), within the qualification's period.

use cdr_interactions::{Engine, InteractionError};
use cdr_model::Instant;
use serde_json::Value;

/// One kind of qualification the policy admits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EligibleQualification {
    /// What it is, for messages (`physician (CPSO licence)`).
    pub name: String,
    /// The identifier system of the licence or registration (a college's naming system).
    pub system: Option<String>,
    /// A qualification code, `(system, code)`.
    pub code: Option<(String, String)>,
}

/// Which practitioners `user/` scopes grant access to clinical records for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccessPolicy {
    pub eligible: Vec<EligibleQualification>,
}

impl AccessPolicy {
    /// The policy of a JSON document:
    /// `{"eligible": [{"name": "...", "system": "...", "qualification": "system|code"}, ...]}`, each rule
    /// with a `system`, a `qualification`, or both.
    ///
    /// # Errors
    /// What is wrong with the document, for the operator.
    pub fn from_json(document: &Value) -> Result<AccessPolicy, String> {
        let rules = document
            .get("eligible")
            .and_then(Value::as_array)
            .ok_or("the access policy needs an 'eligible' array of rules")?;
        let mut eligible = Vec::with_capacity(rules.len());
        for (index, rule) in rules.iter().enumerate() {
            let text = |name: &str| -> Result<Option<String>, String> {
                match rule.get(name) {
                    None => Ok(None),
                    Some(Value::String(text)) if !text.is_empty() => Ok(Some(text.clone())),
                    Some(_) => Err(format!("eligible[{index}].{name} must be a non-empty string")),
                }
            };
            if let Some(object) = rule.as_object()
                && let Some(unknown) = object
                    .keys()
                    .find(|key| !["name", "system", "qualification"].contains(&key.as_str()))
            {
                return Err(format!(
                    "eligible[{index}]: unknown key '{unknown}' (known: name, system, qualification)"
                ));
            }
            let name = text("name")?.ok_or(format!("eligible[{index}] needs a 'name'"))?;
            let system = text("system")?;
            let code = match text("qualification")? {
                None => None,
                Some(token) => match token.split_once('|') {
                    Some((system, code)) if !system.is_empty() && !code.is_empty() => {
                        Some((system.to_owned(), code.to_owned()))
                    }
                    _ => {
                        return Err(format!(
                            "eligible[{index}].qualification must be 'system|code', not '{token}'"
                        ));
                    }
                },
            };
            if system.is_none() && code.is_none() {
                return Err(format!(
                    "eligible[{index}] ('{name}') needs a 'system', a 'qualification', or both"
                ));
            }
            eligible.push(EligibleQualification { name, system, code });
        }
        Ok(AccessPolicy { eligible })
    }

    /// Why the Practitioner `practitioner` (its JSON) may not use `user/` scopes, or `None` when a rule
    /// admits it at `now`.
    fn refusal(&self, address: &str, practitioner: &Value, now: Instant) -> Option<String> {
        if practitioner.get("active") == Some(&Value::Bool(false)) {
            return Some(format!("{address} is not active"));
        }
        let identifiers = array(practitioner, "identifier");
        let qualifications = array(practitioner, "qualification");
        let mut lapsed = Vec::new();
        for rule in &self.eligible {
            let admitted = match (&rule.system, &rule.code) {
                (Some(system), None) => {
                    identifiers.iter().any(|identifier| {
                        holds(identifier, system, identifier, now, &rule.name, &mut lapsed)
                    }) || qualifications.iter().any(|qualification| {
                        array(qualification, "identifier").iter().any(|identifier| {
                            holds(identifier, system, qualification, now, &rule.name, &mut lapsed)
                        })
                    })
                }
                (system, Some((code_system, code))) => qualifications.iter().any(|qualification| {
                    let coded = array(qualification.get("code").unwrap_or(&Value::Null), "coding")
                        .iter()
                        .any(|coding| {
                            text_of(coding, "system") == Some(code_system)
                                && text_of(coding, "code") == Some(code)
                        });
                    let identified = system.as_deref().is_none_or(|system| {
                        array(qualification, "identifier").iter().any(|identifier| {
                            text_of(identifier, "system") == Some(system)
                                && current(identifier, now)
                        })
                    });
                    if coded && identified && !current(qualification, now) {
                        lapsed
                            .push(format!("its {} qualification is outside its period", rule.name));
                    }
                    coded && identified && current(qualification, now)
                }),
                (None, None) => false,
            };
            if admitted {
                return None;
            }
        }
        let names: Vec<&str> = self.eligible.iter().map(|rule| rule.name.as_str()).collect();
        let mut reason = format!(
            "{address} holds no current qualification that the access policy admits for reading clinical \
             records ({})",
            names.join(", ")
        );
        if !lapsed.is_empty() {
            lapsed.dedup();
            reason.push_str(": ");
            reason.push_str(&lapsed.join("; "));
        }
        Some(reason)
    }
}

/// Whether `identifier` is of `system` with a period (its own, and that of `holder` when it is a
/// qualification) covering `now`; a lapsed one is noted in `lapsed`.
fn holds(
    identifier: &Value,
    system: &str,
    holder: &Value,
    now: Instant,
    name: &str,
    lapsed: &mut Vec<String>,
) -> bool {
    if text_of(identifier, "system") != Some(system) {
        return false;
    }
    if current(identifier, now) && current(holder, now) {
        return true;
    }
    let value = text_of(identifier, "value").unwrap_or("?");
    lapsed.push(format!("its {name} {value} is outside its period"));
    false
}

fn array<'a>(value: &'a Value, name: &str) -> &'a [Value] {
    value.get(name).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn text_of<'a>(value: &'a Value, name: &str) -> Option<&'a str> {
    value.get(name).and_then(Value::as_str)
}

/// Whether the `period` of `element` covers `now` (an absent period or bound is open; an unreadable bound
/// covers nothing).
fn current(element: &Value, now: Instant) -> bool {
    let Some(period) = element.get("period") else { return true };
    let micros = now.millis() * 1_000;
    let bound =
        |name: &str, check: &dyn Fn(cdr_search::DateRange) -> bool| match text_of(period, name) {
            None => true,
            Some(text) => cdr_search::parse_date(text).is_ok_and(|date| check(date.range)),
        };
    bound("start", &|range| range.low <= micros) && bound("end", &|range| micros < range.high)
}

/// Why the `fhirUser` of a token with `user/` scopes may not use them, or `None` when it may.
///
/// # Errors
/// A storage failure while reading the Practitioner or PractitionerRole.
pub(crate) async fn check(
    engine: &Engine,
    policy: Option<&AccessPolicy>,
    fhir_user: Option<&str>,
    base: &str,
) -> Result<Option<String>, InteractionError> {
    let Some(policy) = policy else {
        return Ok(Some(
            "the token's user/ scopes grant nothing: this server has no access policy (--access-policy) \
             saying which practitioners may read clinical records"
                .to_owned(),
        ));
    };
    let Some(fhir_user) = fhir_user else {
        return Ok(Some(
            "the token's user/ scopes need its fhirUser claim, naming a Practitioner or \
             PractitionerRole, and it has none"
                .to_owned(),
        ));
    };
    // `Type/id`, relative or under this server's base: a Practitioner of another server is not this one's.
    let relative =
        fhir_user.strip_prefix(base).and_then(|rest| rest.strip_prefix('/')).unwrap_or(fhir_user);
    let (resource_type, id) = relative.split_once('/').unwrap_or_default();
    let practitioner_id = match resource_type {
        "Practitioner" => id.to_owned(),
        "PractitionerRole" => {
            let Some(role) = stored(engine, "PractitionerRole", id).await? else {
                return Ok(Some(format!(
                    "the token's fhirUser {fhir_user} is not a PractitionerRole this server holds"
                )));
            };
            if role.get("active") == Some(&Value::Bool(false)) {
                return Ok(Some(format!("PractitionerRole/{id} is not active")));
            }
            let reference = role.pointer("/practitioner/reference").and_then(Value::as_str);
            match reference.and_then(|reference| reference.strip_prefix("Practitioner/")) {
                Some(practitioner) => practitioner.to_owned(),
                None => {
                    return Ok(Some(format!(
                        "PractitionerRole/{id} names no Practitioner (practitioner.reference)"
                    )));
                }
            }
        }
        _ => {
            return Ok(Some(format!(
                "the token's fhirUser {fhir_user} is not a Practitioner or PractitionerRole of this server \
                 ({base}), which user/ scopes need"
            )));
        }
    };
    let address = format!("Practitioner/{practitioner_id}");
    let Some(practitioner) = stored(engine, "Practitioner", &practitioner_id).await? else {
        return Ok(Some(format!(
            "the token's fhirUser names {address}, which is not a Practitioner this server holds"
        )));
    };
    Ok(policy
        .refusal(&address, &practitioner, Instant::now())
        .map(|reason| format!("the token's user/ scopes grant nothing: {reason}")))
}

/// The current version of `type/id`, `None` when there is none (unknown, deleted, or not an id).
async fn stored(
    engine: &Engine,
    resource_type: &str,
    id: &str,
) -> Result<Option<Value>, InteractionError> {
    match engine.read(resource_type, id).await {
        Ok(version) => Ok(version.body.and_then(|body| serde_json::from_str(&body).ok())),
        Err(
            InteractionError::NotFound(_)
            | InteractionError::Gone { .. }
            | InteractionError::Invalid(_),
        ) => Ok(None),
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const CPSO: &str = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-license-physician";

    fn policy() -> AccessPolicy {
        AccessPolicy::from_json(&json!({"eligible": [
            {"name": "physician (CPSO licence)", "system": CPSO},
            {"name": "resident", "system": CPSO, "qualification": "http://example.org/role|resident"},
        ]}))
        .unwrap()
    }

    fn now() -> Instant {
        Instant::parse_fhir("2026-06-01T00:00:00Z").unwrap()
    }

    #[test]
    fn licensed_practitioners_are_admitted_while_their_licence_runs() {
        let policy = policy();
        let licensed = json!({"identifier": [{"system": CPSO, "value": "12345", "period": {"start": "2020-01-01"}}]});
        assert_eq!(policy.refusal("Practitioner/a", &licensed, now()), None);
        let expired = json!({"identifier": [{"system": CPSO, "value": "12345", "period": {"end": "2025-12-31"}}]});
        let reason = policy.refusal("Practitioner/a", &expired, now()).unwrap();
        assert!(reason.contains("12345 is outside its period"), "{reason}");
        let inactive = json!({"active": false, "identifier": [{"system": CPSO, "value": "1"}]});
        assert!(policy.refusal("Practitioner/a", &inactive, now()).unwrap().contains("not active"));
        let extern_ =
            json!({"identifier": [{"system": "http://example.org/students", "value": "9"}]});
        assert!(
            policy
                .refusal("Practitioner/a", &extern_, now())
                .unwrap()
                .contains("no current qualification")
        );
        let resident = json!({"qualification": [{
            "code": {"coding": [{"system": "http://example.org/role", "code": "resident"}]},
            "identifier": [{"system": CPSO, "value": "R1"}],
            "period": {"start": "2025-07-01", "end": "2027-06-30"},
        }]});
        assert_eq!(policy.refusal("Practitioner/a", &resident, now()), None);
    }

    #[test]
    fn malformed_policies_are_refused() {
        for document in [
            json!({}),
            json!({"eligible": [{"system": CPSO}]}),
            json!({"eligible": [{"name": "x"}]}),
            json!({"eligible": [{"name": "x", "qualification": "nocode"}]}),
            json!({"eligible": [{"name": "x", "system": CPSO, "period": "now"}]}),
        ] {
            assert!(AccessPolicy::from_json(&document).is_err(), "{document}");
        }
    }
}
