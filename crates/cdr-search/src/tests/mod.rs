//! Data-driven parser tests: every `test_data/queries/*.txt` file holds cases, and the `.expect` file next to it
//! holds the rendered result of each (compared with `expect_test::expect_file!`). Run with `UPDATE_EXPECT=1` to
//! rewrite the `.expect` files, then review the diff.
//!
//! A case is a block of lines separated from the next by a blank line: the first line is the searched type (or
//! `*` for system-level search), each other line one percent-decoded `name=value` pair. Lines starting with `#`
//! are comments.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cdr_model::ResourceType;
use expect_test::expect_file;

use crate::{
    Criterion, DateValue, DecimalValue, ParsedQuery, ReferenceValue, SearchError,
    SearchParamRegistry, SearchValue, TokenSystem, TokenValue, parse_query,
};

pub(crate) fn test_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data")
}

/// The R4 registry plus the custom SearchParameters of `test_data/extra/`.
pub(crate) fn registry() -> &'static SearchParamRegistry {
    static REGISTRY: OnceLock<SearchParamRegistry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(test_data().join("extra"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        paths.sort();
        let texts: Vec<String> =
            paths.iter().map(|path| std::fs::read_to_string(path).unwrap()).collect();
        let borrowed: Vec<&str> = texts.iter().map(String::as_str).collect();
        SearchParamRegistry::with_extra(&borrowed).unwrap()
    })
}

#[test]
fn query_cases() {
    let directory = test_data().join("queries");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "txt"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 8, "expected the query case files in {}", directory.display());
    for path in paths {
        let input = std::fs::read_to_string(&path).unwrap();
        let mut rendered = String::new();
        for case in input.split("\n\n") {
            let lines: Vec<&str> =
                case.lines().filter(|line| !line.starts_with('#') && !line.is_empty()).collect();
            let Some((type_line, pair_lines)) = lines.split_first() else { continue };
            let resource_type = match *type_line {
                "*" => None,
                name => Some(ResourceType::parse(name).unwrap()),
            };
            let pairs: Vec<(String, String)> = pair_lines
                .iter()
                .map(|line| {
                    let (name, value) = line.split_once('=').unwrap_or((line, ""));
                    (name.to_owned(), value.to_owned())
                })
                .collect();
            let parsed = parse_query(resource_type, &pairs, registry());
            writeln!(rendered, "== {type_line}?{}", pair_lines.join("&")).unwrap();
            rendered.push_str(&render(&parsed));
            rendered.push('\n');
        }
        expect_file![path.with_extension("expect")].assert_eq(&rendered);
    }
}

fn render(parsed: &ParsedQuery) -> String {
    let mut out = String::new();
    let query = &parsed.query;
    if !query.types.is_empty() {
        let types: Vec<&str> = query.types.iter().map(|ty| ty.as_str()).collect();
        writeln!(out, "types {}", types.join(",")).unwrap();
    }
    for clause in &query.clauses {
        writeln!(out, "clause {} (canonical {})", clause.name, clause.canonical_name).unwrap();
        render_criterion(&mut out, &clause.criterion, 1);
    }
    for (label, includes) in [("include", &query.includes), ("revinclude", &query.revincludes)] {
        for include in includes {
            writeln!(
                out,
                "{label} source={} param={} target={} iterate={}",
                include.source_type.map_or("*", ResourceType::as_str),
                include.param.as_deref().unwrap_or("*"),
                include.target_type.map_or("-", ResourceType::as_str),
                include.iterate
            )
            .unwrap();
        }
    }
    for key in &query.sort {
        let direction = if key.descending { "descending" } else { "ascending" };
        writeln!(out, "sort {} ({}) {direction}", key.param.code, key.param.param_type.as_str())
            .unwrap();
    }
    let options = [
        ("count", query.count.map(|count| count.to_string())),
        ("total", query.total.map(|total| format!("{total:?}"))),
        ("summary", query.summary.map(|summary| format!("{summary:?}"))),
        ("contained", query.contained.map(|contained| format!("{contained:?}"))),
        ("containedType", query.contained_type.map(|contained| format!("{contained:?}"))),
        ("elements", (!query.elements.is_empty()).then(|| query.elements.join(","))),
    ];
    for (label, option) in options {
        if let Some(option) = option {
            writeln!(out, "{label} {option}").unwrap();
        }
    }
    for error in &parsed.errors {
        match error {
            SearchError::Unknown { name } => writeln!(out, "error unknown '{name}'").unwrap(),
            SearchError::Invalid { name, part, position, message } => {
                writeln!(out, "error invalid '{name}' {part}@{position}: {message}").unwrap();
            }
            SearchError::Inapplicable { .. } | SearchError::LimitExceeded { .. } => {
                writeln!(out, "error {error}").unwrap();
            }
        }
    }
    out
}

