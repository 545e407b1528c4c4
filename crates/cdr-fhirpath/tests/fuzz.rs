//! Property tests of the FHIRPath parser and evaluator: arbitrary text, and expressions put together from the
//! grammar (paths, literals at the edges of their ranges, operators, functions with odd arguments), evaluated on
//! arbitrary small JSON. Parsing and evaluation never panic; a syntax error points inside the text.
//! Expressions stay small (a few dozen nodes), so every evaluation is quick on inputs this size.
//!
//! Each property runs 256 cases; `PROPTEST_CASES` sets another number (a longer run before a release).

#![allow(clippy::unwrap_used, reason = "tests panic on broken fixtures")]

use cdr_fhirpath::{EvaluationContext, Expression};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Terms: paths, variables and literals, many at the edges of their types.
const TERMS: &[&str] = &[
    "Patient",
    "Observation",
    "name",
    "given",
    "family",
    "value",
    "extension",
    "url",
    "id",
    "contained",
    "code",
    "coding",
    "reference",
    "$this",
    "$index",
    "$total",
    "%resource",
    "%context",
    "%ucum",
    "%unknown",
    "0",
    "1",
    "-1",
    "2147483647",
    "-2147483648",
    "9223372036854775807",
    "99999999999999999999",
    "0.0",
    "1.5",
    "1e3",
    "0.00000000000000000000000001",
    "'a'",
    "''",
    "'\\u0000'",
    "'\\uD800'",
    "'é'",
    "@2020",
    "@2020-02-30",
    "@T25:00",
    "@2020-01-01T10:00:00.000+14:00",
    "true",
    "{}",
    "5 'mg'",
    "1 year",
    "1000000000 days",
];

const FUNCTIONS: &[&str] = &[
    "empty",
    "exists",
    "all",
    "allTrue",
    "anyTrue",
    "allFalse",
    "anyFalse",
    "subsetOf",
    "supersetOf",
    "count",
    "distinct",
    "isDistinct",
    "where",
    "select",
    "repeat",
    "ofType",
    "single",
    "first",
    "last",
    "tail",
    "skip",
    "take",
    "intersect",
    "exclude",
    "union",
    "combine",
    "iif",
    "toBoolean",
    "toInteger",
    "toDecimal",
    "toString",
    "toQuantity",
    "toDate",
    "toDateTime",
    "toTime",
    "convertsToInteger",
    "indexOf",
    "substring",
    "startsWith",
    "endsWith",
    "contains",
    "upper",
    "lower",
    "replace",
    "matches",
    "replaceMatches",
    "length",
    "toChars",
    "children",
    "descendants",
    "trace",
    "not",
    "resolve",
    "extension",
    "hasValue",
    "getValue",
    "aggregate",
    "abs",
    "ceiling",
    "floor",
    "ln",
    "log",
    "power",
    "round",
    "sqrt",
    "truncate",
    "exp",
    "encode",
    "decode",
    "split",
    "join",
    "trim",
    "is",
    "as",
    "memberOf",
    "conformsTo",
    "htmlChecks",
    "today",
    "now",
    "nosuchfunction",
];

const OPERATORS: &[&str] = &[
    "+", "-", "*", "/", "div", "mod", "&", "|", "=", "!=", "~", "!~", "<", ">", "<=", ">=", "and",
    "or", "xor", "implies", "in", "contains", "is", "as",
];

/// FHIRPath text from the grammar, at most `depth` levels of nesting.
fn expression() -> impl Strategy<Value = String> {
    let leaf = proptest::sample::select(TERMS).prop_map(str::to_owned);
    leaf.prop_recursive(4, 32, 3, |inner| {
        prop_oneof![
            (inner.clone(), proptest::sample::select(OPERATORS), inner.clone())
                .prop_map(|(left, operator, right)| format!("{left} {operator} {right}")),
            (
                inner.clone(),
                proptest::sample::select(FUNCTIONS),
                proptest::collection::vec(inner.clone(), 0..3)
            )
                .prop_map(|(focus, function, arguments)| format!(
                    "{focus}.{function}({})",
                    arguments.join(", ")
                )),
            (inner.clone(), inner.clone()).prop_map(|(focus, index)| format!("{focus}[{index}]")),
            inner.clone().prop_map(|inner| format!("({inner})")),
            inner.clone().prop_map(|inner| format!("-{inner}")),
            (inner.clone(), proptest::sample::select(TERMS))
                .prop_map(|(focus, path)| format!("{focus}.{path}")),
        ]
    })
}

