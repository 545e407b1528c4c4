//! SMART scopes (App Launch 2.x §3): v1 `context/Type.read|write|*` and v2 `context/Type.cruds[?query]`, and
//! what a set of granted scopes allows.

use std::fmt;

/// One of the v2 permission letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Letter {
    Create,
    Read,
    Update,
    Delete,
    Search,
}

impl Letter {
    /// In the order v2 requires them to be written (`cruds`).
    const ALL: [Letter; 5] =
        [Letter::Create, Letter::Read, Letter::Update, Letter::Delete, Letter::Search];

    fn char(self) -> char {
        match self {
            Letter::Create => 'c',
            Letter::Read => 'r',
            Letter::Update => 'u',
            Letter::Delete => 'd',
            Letter::Search => 's',
        }
    }

    fn bit(self) -> u8 {
        1 << (Letter::ALL.iter().position(|letter| *letter == self).unwrap_or_default())
    }
}

impl fmt::Display for Letter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.char())
    }
}

/// Whose data a scope is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Context {
    Patient,
    User,
    System,
}

/// A resource scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scope {
    pub(crate) context: Context,
    /// `None` for `*`.
    pub(crate) resource_type: Option<String>,
    letters: u8,
    /// The search parameters of a v2 granular scope (`?category=...`), in their order; empty when none.
    pub(crate) restriction: Vec<(String, String)>,
}

impl Scope {
    /// A resource scope, `Ok(None)` for a scope that is not about resources (`openid`, `fhirUser`,
    /// `launch/patient`, `offline_access`, ...), or why it is malformed.
    pub(crate) fn parse(text: &str) -> Result<Option<Scope>, String> {
        let Some((context, rest)) = text.split_once('/') else { return Ok(None) };
        let context = match context {
            "patient" => Context::Patient,
            "user" => Context::User,
            "system" => Context::System,
            _ => return Ok(None),
        };
        let Some((resource_type, permissions)) = rest.split_once('.') else {
            // `launch/patient` and the like have no `.`.
            return Ok(None);
        };
        let valid_type = resource_type == "*"
            || (resource_type.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
                && resource_type.bytes().all(|b| b.is_ascii_alphanumeric()));
        if !valid_type {
            return Err(format!("scope '{text}': '{resource_type}' is not a resource type or *"));
        }
        let (permissions, query) = match permissions.split_once('?') {
            Some((permissions, query)) => (permissions, Some(query)),
            None => (permissions, None),
        };
        let letters = match permissions {
            "read" => Letter::Read.bit() | Letter::Search.bit(),
            "write" => Letter::Create.bit() | Letter::Update.bit() | Letter::Delete.bit(),
            "*" => Letter::ALL.iter().fold(0, |bits, letter| bits | letter.bit()),
            letters => v2_letters(letters)
                .ok_or_else(|| format!("scope '{text}': '{letters}' is not read, write, * or a subset of cruds in that order"))?,
        };
        let v1 = matches!(permissions, "read" | "write" | "*");
        let restriction: Vec<(String, String)> = match query {
            None => Vec::new(),
            Some(_) if v1 => {
                return Err(format!(
                    "scope '{text}': only v2 (cruds) scopes take search parameters"
                ));
            }
            Some(query) => form_urlencoded::parse(query.as_bytes())
                .map(|(name, value)| (name.into_owned(), value.into_owned()))
                .collect(),
        };
        if query.is_some() && restriction.is_empty() {
            return Err(format!("scope '{text}': '?' without search parameters"));
        }
        let resource_type = (resource_type != "*").then(|| resource_type.to_owned());
        Ok(Some(Scope { context, resource_type, letters, restriction }))
    }

    pub(crate) fn has(&self, letter: Letter) -> bool {
        self.letters & letter.bit() != 0
    }

    /// Whether this scope's type covers `resource_type` (`None`: every type). A wildcard covers every type
    /// but AuditEvent: reading the audit trail needs a scope that names it (`system/AuditEvent.rs`).
    pub(crate) fn covers_type(&self, resource_type: Option<&str>) -> bool {
        match (&self.resource_type, resource_type) {
            (None, Some("AuditEvent")) => false,
            (None, _) => true,
            (Some(own), Some(wanted)) => own == wanted,
            (Some(_), None) => false,
        }
    }

    /// Whether this scope grants at least what `other` asks: same context, a type that covers it, its
    /// letters, and no restriction or the same one.
    pub(crate) fn covers(&self, other: &Scope) -> bool {
        self.context == other.context
            && self.covers_type(other.resource_type.as_deref())
            && self.letters & other.letters == other.letters
            && (self.restriction.is_empty() || self.restriction == other.restriction)
    }
}

fn v2_letters(text: &str) -> Option<u8> {
    let mut bits = 0;
    let mut next = 0;
    for char in text.chars() {
        let position = Letter::ALL[next..].iter().position(|letter| letter.char() == char)?;
        bits |= Letter::ALL[next + position].bit();
        next += position + 1;
    }
    (bits != 0).then_some(bits)
}

/// What the granted scopes allow for one resource type and letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Allowance {
    /// An unrestricted scope allows it.
    Unrestricted,
    /// Only granular scopes allow it, each with its search parameters: a resource is allowed when it
    /// matches all the parameters of one of them.
    Restricted(Vec<Vec<(String, String)>>),
    Denied,
}

