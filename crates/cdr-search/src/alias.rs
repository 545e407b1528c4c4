//! Ontario MI spellings of search parameters, mapped to the standard R4 ones.
//!
//! The Ontario Medical Imaging guide (spec/ONTARIO-MI.md §2.3 and §8 item 25) writes some chained parameters in a
//! non-standard way; the server accepts them as aliases of the standard parameters:
//!
//! | Type | Guide spelling | Standard R4 code |
//! |---|---|---|
//! | DiagnosticReport | `basedOn` | `based-on` |
//! | ServiceRequest | `basedOn` | `based-on` |
//! | ImagingStudy | `basedOn` | `basedon` |
//! | Patient | `birthDate` (as in `patient.birthDate`) | `birthdate` |
//! | DiagnosticReport | `imagingStudy` (IHE RAD-143 `imagingStudy.identifier`) | `imaging-study` (a custom parameter, only when loaded) |
//!
//! The resource type `ServiceRquest`, misspelt so in the guide's `basedOn:ServiceRquest.code-category`, is read
//! as `ServiceRequest`.
//! An alias applies only when the name is not itself a parameter of the type.

/// `(resource type, guide spelling, standard code)`.
const PARAM_ALIASES: [(&str, &str, &str); 5] = [
    ("DiagnosticReport", "basedOn", "based-on"),
    ("ServiceRequest", "basedOn", "based-on"),
    ("ImagingStudy", "basedOn", "basedon"),
    ("Patient", "birthDate", "birthdate"),
    ("DiagnosticReport", "imagingStudy", "imaging-study"),
];

/// `(guide spelling, resource type)`.
const TYPE_ALIASES: [(&str, &str); 1] = [("ServiceRquest", "ServiceRequest")];

/// The standard code the guide spelling `code` stands for on `resource_type`, if it is an alias.
pub(crate) fn standard_param_code(resource_type: &str, code: &str) -> Option<&'static str> {
    PARAM_ALIASES
        .iter()
        .find(|(alias_type, alias, _)| *alias_type == resource_type && *alias == code)
        .map(|(_, _, standard)| *standard)
}

/// The resource type name the guide spelling `name` stands for, if it is an alias.
pub(crate) fn standard_type_name(name: &str) -> Option<&'static str> {
    TYPE_ALIASES.iter().find(|(alias, _)| *alias == name).map(|(_, standard)| *standard)
}
