//! Group: the search framework (R4 search.html, http.html#search): paging through `next` links, `self`
//! links, `_count`, `_sort`, `POST _search`, unknown parameters, invalid values, the guide's mandatory
//! `patient.identifier`, `_total`, `_summary` and `_elements`; and the cases of the resource groups, each a search re-checked on every match.

use std::collections::BTreeSet;

use cdr_validation::ConformanceKind;
use hyper::Method;
use serde_json::Value;

use super::support::{
    ACCESSION_SYSTEM, MRN_SYSTEM, PROCEDURE, Searched, conforms, expect_outcome, fixture_key,
    fixtures, key_of, link, query, recheck, search, search_from, searchset,
};
use crate::client::Call;
use crate::context::{Ctx, Mode};
use crate::model::{GroupDef, Outcome, Stop, TestDef, body, ensure};

pub(crate) fn group() -> GroupDef {
    GroupDef {
        id: "search",
        title: "Search framework",
        description: "Paging, links, _count, _sort, POST _search, errors, _total, _summary and _elements, on the guide's searches.",
        tests: vec![
            TestDef::new(
                "paging",
                "Paging with _count=1 returns each match exactly once, as one page does",
                "R4 http.html#paging: following next to the end visits every match once.",
                body!(paging),
            ),
            TestDef::new(
                "self-links",
                "Every page has a self link and is a searchset",
                "R4 search.html#conformance: the self link says what was searched.",
                body!(self_links),
            ),
            TestDef::new(
                "count",
                "No page has more matches than _count",
                "R4 search.html#count.",
                body!(count),
            ),
            TestDef::new(
                "sort",
                "_sort=-started orders the studies newest first",
                "R4 search.html#sort; the guide's viewers sort by date.",
                body!(sort),
            ),
            TestDef::new(
                "post-search",
                "POST [type]/_search finds what GET finds",
                "R4 http.html#search: the same search as a form body.",
                body!(post_search),
            ),
            TestDef::new(
                "unknown-parameter",
                "An unknown parameter is ignored (not in the self link) or refused; with handling=strict it is a 400",
                "R4 search.html#errors: Prefer: handling=strict asks for an error.",
                body!(unknown_parameter),
            ),
            TestDef::new(
                "invalid-value",
                "A malformed date value is refused with 400 and an OperationOutcome",
                "R4 search.html#errors: a parameter value that cannot be understood is an error, not a 500.",
                body!(invalid_value),
            ),
            TestDef::new(
                "patient-required",
                "A search without patient.identifier, or with its value alone, is refused with 400",
                "Guide §2.3: patient.identifier, system and value, is mandatory in every search of ServiceRequest, ImagingStudy, DiagnosticReport and DocumentReference.",
                body!(patient_required),
            ),
            TestDef::new(
                "sort-authored",
                "_sort=-authored orders the orders newest first",
                "R4 search.html#sort; the guide names the authored date as a sort of Search MI Order.",
                body!(sort_authored),
            ),
            TestDef::new(
                "total",
                "_total=accurate counts every match; _total=none finds the same",
                "R4 search.html#total: with accurate, Bundle.total is the number of matches over all pages; none lets the server leave it out (a total it gives is still right).",
                body!(total),
            ),
            TestDef::new(
                "summary-count",
                "_summary=count answers the count without entries",
                "R4 search.html#summary: count returns only the number of matches (Bundle.total), no resources.",
                body!(summary_count),
            ),
            TestDef::new(
                "summary-true",
                "_summary=true returns only the summary elements of each match",
                "R4 search.html#summary: true returns the elements marked isSummary in the base definition (a missing SUBSETTED tag, a SHOULD, is noted).",
                body!(summary_true),
            ),
            TestDef::new(
                "elements",
                "_elements returns the elements asked for and the mandatory ones, no others",
                "R4 search.html#elements: only the named elements (and those the base definition makes mandatory; a missing SUBSETTED tag, a SHOULD, is noted).",
                body!(elements),
            ),
        ],
    }
}

