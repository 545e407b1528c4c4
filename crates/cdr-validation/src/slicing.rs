//! Slicing: assigns each repetition of a sliced element to the slice its discriminators select, and
//! checks closed/open rules, order and slice cardinalities. A slice that is sliced again
//! (`Patient.identifier:JHN` re-sliced into `Patient.identifier:JHN/ONHCN`) distributes its own items
//! among its reslices, whose rules and cardinalities are checked within it.
//!
//! Discriminators supported: `value` and `pattern` (fixed[x], pattern[x] or a required binding at the
//! path), `exists`, `type` on `$this`, and `profile`. Paths are dotted element names with `$this` and
//! `extension('url')`. A discriminator that cannot be evaluated (e.g. `resolve()`) turns the slicing
//! check into an information issue rather than a guess.

use std::sync::Arc;

use cdr_model::{IssueSeverity, IssueType};
use serde_json::Value;

use crate::structure::{CompiledSd, Discriminator, DiscriminatorKind, Slicing, SlicingRules};
use crate::terminology::Membership;
use crate::validator::{Walker, json_equal, matches_pattern};

const HL7_SD: &str = "http://hl7.org/fhir/StructureDefinition/";

impl Walker<'_> {
    /// For each item, the element (a slice, or the sliced element itself) it is validated against.
    pub(crate) fn slice_targets(
        &mut self,
        sd: &Arc<CompiledSd>,
        child: usize,
        values: &[&Value],
        type_code: Option<&str>,
    ) -> Vec<usize> {
        let items: Vec<(usize, &Value)> = values.iter().copied().enumerate().collect();
        self.assign_slices(sd, child, &items, type_code)
    }

    /// Assigns `items` (index in the property, value) to the slices of element `child`; a slice that
    /// is sliced again (`identifier:JHN` re-sliced into `identifier:JHN/ONHCN`) assigns its own items
    /// to its reslices, with their cardinalities checked among them.
    fn assign_slices(
        &mut self,
        sd: &Arc<CompiledSd>,
        child: usize,
        items: &[(usize, &Value)],
        type_code: Option<&str>,
    ) -> Vec<usize> {
        let elem = &sd.elements[child];
        let Some(slicing) = &elem.slicing else { return vec![child; items.len()] };
        // A resliced slice is named by its id (`Patient.identifier:JHN`).
        let sliced = if elem.slice_name.is_some() { &elem.id } else { &elem.path };
        if elem.slices.is_empty() {
            return vec![child; items.len()];
        }
        let mut assignments: Vec<Option<usize>> = Vec::with_capacity(items.len());
        // Slices whose discriminators could not be evaluated for some item: no errors about them.
        let mut uncertain = vec![false; elem.slices.len()];
        let mut uncertain_items = vec![false; items.len()];
        for (item, (_, value)) in items.iter().enumerate() {
            let mut assigned = None;
            for (position, &slice) in elem.slices.iter().enumerate() {
                match self.matches_slice(sd, slice, slicing, value, type_code) {
                    Some(true) => {
                        assigned = Some(position);
                        break;
                    }
                    Some(false) => {}
                    None => {
                        uncertain[position] = true;
                        uncertain_items[item] = true;
                    }
                }
            }
            assignments.push(assigned);
        }
        if uncertain.iter().any(|flag| *flag) {
            let message =
                format!("some slices of {sliced} could not be evaluated and were not checked");
            self.issue(IssueSeverity::Information, IssueType::NotSupported, message);
        }
        let mut counts = vec![0_u64; elem.slices.len()];
        let mut last_position = 0;
        let mut seen_unmatched = false;
        for (item, assigned) in assignments.iter().enumerate() {
            let base_len = self.path.len();
            self.path.push_str(&format!("[{}]", items[item].0));
            match assigned {
                Some(position) => {
                    counts[*position] += 1;
                    if slicing.ordered && *position < last_position {
                        self.error_here(format!(
                            "item is out of order for the ordered slicing of {sliced}"
                        ));
                    }
                    if slicing.rules == SlicingRules::OpenAtEnd && seen_unmatched {
                        self.error_here(format!("items not in a slice of {sliced} must come last"));
                    }
                    last_position = *position;
                }
                None => {
                    seen_unmatched = true;
                    if slicing.rules == SlicingRules::Closed && !uncertain_items[item] {
                        self.error_here(format!(
                            "item matches none of the slices of {sliced} (closed slicing)"
                        ));
                    }
                }
            }
            self.path.truncate(base_len);
        }
        for (position, &slice) in elem.slices.iter().enumerate() {
            if uncertain[position] {
                continue;
            }
            let slice_elem = &sd.elements[slice];
            let name = slice_elem.slice_name.as_deref().unwrap_or_default();
            let count = counts[position];
            if count < slice_elem.min {
                let message = format!(
                    "slice '{name}' of {sliced} requires at least {} item(s), found {count}",
                    slice_elem.min
                );
                self.issue(IssueSeverity::Error, IssueType::Required, message);
            }
            if let Some(max) = slice_elem.max
                && count > max
            {
                let message = format!(
                    "slice '{name}' of {sliced} allows at most {max} item(s), found {count}"
                );
                self.issue(IssueSeverity::Error, IssueType::Structure, message);
            }
        }
        let mut targets: Vec<usize> = assignments
            .into_iter()
            .map(|assigned| assigned.map_or(child, |position| elem.slices[position]))
            .collect();
        for &slice in &elem.slices {
            if sd.elements[slice].slicing.is_none() {
                continue;
            }
            let positions: Vec<usize> = (0..items.len()).filter(|&i| targets[i] == slice).collect();
            let members: Vec<(usize, &Value)> = positions.iter().map(|&i| items[i]).collect();
            let resliced = self.assign_slices(sd, slice, &members, type_code);
            for (position, target) in positions.into_iter().zip(resliced) {
                targets[position] = target;
            }
        }
        targets
    }

    fn error_here(&mut self, message: String) {
        self.issue(IssueSeverity::Error, IssueType::Structure, message);
    }

    /// Whether `value` belongs to `slice`; `None` when a discriminator cannot be evaluated.
    fn matches_slice(
        &self,
        sd: &Arc<CompiledSd>,
        slice: usize,
        slicing: &Slicing,
        value: &Value,
        type_code: Option<&str>,
    ) -> Option<bool> {
        if slicing.discriminators.is_empty() {
            return None;
        }
        for discriminator in &slicing.discriminators {
            if !self.matches_discriminator(sd, slice, discriminator, value, type_code)? {
                return Some(false);
            }
        }
        Some(true)
    }

    fn matches_discriminator(
        &self,
        sd: &Arc<CompiledSd>,
        slice: usize,
        discriminator: &Discriminator,
        value: &Value,
        type_code: Option<&str>,
    ) -> Option<bool> {
        let segments = split_path(&discriminator.path);
        let slice_elem = &sd.elements[slice];
        if discriminator.path == "url"
            && let [type_ref] = slice_elem.types.as_slice()
            && type_ref.code == "Extension"
            && !type_ref.profiles.is_empty()
        {
            let url = value.get("url").and_then(Value::as_str);
            return Some(type_ref.profiles.iter().any(|profile| Some(profile.as_str()) == url));
        }
        let (target_sd, target) = self.find_target(sd.clone(), slice, &segments)?;
        let target_elem = &target_sd.elements[target];
        if discriminator.kind == DiscriminatorKind::Type {
            if segments.iter().any(|segment| *segment != "$this") {
                return None;
            }
            let actual = type_code.or_else(|| value.get("resourceType").and_then(Value::as_str))?;
            return Some(target_elem.types.iter().any(|type_ref| type_ref.code == actual));
        }
        let actual = values_at(value, &segments)?;
        match discriminator.kind {
            DiscriminatorKind::Exists => {
                if target_elem.min > 0 {
                    Some(!actual.is_empty())
                } else if target_elem.max == Some(0) {
                    Some(actual.is_empty())
                } else {
                    None
                }
            }
            DiscriminatorKind::Profile => {
                let profiles: Vec<&String> =
                    target_elem.types.iter().flat_map(|type_ref| &type_ref.profiles).collect();
                if profiles.is_empty() {
                    return None;
                }
                Some(actual.iter().any(|item| {
                    profiles.iter().any(|profile| {
                        let Ok(profile_sd) = self.set.compiled(profile) else { return false };
                        let Value::Object(object) = item else { return false };
                        let mut trial = Walker::new(self.set);
                        trial.path.clone_from(&self.path);
                        trial.object(&profile_sd, 0, object);
                        !trial.issues.iter().any(|issue| issue.severity.is_error())
                    })
                }))
            }
            DiscriminatorKind::Value | DiscriminatorKind::Pattern | DiscriminatorKind::Type => {
                if let Some(fixed) = &target_elem.fixed {
                    return Some(actual.iter().any(|item| json_equal(fixed, item)));
                }
                if let Some(pattern) = &target_elem.pattern {
                    return Some(actual.iter().any(|item| matches_pattern(pattern, item)));
                }
                let binding = target_elem.binding.as_ref()?;
                let expansion = self.set.expansion(&binding.value_set);
                Some(actual.iter().any(|item| {
                    let codings: Vec<&Value> = match item.get("coding").and_then(Value::as_array) {
                        Some(codings) => codings.iter().collect(),
                        None => vec![*item],
                    };
                    codings.iter().any(|coding| {
                        let (system, code) = match coding {
                            Value::String(code) => (None, code.as_str()),
                            _ => match coding.get("code").and_then(Value::as_str) {
                                Some(code) => (coding.get("system").and_then(Value::as_str), code),
                                None => return false,
                            },
                        };
                        expansion.contains(system, code) == Membership::Member
                    })
                }))
            }
        }
    }

    /// The element a discriminator path designates inside a slice, descending into type profiles.
    fn find_target(
        &self,
        mut sd: Arc<CompiledSd>,
        mut idx: usize,
        segments: &[&str],
    ) -> Option<(Arc<CompiledSd>, usize)> {
        for segment in segments {
            if *segment == "$this" {
                continue;
            }
            if let Some(url) = extension_url(segment) {
                sd = self.set.compiled(url).ok()?;
                idx = 0;
                continue;
            }
            if segment.contains('(') {
                return None;
            }
            if sd.children_of(idx).is_empty() {
                let elem = &sd.elements[idx];
                let [type_ref] = elem.types.as_slice() else { return None };
                let url = type_ref
                    .profiles
                    .first()
                    .cloned()
                    .unwrap_or_else(|| format!("{HL7_SD}{}", type_ref.code));
                sd = self.set.compiled(&url).ok()?;
                idx = 0;
            }
            idx = sd.descendant(idx, segment)?;
        }
        Some((sd, idx))
    }
}

