//! Where the nodes of a result are in the document they were evaluated over, for callers that change the
//! document at the places an expression selects (FHIRPath Patch).
//!
//! Items borrow the input JSON, so a node is found by the address of the JSON value it holds: one walk over
//! the document finds every node of a collection. The evaluator carries no location while it runs, so
//! searches and invariants pay nothing for this.

use std::collections::HashMap;
use std::fmt;

use serde_json::Value;

use crate::value::{Collection, Item};

/// One step from a JSON value to one of its children.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// The member of an object with this key.
    Key(String),
    /// The element of an array at this position.
    Index(usize),
}

/// Where a JSON value is in a document: the steps from the root to it. A primitive known only by its
/// extensions (`"_birthDate": {...}` without `birthDate`) is located at its `_name` sibling.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Location {
    steps: Vec<Step>,
}

impl Location {
    /// The steps from the root, outermost first; empty for the root itself.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }
}

impl fmt::Display for Location {
    /// The location as a JSON Pointer (RFC 6901), `""` for the root.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.steps {
            match step {
                Step::Key(key) => write!(f, "/{}", key.replace('~', "~0").replace('/', "~1"))?,
                Step::Index(index) => write!(f, "/{index}")?,
            }
        }
        Ok(())
    }
}

impl Collection<'_> {
    /// The location in `root` of each item, in order: `None` for a computed value, for a node that holds
    /// no JSON (a reference target known only by its type) and for a node of another document. `root` must
    /// be the value the collection was evaluated over (or one holding it); nodes are found by address, in
    /// one walk over `root`.
    pub fn locations(&self, root: &Value) -> Vec<Option<Location>> {
        let mut wanted: HashMap<usize, Vec<usize>> = HashMap::new();
        for (position, item) in self.iter().enumerate() {
            if let Some(address) = address_of(item) {
                wanted.entry(address).or_default().push(position);
            }
        }
        let mut found = vec![None; self.len()];
        let mut remaining = wanted.values().map(Vec::len).sum::<usize>();
        let mut stack: Vec<(&Value, Vec<Step>)> = vec![(root, Vec::new())];
        while remaining > 0
            && let Some((value, steps)) = stack.pop()
        {
            if let Some(positions) = wanted.remove(&(std::ptr::from_ref(value) as usize)) {
                remaining -= positions.len();
                for position in positions {
                    found[position] = Some(Location { steps: steps.clone() });
                }
            }
            match value {
                Value::Object(members) => {
                    for (key, member) in members {
                        let mut child = steps.clone();
                        child.push(Step::Key(key.clone()));
                        stack.push((member, child));
                    }
                }
                Value::Array(elements) => {
                    for (index, element) in elements.iter().enumerate() {
                        let mut child = steps.clone();
                        child.push(Step::Index(index));
                        stack.push((element, child));
                    }
                }
                _ => {}
            }
        }
        found
    }
}

/// The address of the JSON value a node stands for: its value, else its `_name` sibling.
fn address_of(item: &Item<'_>) -> Option<usize> {
    let Item::Node(node) = item else { return None };
    node.value.or(node.extras).map(|value| std::ptr::from_ref(value) as usize)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{EvaluationContext, Expression};

    /// The JSON Pointer of each item `expression` selects in `root`, `None` where it has no location.
    fn check(root: &Value, expression: &str, expected: &[Option<&str>]) {
        let expression = Expression::parse(expression).unwrap();
        let result = expression.evaluate(root, &EvaluationContext::new()).unwrap();
        let pointers: Vec<Option<String>> = result
            .locations(root)
            .into_iter()
            .map(|location| location.map(|location| location.to_string()))
            .collect();
        let expected: Vec<Option<String>> =
            expected.iter().map(|pointer| pointer.map(str::to_owned)).collect();
        assert_eq!(pointers, expected, "{expression}");
    }

    fn patient() -> Value {
        json!({
            "resourceType": "Patient",
            "name": [
                {"use": "official", "family": "Chalmers", "given": ["Peter", "James"]},
                {"use": "usual", "given": ["Jim"]}
            ],
            "birthDate": "1974-12-25",
            "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                          "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
            "_gender": {"extension": [{"url": "http://example.org/absent", "valueCode": "unknown"}]},
            "deceasedBoolean": false,
            "contained": [{"resourceType": "Organization", "id": "o1", "name": "a/b~c"}]
        })
    }

    #[test]
    fn nodes_are_located() {
        let patient = patient();
        check(&patient, "Patient", &[Some("")]);
        check(&patient, "Patient.name", &[Some("/name/0"), Some("/name/1")]);
        check(
            &patient,
            "Patient.name.given",
            &[Some("/name/0/given/0"), Some("/name/0/given/1"), Some("/name/1/given/0")],
        );
        check(
            &patient,
            "Patient.name.where(use = 'usual').given.first()",
            &[Some("/name/1/given/0")],
        );
        check(&patient, "Patient.name[0].family", &[Some("/name/0/family")]);
        // A choice element is located at its typed key.
        check(&patient, "Patient.deceased", &[Some("/deceasedBoolean")]);
        // A primitive with extensions is located at its value; one with only extensions at its `_name`.
        check(&patient, "Patient.birthDate", &[Some("/birthDate")]);
        check(&patient, "Patient.gender", &[Some("/_gender")]);
        check(&patient, "Patient.birthDate.extension", &[Some("/_birthDate/extension/0")]);
        // Contained resources are nodes of the document too.
        check(&patient, "Patient.contained.name", &[Some("/contained/0/name")]);
    }

    #[test]
    fn values_and_other_documents_have_no_location() {
        let patient = patient();
        check(&patient, "Patient.name.given.count()", &[None]);
        check(&patient, "'text'", &[None]);
        check(&patient, "Patient.missing", &[]);
        // The same node twice (a union keeps one, a combine both) is located twice.
        check(
            &patient,
            "Patient.name[0].family | Patient.name[0].family",
            &[Some("/name/0/family")],
        );
        check(
            &patient,
            "Patient.name[0].family.combine(Patient.name[0].family)",
            &[Some("/name/0/family"), Some("/name/0/family")],
        );
        // An equal copy elsewhere is not the node.
        let copy = patient.clone();
        let expression = Expression::parse("Patient.name").unwrap();
        let result = expression.evaluate(&patient, &EvaluationContext::new()).unwrap();
        assert_eq!(result.locations(&copy), vec![None, None]);
    }

    #[test]
    fn pointers_escape_keys() {
        let location = Location {
            steps: vec![Step::Key("a/b".into()), Step::Index(2), Step::Key("c~d".into())],
        };
        assert_eq!(location.to_string(), "/a~1b/2/c~0d");
        assert_eq!(location.steps().len(), 3);
    }
}