fn render_criterion(out: &mut String, criterion: &Criterion, depth: usize) {
    let indent = "  ".repeat(depth);
    match criterion {
        Criterion::Param(filter) => {
            let modifier = filter
                .modifier
                .map(|modifier| format!(":{}", modifier.as_str()))
                .unwrap_or_default();
            writeln!(
                out,
                "{indent}param {}{modifier} ({})",
                filter.param.code,
                filter.param.param_type.as_str()
            )
            .unwrap();
            for value in &filter.values {
                writeln!(out, "{indent}  or {}", render_value(value)).unwrap();
            }
        }
        Criterion::Chain { reference, target_types, inner } => {
            let targets: Vec<&str> = target_types.iter().map(|ty| ty.as_str()).collect();
            writeln!(out, "{indent}chain {} -> {}", reference.code, targets.join("|")).unwrap();
            render_criterion(out, inner, depth + 1);
        }
        Criterion::Has { source_type, reference, inner } => {
            writeln!(out, "{indent}has {source_type}.{} points here", reference.code).unwrap();
            render_criterion(out, inner, depth + 1);
        }
    }
}

fn render_value(value: &SearchValue) -> String {
    match value {
        SearchValue::Missing(missing) => format!("missing={missing}"),
        SearchValue::Number { prefix, number } => {
            format!("number {} {}", prefix.as_str(), render_decimal(number))
        }
        SearchValue::Date { prefix, date } => {
            format!("date {} {}", prefix.as_str(), render_date(date))
        }
        SearchValue::String { exact, normalized } => {
            format!("string exact={exact:?} normalized={normalized:?}")
        }
        SearchValue::Token(token) => format!("token {}", render_token(token)),
        SearchValue::OfType { type_system, type_code, value } => {
            format!("of-type type={type_system}|{type_code} value={value}")
        }
        SearchValue::Reference(reference) => format!("reference {}", render_reference(reference)),
        SearchValue::Quantity { prefix, number, system, code } => format!(
            "quantity {} {} system={} code={}",
            prefix.as_str(),
            render_decimal(number),
            system.as_deref().unwrap_or("-"),
            code.as_deref().unwrap_or("-")
        ),
        SearchValue::Uri(uri) => format!("uri {uri}"),
        SearchValue::Composite(components) => {
            let parts: Vec<String> = components.iter().map(render_value).collect();
            format!("composite [{}]", parts.join(" $ "))
        }
        SearchValue::Near(near) => format!(
            "near {} {} within {} km",
            near.center.latitude(),
            near.center.longitude(),
            near.distance_km
        ),
        SearchValue::Special(text) => format!("special {text}"),
    }
}

fn render_decimal(number: &DecimalValue) -> String {
    format!("{} [{}, {})", number.text, number.low, number.high)
}

fn render_date(date: &DateValue) -> String {
    let zone = if date.has_zone { "zoned" } else { "utc-assumed" };
    format!("{} {:?} {zone}", date.range, date.precision)
}

fn render_token(token: &TokenValue) -> String {
    let system = match &token.system {
        TokenSystem::Any => "any".to_owned(),
        TokenSystem::NoSystem => "none".to_owned(),
        TokenSystem::Is(system) => format!("{system:?}"),
    };
    format!(
        "system={system} code={}",
        token.code.as_deref().map_or("-".to_owned(), |code| format!("{code:?}"))
    )
}