/// The resource scopes of a token that this server honours. `system/` scopes always; `patient/` scopes when
/// the token has a patient context (the request is then confined to that patient's compartment); `user/`
/// scopes when the `fhirUser` is an eligible practitioner. The middleware withholds the others, with why.
#[derive(Debug, Clone, Default)]
pub(crate) struct Grants {
    scopes: Vec<Scope>,
    /// Why some of the token's scopes grant nothing (said in refusals).
    pub(crate) withheld: Vec<String>,
}

impl Grants {
    /// The resource scopes of a space-separated scope string; malformed resource scopes grant nothing.
    pub(crate) fn from_scope_text(text: &str) -> Grants {
        let scopes = text
            .split_ascii_whitespace()
            .filter_map(|text| Scope::parse(text).ok().flatten())
            .collect();
        Grants { scopes, withheld: Vec::new() }
    }

    /// Whether the token holds a resource scope of `context`.
    pub(crate) fn has(&self, context: Context) -> bool {
        self.scopes.iter().any(|scope| scope.context == context)
    }

    /// Drops the scopes of `context`, which grant nothing for `reason`.
    pub(crate) fn withhold(&mut self, context: Context, reason: String) {
        self.scopes.retain(|scope| scope.context != context);
        self.withheld.push(reason);
    }

    /// What the scopes allow on `resource_type` (`None`: every type at once, as a system-wide search or
    /// history needs).
    pub(crate) fn allowance(&self, resource_type: Option<&str>, letter: Letter) -> Allowance {
        let mut restrictions = Vec::new();
        for scope in self.scopes.iter().filter(|scope| scope.has(letter)) {
            if !scope.covers_type(resource_type) {
                continue;
            }
            if scope.restriction.is_empty() {
                return Allowance::Unrestricted;
            }
            restrictions.push(scope.restriction.clone());
        }
        if restrictions.is_empty() {
            Allowance::Denied
        } else {
            Allowance::Restricted(restrictions)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(text: &str) -> Scope {
        Scope::parse(text).unwrap().unwrap()
    }

    #[test]
    fn v1_and_v2_scopes_parse_to_letters() {
        let read = scope("system/*.read");
        assert!(read.has(Letter::Read) && read.has(Letter::Search) && !read.has(Letter::Create));
        let write = scope("user/DiagnosticReport.write");
        assert_eq!(write.context, Context::User);
        assert!(
            write.has(Letter::Create) && write.has(Letter::Update) && write.has(Letter::Delete)
        );
        assert!(!write.has(Letter::Read));
        let all = scope("patient/*.*");
        assert!(Letter::ALL.iter().all(|letter| all.has(*letter)));
        let cud = scope("system/Observation.cud");
        assert!(cud.has(Letter::Delete) && !cud.has(Letter::Search));
        let granular = scope("patient/DiagnosticReport.rs?category=http://loinc.org|LP29684-5");
        assert_eq!(
            granular.restriction,
            vec![("category".to_owned(), "http://loinc.org|LP29684-5".to_owned())]
        );
    }

    #[test]
    fn malformed_and_other_scopes() {
        for text in ["openid", "fhirUser", "launch/patient", "offline_access", "online_access"] {
            assert_eq!(Scope::parse(text), Ok(None), "{text}");
        }
        for text in [
            "system/*.rc",
            "system/*.crr",
            "system/*.x",
            "system/*.",
            "system/patient.read",
            "system/*.read?category=x",
            "system/*.rs?",
        ] {
            assert!(Scope::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn withheld_scopes_grant_nothing() {
        let mut grants = Grants::from_scope_text("openid patient/*.read system/ImagingStudy.rs");
        assert!(grants.has(Context::Patient) && !grants.has(Context::User));
        assert_eq!(grants.allowance(Some("Patient"), Letter::Read), Allowance::Unrestricted);
        grants.withhold(Context::Patient, "no patient context".to_owned());
        assert_eq!(grants.withheld, ["no patient context"]);
        assert_eq!(grants.allowance(Some("Patient"), Letter::Read), Allowance::Denied);
        assert_eq!(grants.allowance(Some("ImagingStudy"), Letter::Read), Allowance::Unrestricted);
        assert_eq!(grants.allowance(Some("ImagingStudy"), Letter::Update), Allowance::Denied);
        assert_eq!(grants.allowance(None, Letter::Search), Allowance::Denied);
        let star = Grants::from_scope_text("system/*.s");
        assert_eq!(star.allowance(None, Letter::Search), Allowance::Unrestricted);
    }

    #[test]
    fn covering() {
        assert!(scope("system/*.cruds").covers(&scope("system/Patient.rs")));
        assert!(scope("system/*.read").covers(&scope("system/Patient.s")));
        assert!(!scope("system/Patient.rs").covers(&scope("system/*.rs")));
        assert!(!scope("system/Patient.r").covers(&scope("system/Patient.rs")));
        assert!(
            !scope("system/DiagnosticReport.rs?category=a")
                .covers(&scope("system/DiagnosticReport.rs"))
        );
        assert!(
            scope("system/DiagnosticReport.rs")
                .covers(&scope("system/DiagnosticReport.rs?category=a"))
        );
    }
}
