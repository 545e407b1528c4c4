//! The corrections of `data/overlay.json`, applied over the official R4 SearchParameters before they are read.
//!
//! A few published R4 definitions are wrong (a composite whose components select each other's element); the
//! official file stays as published and each correction replaces one element of one definition, stating the
//! element's official value, the corrected one and why. A correction applies only if the official file holds
//! exactly the stated value, so the overlay cannot drift from the file it corrects.

use serde_json::Value;

use crate::registry::RegistryError;

const OVERLAY: &str = include_str!("../data/overlay.json");

/// One correction of `data/overlay.json`.
#[derive(Debug)]
pub(crate) struct Correction {
    /// The canonical URL of the corrected SearchParameter.
    pub(crate) url: String,
    /// The replaced element, such as `component`.
    pub(crate) element: String,
    /// Its value in the official file.
    pub(crate) official: Value,
    /// Its corrected value.
    pub(crate) corrected: Value,
}

/// The corrections of `data/overlay.json`.
pub(crate) fn corrections() -> Result<Vec<Correction>, RegistryError> {
    let invalid =
        |message: String| RegistryError::Overlay { url: "data/overlay.json".to_owned(), message };
    let overlay: Value =
        serde_json::from_str(OVERLAY).map_err(|error| invalid(error.to_string()))?;
    let entries = overlay
        .get("corrections")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("no 'corrections' array".to_owned()))?;
    entries
        .iter()
        .map(|entry| {
            let text = |name: &str| entry.get(name).and_then(Value::as_str).map(str::to_owned);
            let url =
                text("url").ok_or_else(|| invalid("a correction without 'url'".to_owned()))?;
            let missing = |name: &str| RegistryError::Overlay {
                url: url.clone(),
                message: format!("the correction has no '{name}'"),
            };
            text("reason").ok_or_else(|| missing("reason"))?;
            Ok(Correction {
                element: text("element").ok_or_else(|| missing("element"))?,
                official: entry.get("official").cloned().ok_or_else(|| missing("official"))?,
                corrected: entry.get("corrected").cloned().ok_or_else(|| missing("corrected"))?,
                url,
            })
        })
        .collect()
}

/// Applies every correction to `bundle`, the official SearchParameter Bundle.
///
/// # Errors
/// When a correction names no definition of the Bundle, or the definition's element is not the stated official
/// value.
pub(crate) fn apply(bundle: &mut Value) -> Result<(), RegistryError> {
    for correction in corrections()? {
        let refused = |message: &str| RegistryError::Overlay {
            url: correction.url.clone(),
            message: message.to_owned(),
        };
        let definition = bundle
            .get_mut("entry")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.get_mut("resource"))
            .find(|resource| {
                resource.get("url").and_then(Value::as_str) == Some(correction.url.as_str())
            })
            .and_then(Value::as_object_mut)
            .ok_or_else(|| refused("no official definition has this url"))?;
        if definition.get(&correction.element) != Some(&correction.official) {
            return Err(refused("the official definition does not hold the stated value"));
        }
        definition.insert(correction.element.clone(), correction.corrected.clone());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every correction changes its definition, and the official value it states is the file's (`apply` on
    /// the official Bundle succeeds); a correction that no longer matches the file is refused.
    #[test]
    fn corrections_match_the_official_file_and_change_it() {
        let corrections = corrections().unwrap();
        assert!(!corrections.is_empty());
        for correction in &corrections {
            assert_ne!(correction.official, correction.corrected, "{}", correction.url);
        }
        let official: Value =
            serde_json::from_str(include_str!("../data/search-parameters.json")).unwrap();
        let mut bundle = official.clone();
        apply(&mut bundle).unwrap();
        assert_ne!(bundle, official);
        let mut corrected_twice = bundle.clone();
        let error = apply(&mut corrected_twice).unwrap_err();
        assert!(
            matches!(&error, RegistryError::Overlay { url, .. } if *url == corrections[0].url),
            "{error}"
        );
    }
}