fn render_reference(reference: &ReferenceValue) -> String {
    format!(
        "type={} id={} version={} url={}",
        reference.resource_type.map_or("-", ResourceType::as_str),
        reference.id.as_deref().unwrap_or("-"),
        reference.version.as_deref().unwrap_or("-"),
        reference.url.as_deref().unwrap_or("-")
    )
}

mod extract;
mod fuzz;
mod index_values;
mod limits;

/// Every R4 expression our FHIRPath engine cannot parse is listed in `test_data/unparsed-expressions.expect`
/// (ideally empty); such parameters are reported as extraction failures.
#[test]
fn registry_expressions_parse() {
    let started = std::time::Instant::now();
    let registry = SearchParamRegistry::r4().unwrap();
    let elapsed = started.elapsed();
    assert!(elapsed.as_secs() < 20, "building the registry took {elapsed:?}");
    let rendered: String = registry
        .unparsed_expressions()
        .iter()
        .map(|(resource_type, code, error)| format!("{resource_type}.{code}: {error}\n"))
        .collect();
    expect_file![test_data().join("unparsed-expressions.expect")].assert_eq(&rendered);
    let study = ResourceType::parse("ImagingStudy").unwrap();
    let def = registry.get(study, "patient").unwrap();
    assert_eq!(def.expression.as_deref(), Some("ImagingStudy.subject.where(resolve() is Patient)"));
    assert_eq!(def.targets.iter().map(|ty| ty.as_str()).collect::<Vec<_>>(), ["Patient", "Group"]);
    assert_eq!(
        registry.get(study, "_lastUpdated").unwrap().expression.as_deref(),
        Some("ImagingStudy.meta.lastUpdated")
    );
    let common: Vec<&str> =
        ["_id", "_lastUpdated", "_tag", "_profile", "_security", "_source", "_text", "_content"]
            .into_iter()
            .collect();
    for code in common {
        assert!(registry.get(study, code).is_some(), "ImagingStudy lacks {code}");
    }
    assert!(
        registry.get(ResourceType::parse("Bundle").unwrap(), "_text").is_none(),
        "_text is DomainResource only"
    );
}

/// The parser never panics, whatever bytes it is given: names and values are built from awkward fragments
/// (multi-byte characters next to separators, lone escapes, prefixes without values).
#[test]
fn parser_survives_awkward_input() {
    let fragments = [
        "",
        "\\",
        "\\\\",
        ",",
        "|",
        "$",
        ":",
        ".",
        "é",
        "日本",
        "ge",
        "eq",
        "2024-",
        "T",
        "+05:00",
        "Z",
        "1e",
        "-",
        "Patient/",
        "/_history/",
        "http://",
        "urn:",
        "_has:",
        "*",
        "%",
        "\u{0}",
        " ",
    ];
    let names = [
        "date",
        "code",
        "subject",
        "subject:Patient.name",
        "_has:Observation:subject:code",
        "value-quantity",
        "code-value-quantity",
        "identifier:of-type",
        "_include",
        "_sort",
        "_count",
        "_elements",
        "probability",
        "_has:",
        "subject.",
        ":",
        "_has:Observation:",
        "é:é.é",
    ];
    let types = ["Observation", "DiagnosticReport", "RiskAssessment"];
    let mut n_cases = 0;
    for resource_type in types {
        let resource_type = Some(ResourceType::parse(resource_type).unwrap());
        for name in names {
            for first in fragments {
                for second in fragments {
                    let value = format!("{first}{second}{first}");
                    let name_variant = format!("{name}{second}");
                    let pairs = vec![(name.to_owned(), value.clone()), (name_variant, value)];
                    let parsed = parse_query(resource_type, &pairs, registry());
                    for error in &parsed.errors {
                        if let SearchError::Invalid { position, part, .. } = error {
                            let limit = match part {
                                crate::ErrorPart::Name => pairs[0].0.len().max(pairs[1].0.len()),
                                crate::ErrorPart::Value => pairs[0].1.len(),
                            };
                            assert!(
                                *position <= limit,
                                "position {position} out of range in {pairs:?}: {error}"
                            );
                        }
                    }
                    n_cases += 1;
                }
            }
        }
    }
    assert!(n_cases > 30_000);
}