/// A search of a resource group: parameters (values may hold `{patient}`, `{accession}`, `{code}`,
/// `{licence}`, `{upi}`, `{placer}`), the fixtures that must be among the matches and those that must not
/// (write mode; of a DocumentReference search, the fixtures the index entries relate to), and the type that
/// must be among the included resources.
#[derive(Debug)]
pub(crate) struct SearchCase {
    pub(crate) resource: &'static str,
    pub(crate) params: &'static [(&'static str, &'static str)],
    pub(crate) expect: &'static [&'static str],
    pub(crate) exclude: &'static [&'static str],
    pub(crate) include: Option<&'static str>,
}

/// The value of a placeholder: from the fixtures in write mode, from the inputs in read-only mode.
fn placeholder(ctx: &Ctx, name: &str) -> Result<String, Stop> {
    if ctx.mode == Mode::ReadOnly {
        let input = match name {
            "patient" => "patient_identifier",
            "accession" => "accession",
            "code" => "procedure_code",
            "licence" => "practitioner_identifier",
            "upi" => "organization_identifier",
            "placer" => "placer_number",
            other => return Err(Stop::error(format!("unknown placeholder {other}"))),
        };
        return ctx.input(input);
    }
    let run = &ctx.run_id;
    Ok(match name {
        "patient" => format!("{MRN_SYSTEM}|MRN-{run}"),
        "accession" => format!("{ACCESSION_SYSTEM}|ACC-{run}"),
        "code" => PROCEDURE.to_owned(),
        "licence" => {
            format!("https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-license-physician|{run}")
        }
        "upi" => "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-provider-upi|101981036292"
            .to_owned(),
        "placer" => format!("ORD-{run}"),
        other => return Err(Stop::error(format!("unknown placeholder {other}"))),
    })
}

fn fill(ctx: &Ctx, template: &str) -> Result<String, Stop> {
    let mut text = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let Some(end) = rest[start..].find('}') else { break };
        text.push_str(&rest[..start]);
        text.push_str(&placeholder(ctx, &rest[start + 1..start + end])?);
        rest = &rest[start + end + 1..];
    }
    text.push_str(rest);
    Ok(text)
}

/// Runs a case: every page, every match re-checked against the parameters and validated against its
/// Ontario profile, the fixtures expected (write mode), the included type.
pub(crate) async fn run_case(ctx: &mut Ctx, case: &SearchCase) -> Outcome {
    let fixtures = if ctx.mode == Mode::Write { Some(fixtures(ctx).await?) } else { None };
    let mut pairs = Vec::new();
    for (name, value) in case.params {
        pairs.push(((*name).to_owned(), fill(ctx, value)?));
    }
    let searched = search(ctx, case.resource, &pairs).await?;
    recheck(ctx, case.resource, &pairs, &searched).await?;
    let posted = post_search_all(ctx, case.resource, &pairs).await?;
    let (get_keys, post_keys): (BTreeSet<String>, BTreeSet<String>) =
        (searched.match_keys().into_iter().collect(), posted.match_keys().into_iter().collect());
    ensure!(get_keys == post_keys, "GET found {get_keys:?}, POST _search {post_keys:?}");
    for resource in &searched.matches {
        ctx.returned(resource);
        conforms(ctx, resource)?;
    }
    match &fixtures {
        Some(fixtures) => {
            // An index entry stands for the fixture it relates to.
            let keys = if case.resource == "DocumentReference" {
                searched
                    .matches
                    .iter()
                    .flat_map(|entry| crate::matcher::references(entry, "related"))
                    .collect()
            } else {
                searched.match_keys()
            };
            for name in case.expect {
                let key = fixture_key(fixtures, name)?;
                ensure!(
                    keys.contains(&key),
                    "the {name} fixture {key} is not among the matches {keys:?}"
                );
            }
            for name in case.exclude {
                let key = fixture_key(fixtures, name)?;
                ensure!(
                    !keys.contains(&key),
                    "the {name} fixture {key} is matched, but does not fit the search"
                );
            }
        }
        None if searched.matches.is_empty() => {
            return Err(Stop::skip("nothing matched: give inputs that name data on the server"));
        }
        None => {}
    }
    if let Some(included) = case.include {
        ensure!(
            searched.includes.iter().any(|resource| resource["resourceType"] == included),
            "no {included} among the included resources ({} included)",
            searched.includes.len()
        );
    }
    ctx.info(format!("{} matches, {} included", searched.matches.len(), searched.includes.len()));
    Ok(())
}