/// Small JSON whose keys are FHIR element names, so that paths find something.
fn json_value() -> impl Strategy<Value = Value> {
    let keys = proptest::sample::select(
        &[
            "resourceType",
            "id",
            "name",
            "given",
            "family",
            "value",
            "valueQuantity",
            "valueString",
            "extension",
            "url",
            "code",
            "coding",
            "system",
            "contained",
            "reference",
            "_given",
            "unit",
        ][..],
    );
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        proptest::sample::select(&["1.50", "1e400", "-0.0", "12345678901234567890.5"][..])
            .prop_map(|text| serde_json::from_str(text).unwrap()),
        proptest::sample::select(
            &["Patient", "Observation", "x", "", "2020-01-01", "#c", "Patient/1", "\u{0}"][..]
        )
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 40, 4, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((keys.clone(), inner), 0..5).prop_map(|members| {
                Value::Object(
                    members
                        .into_iter()
                        .map(|(key, value)| (key.to_owned(), value))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

fn resource() -> impl Strategy<Value = Value> {
    (proptest::sample::select(&["Patient", "Observation", "Bundle", "Nonsense"][..]), json_value())
        .prop_map(|(resource_type, value)| {
            let mut members = match value {
                Value::Object(members) => members,
                other => Map::from_iter([("value".to_owned(), other)]),
            };
            members.insert("resourceType".to_owned(), json!(resource_type));
            Value::Object(members)
        })
}

/// Parses `text`; if it parses, evaluates it on `input` (either outcome is fine, a panic is not).
fn check(text: &str, input: &Value) -> Result<(), TestCaseError> {
    match Expression::parse(text) {
        Ok(expression) => {
            let _outcome = expression.evaluate(input, &EvaluationContext::new());
        }
        Err(error) => prop_assert!(error.offset <= text.len(), "{text:?}: {error}"),
    }
    Ok(())
}

proptest! {
    #[test]
    fn arbitrary_text(text in any::<String>(), input in resource()) {
        check(&text, &input)?;
    }

    #[test]
    fn grammar_expressions(text in expression(), input in resource()) {
        check(&text, &input)?;
    }
}

/// Found by `arbitrary_text`: a backslash before a character of several bytes made the lexer slice inside it.
#[test]
fn escaped_multibyte_characters_stand_for_themselves() {
    let patient = json!({"resourceType": "Patient"});
    let result = Expression::parse("'a\\é\\𑊟b'")
        .unwrap()
        .evaluate(&patient, &EvaluationContext::new())
        .unwrap();
    assert_eq!(result[0].json(), None);
    assert_eq!(result[0].system_value().map(|value| value.to_string()).as_deref(), Some("aé𑊟b"));
    assert!(Expression::parse("`\\𑊟").is_err());
    assert!(Expression::parse("`\\𑊟`").is_ok());
}

/// Found while probing the nesting limit: a long row of operators or invocations (`1+1+…`, `a.b.b…`) parsed into
/// a tree as deep as the row is long, and evaluating a few thousand overflowed the stack. Rows count against the
/// nesting limit now; a row of 100 still parses and evaluates.
#[test]
fn long_rows_are_syntax_errors_not_stack_overflows() {
    let patient = json!({"resourceType": "Patient", "name": [{"given": ["a"]}]});
    for (head, step) in [
        ("1", " + 1"),
        ("name", ".given"),
        ("name", "[0]"),
        ("name", " | name"),
        ("1", " is Integer"),
    ] {
        let long = head.to_owned() + &step.repeat(3_000);
        let error = Expression::parse(&long).unwrap_err();
        assert_eq!(error.message, "expression nested too deeply", "{head}{step}…");
        let accepted = Expression::parse(&(head.to_owned() + &step.repeat(100))).unwrap();
        let _outcome = accepted.evaluate(&patient, &EvaluationContext::new());
    }
}