/// Splits a discriminator path on dots outside parentheses and quotes.
fn split_path(path: &str) -> Vec<&str> {
    let mut segments = Vec::new();
    let mut depth = 0_i32;
    let mut quoted = false;
    let mut start = 0;
    for (position, character) in path.char_indices() {
        match character {
            '\'' | '"' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            '.' if !quoted && depth == 0 => {
                segments.push(&path[start..position]);
                start = position + 1;
            }
            _ => {}
        }
    }
    segments.push(&path[start..]);
    segments
}

fn extension_url(segment: &str) -> Option<&str> {
    let inner = segment.strip_prefix("extension(")?.strip_suffix(')')?;
    Some(inner.trim_matches(|c| c == '\'' || c == '"'))
}

/// The JSON values at a discriminator path (arrays flattened); `None` for unsupported functions.
fn values_at<'v>(value: &'v Value, segments: &[&str]) -> Option<Vec<&'v Value>> {
    let mut current = vec![value];
    for segment in segments {
        if *segment == "$this" {
            continue;
        }
        let mut next = Vec::new();
        if let Some(url) = extension_url(segment) {
            for item in &current {
                for extension in
                    item.get("extension").and_then(Value::as_array).into_iter().flatten()
                {
                    if extension.get("url").and_then(Value::as_str) == Some(url) {
                        next.push(extension);
                    }
                }
            }
            current = next;
            continue;
        }
        if segment.contains('(') {
            return None;
        }
        for item in &current {
            let Value::Object(object) = item else { continue };
            let found =
                object.get(*segment).into_iter().chain(object.iter().filter_map(|(key, child)| {
                    let suffix = key.strip_prefix(*segment)?;
                    suffix.starts_with(|c: char| c.is_ascii_uppercase()).then_some(child)
                }));
            for child in found {
                match child {
                    Value::Array(items) => next.extend(items.iter()),
                    other => next.push(other),
                }
            }
        }
        current = next;
    }
    Some(current)
}