/// Reads a fixture (write mode) or the first match of the patient's search (read-only), checks the id and
/// validates it against its Ontario profile.
pub(crate) async fn read_case(
    ctx: &mut Ctx,
    resource_type: &str,
    fixture: &str,
    search_by: (&str, &str),
) -> Outcome {
    let key = if ctx.mode == Mode::Write {
        fixture_key(&fixtures(ctx).await?, fixture)?
    } else {
        let value = fill(ctx, search_by.1)?;
        let found = search(ctx, resource_type, &[(search_by.0.to_owned(), value)]).await?;
        match found.matches.first() {
            Some(resource) => key_of(resource),
            None => {
                return Err(Stop::skip(
                    "nothing to read: give inputs that name data on the server",
                ));
            }
        }
    };
    let exchange = ctx.get(key.clone()).await?;
    ensure!(exchange.status == 200, "{}: expected 200", exchange.label());
    ensure!(
        exchange.is_fhir_json(),
        "Content-Type {:?} is not application/fhir+json",
        exchange.header("content-type")
    );
    let resource = exchange.json_or_fail()?;
    ensure!(key_of(&resource) == key, "read {key}, got {}", key_of(&resource));
    ctx.returned(&resource);
    conforms(ctx, &resource)
}

/// `POST [base]/{resource_type}/_search` with the parameters as a form body, every page.
async fn post_search_all(
    ctx: &mut Ctx,
    resource_type: &str,
    pairs: &[(String, String)],
) -> Result<Searched, Stop> {
    let call = Call {
        method: Method::POST,
        target: format!("{resource_type}/_search"),
        headers: vec![("content-type", "application/x-www-form-urlencoded".to_owned())],
        body: Some(query(pairs)),
    };
    let first = ctx.send(call).await?;
    search_from(ctx, first).await
}

/// The studies of the patient, one a page.
async fn paged_studies(ctx: &mut Ctx) -> Result<Searched, Stop> {
    patient_studies(ctx, &[("_count", "1")]).await
}

async fn paging(ctx: &mut Ctx) -> Outcome {
    if ctx.mode == Mode::Write {
        fixtures(ctx).await?;
    }
    let paged = paged_studies(ctx).await?;
    let patient = fill(ctx, "{patient}")?;
    let whole = search(
        ctx,
        "ImagingStudy",
        &[("patient.identifier".to_owned(), patient), ("_count".to_owned(), "100".to_owned())],
    )
    .await?;
    let paged_keys: BTreeSet<String> = paged.match_keys().into_iter().collect();
    let whole_keys: BTreeSet<String> = whole.match_keys().into_iter().collect();
    ensure!(paged_keys == whole_keys, "paging found {paged_keys:?}, one page {whole_keys:?}");
    if ctx.mode == Mode::Write {
        ensure!(
            paged.pages.len() >= 2,
            "the patient's two studies came on {} page(s) with _count=1",
            paged.pages.len()
        );
    }
    Ok(())
}

async fn self_links(ctx: &mut Ctx) -> Outcome {
    if ctx.mode == Mode::Write {
        fixtures(ctx).await?;
    }
    let paged = paged_studies(ctx).await?;
    for (n, page) in paged.pages.iter().enumerate() {
        ensure!(link(page, "self").is_some(), "page {} has no self link", n + 1);
    }
    Ok(())
}

async fn count(ctx: &mut Ctx) -> Outcome {
    if ctx.mode == Mode::Write {
        fixtures(ctx).await?;
    }
    let paged = paged_studies(ctx).await?;
    for (n, page) in paged.pages.iter().enumerate() {
        let matches = page["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["search"]["mode"] != "include")
            .count();
        ensure!(matches <= 1, "page {} has {matches} matches with _count=1", n + 1);
    }
    Ok(())
}

async fn sort(ctx: &mut Ctx) -> Outcome {
    newest_first(ctx, "ImagingStudy", "started", "started", ("study", "study2")).await
}

async fn sort_authored(ctx: &mut Ctx) -> Outcome {
    newest_first(ctx, "ServiceRequest", "authored", "authoredOn", ("order", "decoy-order")).await
}

/// The patient's `resource_type`s with `_sort=-{param}` come newest `element` first; in write mode the two
/// fixtures (newer, older) are both matched, in that order.
async fn newest_first(
    ctx: &mut Ctx,
    resource_type: &str,
    param: &str,
    element: &str,
    (newer, older): (&str, &str),
) -> Outcome {
    let fixtures = if ctx.mode == Mode::Write { Some(fixtures(ctx).await?) } else { None };
    let patient = fill(ctx, "{patient}")?;
    let pairs =
        [("patient.identifier".to_owned(), patient), ("_sort".to_owned(), format!("-{param}"))];
    let found = search(ctx, resource_type, &pairs).await?;
    let dates: Vec<(i128, String)> = found
        .matches
        .iter()
        .filter_map(|resource| {
            let text = resource[element].as_str()?;
            Some((crate::matcher::date_range(text)?.0, key_of(resource)))
        })
        .collect();
    ensure!(
        dates.windows(2).all(|pair| pair[0].0 >= pair[1].0),
        "not newest {element} first: {dates:?}"
    );
    if let Some(fixtures) = fixtures {
        let keys: Vec<String> = dates.into_iter().map(|(_, key)| key).collect();
        let (newer, older) = (fixture_key(&fixtures, newer)?, fixture_key(&fixtures, older)?);
        let at = |key: &String| keys.iter().position(|found| found == key);
        ensure!(
            matches!((at(&newer), at(&older)), (Some(a), Some(b)) if a < b),
            "{newer} should come before {older}: {keys:?}"
        );
    }
    Ok(())
}

async fn post_search(ctx: &mut Ctx) -> Outcome {
    if ctx.mode == Mode::Write {
        fixtures(ctx).await?;
    }
    let pairs = vec![("patient.identifier".to_owned(), fill(ctx, "{patient}")?)];
    let get = search(ctx, "ServiceRequest", &pairs).await?;
    let post = post_search_all(ctx, "ServiceRequest", &pairs).await?;
    let (get, post): (BTreeSet<String>, BTreeSet<String>) =
        (get.match_keys().into_iter().collect(), post.match_keys().into_iter().collect());
    ensure!(get == post, "GET found {get:?}, POST _search {post:?}");
    Ok(())
}

async fn unknown_parameter(ctx: &mut Ctx) -> Outcome {
    let patient = fill(ctx, "{patient}")?;
    let name = format!("unknown-{}", ctx.run_id);
    let pairs = vec![("patient.identifier".to_owned(), patient), (name.clone(), "1".to_owned())];
    let lenient = ctx.get(format!("ServiceRequest?{}", query(&pairs))).await?;
    if lenient.status == 200 {
        let bundle = searchset(&lenient)?;
        let self_link = link(&bundle, "self").unwrap_or_default();
        ensure!(
            !self_link.contains(&name),
            "the ignored parameter is in the self link {self_link}"
        );
    } else {
        expect_outcome(&lenient, &[400])?;
    }
    let strict = ctx
        .send(
            Call::get(format!("ServiceRequest?{}", query(&pairs)))
                .header("prefer", "handling=strict"),
        )
        .await?;
    expect_outcome(&strict, &[400])
}

async fn invalid_value(ctx: &mut Ctx) -> Outcome {
    let patient = fill(ctx, "{patient}")?;
    let pairs = vec![
        ("patient.identifier".to_owned(), patient),
        ("started".to_owned(), "not-a-date".to_owned()),
    ];
    let exchange = ctx.get(format!("ImagingStudy?{}", query(&pairs))).await?;
    expect_outcome(&exchange, &[400])
}

async fn patient_required(ctx: &mut Ctx) -> Outcome {
    let patient = fill(ctx, "{patient}")?;
    let value_only = patient.rsplit('|').next().unwrap_or_default().to_owned();
    for resource_type in ["ServiceRequest", "ImagingStudy", "DiagnosticReport", "DocumentReference"]
    {
        let exchange = ctx.get(format!("{resource_type}?status=final")).await?;
        expect_outcome(&exchange, &[400])?;
        // "System and value must be provided."
        let pairs = [("patient.identifier".to_owned(), value_only.clone())];
        let exchange = ctx.get(format!("{resource_type}?{}", query(&pairs))).await?;
        expect_outcome(&exchange, &[400])?;
    }
    Ok(())
}

/// The patient's studies, with more parameters.
async fn patient_studies(ctx: &mut Ctx, more: &[(&str, &str)]) -> Result<Searched, Stop> {
    let mut pairs = vec![("patient.identifier".to_owned(), fill(ctx, "{patient}")?)];
    pairs.extend(more.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())));
    search(ctx, "ImagingStudy", &pairs).await
}

/// The keys of a search's matches, as a set.
fn key_set(searched: &Searched) -> BTreeSet<String> {
    searched.match_keys().into_iter().collect()
}

async fn total(ctx: &mut Ctx) -> Outcome {
    if ctx.mode == Mode::Write {
        fixtures(ctx).await?;
    }
    let accurate = patient_studies(ctx, &[("_count", "1"), ("_total", "accurate")]).await?;
    let count = accurate.matches.len();
    for (n, page) in accurate.pages.iter().enumerate() {
        ensure!(
            page["total"].as_u64() == u64::try_from(count).ok(),
            "page {} says total {} with _total=accurate, but {count} studies match",
            n + 1,
            page["total"]
        );
    }
    let none = patient_studies(ctx, &[("_total", "none")]).await?;
    ensure!(
        key_set(&none) == key_set(&accurate),
        "_total=none found {:?}, _total=accurate {:?}",
        key_set(&none),
        key_set(&accurate)
    );
    if let Some(total) = none.pages.first().and_then(|page| page["total"].as_u64()) {
        ensure!(
            usize::try_from(total).ok() == Some(count),
            "_total=none gives total {total}, but {count} studies match"
        );
    }
    Ok(())
}

async fn summary_count(ctx: &mut Ctx) -> Outcome {
    if ctx.mode == Mode::Write {
        fixtures(ctx).await?;
    }
    let all = patient_studies(ctx, &[]).await?;
    let patient = fill(ctx, "{patient}")?;
    let pairs =
        [("patient.identifier".to_owned(), patient), ("_summary".to_owned(), "count".to_owned())];
    let exchange = ctx.get(format!("ImagingStudy?{}", query(&pairs))).await?;
    let bundle = searchset(&exchange)?;
    let entries = bundle["entry"].as_array().map_or(0, Vec::len);
    ensure!(entries == 0, "_summary=count answered {entries} entries");
    ensure!(
        bundle["total"].as_u64() == u64::try_from(all.matches.len()).ok(),
        "_summary=count says total {}, but {} studies match",
        bundle["total"],
        all.matches.len()
    );
    Ok(())
}

/// The tag R4 puts on a resource that is not whole (search.html#summary, v3 ObservationValue).
const SUBSETTED: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";

/// The top-level elements of a type's R4 base definition (`effective[x]` a choice), with whether each is a
/// summary element and its minimum cardinality.
fn base_elements(ctx: &Ctx, resource_type: &str) -> Result<Vec<(String, bool, u64)>, Stop> {
    let url = format!("http://hl7.org/fhir/StructureDefinition/{resource_type}");
    if ctx.profiles.resource(ConformanceKind::StructureDefinition, &url).is_none() {
        return Err(Stop::skip(format!("the R4 definition {url} is not loaded")));
    }
    let snapshot = ctx
        .profiles
        .snapshot(&url)
        .map_err(|error| Stop::error(format!("the snapshot of {url}: {error}")))?;
    Ok(snapshot
        .iter()
        .filter_map(|element| {
            let path = element["path"].as_str()?;
            let name = path.strip_prefix(resource_type)?.strip_prefix('.')?;
            (!name.contains('.')).then(|| {
                (
                    name.to_owned(),
                    element["isSummary"] == true,
                    element["min"].as_u64().unwrap_or(0),
                )
            })
        })
        .collect())
}

/// The base element a top-level JSON key is (`effectiveDateTime` → `effective`, `_status` → `status`).
fn element_of<'a>(
    key: &str,
    elements: &'a [(String, bool, u64)],
) -> Option<&'a (String, bool, u64)> {
    let key = key.strip_prefix('_').unwrap_or(key);
    elements.iter().find(|(name, _, _)| match name.strip_suffix("[x]") {
        Some(choice) => key
            .strip_prefix(choice)
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase())),
        None => name == key,
    })
}

fn subsetted(resource: &Value) -> bool {
    resource["meta"]["tag"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|tag| tag["system"] == SUBSETTED && tag["code"] == "SUBSETTED")
}

/// The patient's reports with `extra`; in write mode the fixture report must be among them.
async fn subset_of_reports(ctx: &mut Ctx, extra: (&str, &str)) -> Result<Searched, Stop> {
    let fixtures = if ctx.mode == Mode::Write { Some(fixtures(ctx).await?) } else { None };
    let pairs = [
        ("patient.identifier".to_owned(), fill(ctx, "{patient}")?),
        (extra.0.to_owned(), extra.1.to_owned()),
    ];
    let found = search(ctx, "DiagnosticReport", &pairs).await?;
    if let Some(fixtures) = fixtures {
        let report = fixture_key(&fixtures, "report")?;
        ensure!(found.match_keys().contains(&report), "the report {report} is not matched");
    } else if found.matches.is_empty() {
        return Err(Stop::skip("nothing matched: give inputs that name data on the server"));
    }
    // A SHOULD of R4: noted, not failed.
    let untagged: Vec<String> =
        found.matches.iter().filter(|resource| !subsetted(resource)).map(key_of).collect();
    if !untagged.is_empty() {
        ctx.info(format!("not tagged SUBSETTED: {}", untagged.join(", ")));
    }
    Ok(found)
}

async fn summary_true(ctx: &mut Ctx) -> Outcome {
    let elements = base_elements(ctx, "DiagnosticReport")?;
    let found = subset_of_reports(ctx, ("_summary", "true")).await?;
    for resource in &found.matches {
        for key in resource.as_object().into_iter().flat_map(|object| object.keys()) {
            if key == "resourceType" {
                continue;
            }
            let summary = element_of(key, &elements).is_some_and(|(_, summary, _)| *summary);
            ensure!(summary, "{} has {key}, not a summary element", key_of(resource));
        }
    }
    Ok(())
}

async fn elements(ctx: &mut Ctx) -> Outcome {
    let elements = base_elements(ctx, "DiagnosticReport")?;
    let found = subset_of_reports(ctx, ("_elements", "status,subject")).await?;
    for resource in &found.matches {
        for key in resource.as_object().into_iter().flat_map(|object| object.keys()) {
            let allowed =
                matches!(key.as_str(), "resourceType" | "id" | "meta" | "status" | "subject")
                    || element_of(key, &elements).is_some_and(|(_, _, min)| *min > 0);
            ensure!(
                allowed,
                "{} has {key}, not asked for with _elements=status,subject",
                key_of(resource)
            );
        }
        ensure!(
            resource.get("subject").is_some(),
            "{} has no subject, asked for with _elements",
            key_of(resource)
        );
    }
    Ok(())
}
