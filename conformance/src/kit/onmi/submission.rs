//! Group: submission (guide §4.1.1, §4.1.3, R4 http.html#transaction): the fixtures' transaction of
//! conditional PUTs by business identifier, resubmission, more than one match, atomicity, reference rewriting,
//! ids the client must not send, an amended report's history, the DocumentReference index entries, and
//! asynchronous submission when declared.

use std::time::Duration;

use hyper::Method;
use serde_json::{Value, json};

use super::support::{
    ACCESSION_SYSTEM, FIXTURE_KEYS, MRN_SYSTEM, RUN_SYSTEM, capabilities, expect_outcome,
    fixture_key, fixtures, interaction_codes, key_of, rest_patient, search, submission,
    type_and_id,
};
use crate::client::Call;
use crate::context::Ctx;
use crate::model::{GroupDef, Outcome, Stop, TestDef, body, ensure};

pub(crate) fn group() -> GroupDef {
    GroupDef {
        id: "submission",
        title: "Submission",
        description: "Transaction Bundles of conditional PUTs by business identifier (write mode).",
        tests: vec![
            TestDef::new(
                "submit",
                "A submission of new resources is accepted: 201 for each entry",
                "Guide §4.1.1: POST [base] with a transaction of PUT [type]?identifier=system|value entries; R4: each entry's response has its status and location.",
                body!(submit),
            ),
            TestDef::new(
                "resubmit",
                "The same submission again updates: 200 for each entry, same ids",
                "Guide: the business identifier decides whether the resource is created or updated (R4 conditional update, one match).",
                body!(resubmit),
            ),
            TestDef::new(
                "multiple-matches",
                "A conditional PUT that matches more than one resource rejects the whole Bundle with 412",
                "Guide: \"If multiple matches are found, no action shall be performed and the bundle will be rejected\"; R4: 412 Precondition Failed.",
                body!(multiple_matches),
            ),
            TestDef::new(
                "atomic",
                "A Bundle with one invalid entry is rejected and writes nothing",
                "Guide: \"servers will either accept all actions or reject all resources\" (R4 transaction).",
                body!(atomic),
            ),
            TestDef::new(
                "references",
                "References between entries are rewritten to the ids the server assigned",
                "R4 http.html#trules: urn:uuid references become Type/id of the created resources.",
                body!(references),
            ),
            TestDef::new(
                "no-ids",
                "A submitted resource with an id is refused",
                "Guide: a resource in a submission SHALL NOT include the id; the server assigns it (400 with an OperationOutcome).",
                body!(no_ids),
            ),
            TestDef::new(
                "amended",
                "An amended report is a new version; the history keeps the final one",
                "Resubmitting the report as amended updates it; GET DiagnosticReport/id/_history lists both versions, newest first.",
                body!(amended),
            ),
            TestDef::new(
                "index-entries",
                "Each order, study and report has a DocumentReference index entry that resolves",
                "Guide §2.1: a DocumentReference is created internally for each order, report and imaging study; its content.attachment.url is read to fetch the entity.",
                body!(index_entries),
            ),
            TestDef::new(
                "async",
                "Asynchronous submission, when declared, answers 202 and then the transaction-response",
                "Guide: synchronous, or asynchronous with HTTP 202 (R4 async.html). Omitted unless the transaction interaction documents Prefer: respond-async.",
                body!(asynchronous),
            ),
        ],
    }
}

/// The status of each entry of a transaction-response.
fn entry_statuses(response: &Value) -> Vec<String> {
    response["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|entry| entry["response"]["status"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn submit(ctx: &mut Ctx) -> Outcome {
    let fixtures = fixtures(ctx).await?;
    let Some(exchange) = ctx.submission.clone() else {
        return Err(Stop::error("the fixtures were submitted without an answer on record"));
    };
    let response = exchange.json_or_fail()?;
    let statuses = entry_statuses(&response);
    // The Organization (one UPI) may exist from an earlier run: 200 or 201.
    for (key, status) in FIXTURE_KEYS.iter().zip(&statuses) {
        let expected: &[&str] = if *key == "organization" { &["201", "200"] } else { &["201"] };
        ensure!(
            expected.iter().any(|code| status.starts_with(code)),
            "the {key} entry answered {status:?}, expected {expected:?}"
        );
    }
    ctx.info(format!("{} resources submitted", fixtures.len()));
    Ok(())
}

async fn resubmit(ctx: &mut Ctx) -> Outcome {
    let fixtures = fixtures(ctx).await?;
    let bundle = submission(ctx, "")?;
    let exchange = ctx.send(Call::with_json(Method::POST, "", &bundle)).await?;
    ensure!(exchange.status == 200, "{}: expected 200", exchange.label());
    let response = exchange.json_or_fail()?;
    for ((key, status), entry) in FIXTURE_KEYS
        .iter()
        .zip(entry_statuses(&response))
        .zip(response["entry"].as_array().into_iter().flatten())
    {
        ensure!(status.starts_with("200"), "the {key} entry answered {status:?}, expected 200");
        let location = type_and_id(entry["response"]["location"].as_str().unwrap_or_default());
        let stored = fixture_key(&fixtures, key)?;
        ensure!(
            location.as_deref() == Some(stored.as_str()),
            "the {key} entry updated {location:?}, not {stored}"
        );
    }
    Ok(())
}

async fn multiple_matches(ctx: &mut Ctx) -> Outcome {
    let fixtures = fixtures(ctx).await?;
    // A second Patient with the run identifier, so that identifier matches two.
    let second = rest_patient(ctx, "second");
    let criteria = format!("Patient?identifier={MRN_SYSTEM}|MRN-{}-second", ctx.run_id);
    let created = ctx.send(Call::with_json(Method::PUT, criteria, &second)).await?;
    ensure!(
        matches!(created.status, 200 | 201),
        "{}: the second Patient cannot be stored",
        created.label()
    );
    if created.status == 201
        && let Some(location) = created.header("location").and_then(type_and_id)
    {
        ctx.created.push(location);
    }
    let mut bundle = submission(ctx, "")?;
    bundle["entry"][0]["request"]["url"] =
        json!(format!("Patient?identifier={RUN_SYSTEM}|{}", ctx.run_id));
    bundle["entry"][0]["resource"]["gender"] = json!("male");
    let exchange = ctx.send(Call::with_json(Method::POST, "", &bundle)).await?;
    expect_outcome(&exchange, &[412])?;
    let patient = ctx.get(fixture_key(&fixtures, "patient")?).await?;
    let patient = patient.json_or_fail()?;
    ensure!(
        patient["gender"] == fixtures["patient"]["gender"],
        "the rejected Bundle changed the Patient"
    );
    Ok(())
}

async fn atomic(ctx: &mut Ctx) -> Outcome {
    fixtures(ctx).await?;
    let mut bundle = submission(ctx, "-atomic")?;
    // The report loses its required status: the whole Bundle must fail.
    if let Some(report) = bundle["entry"][5]["resource"].as_object_mut() {
        report.remove("status");
    }
    let exchange = ctx.send(Call::with_json(Method::POST, "", &bundle)).await?;
    ensure!((400..500).contains(&exchange.status), "{}: expected a 4xx", exchange.label());
    expect_outcome(&exchange, &[exchange.status])?;
    let mrn = format!("{MRN_SYSTEM}|MRN-{}-atomic", ctx.run_id);
    let found = search(ctx, "Patient", &[("identifier".to_owned(), mrn.clone())]).await?;
    ensure!(
        found.matches.is_empty(),
        "the rejected Bundle left {} stored (Patient?identifier={mrn})",
        found.match_keys().join(", ")
    );
    let accession = format!("{ACCESSION_SYSTEM}|ACC-{}-atomic", ctx.run_id);
    let pairs =
        [("patient.identifier".to_owned(), mrn), ("identifier".to_owned(), accession.clone())];
    let found = search(ctx, "ServiceRequest", &pairs).await?;
    ensure!(
        found.matches.is_empty(),
        "the rejected Bundle left {} stored (ServiceRequest?identifier={accession})",
        found.match_keys().join(", ")
    );
    Ok(())
}

async fn references(ctx: &mut Ctx) -> Outcome {
    let fixtures = fixtures(ctx).await?;
    let expect = |resource: &str, path: &str, value: &Value, target: &str| -> Outcome {
        let reference = value["reference"].as_str().unwrap_or_default();
        let key = type_and_id(reference);
        ensure!(key.as_deref() == Some(target), "{resource}.{path} is {reference:?}, not {target}");
        Ok(())
    };
    let patient = fixture_key(&fixtures, "patient")?;
    let order = fixture_key(&fixtures, "order")?;
    let study = &fixtures["study"];
    expect("ImagingStudy", "subject", &study["subject"], &patient)?;
    expect("ImagingStudy", "basedOn", &study["basedOn"][0], &order)?;
    let report = &fixtures["report"];
    expect("DiagnosticReport", "subject", &report["subject"], &patient)?;
    expect(
        "DiagnosticReport",
        "imagingStudy",
        &report["imagingStudy"][0],
        &fixture_key(&fixtures, "study")?,
    )?;
    expect(
        "DiagnosticReport",
        "resultsInterpreter",
        &report["resultsInterpreter"][0],
        &fixture_key(&fixtures, "practitioner")?,
    )?;
    expect(
        "ServiceRequest",
        "requester",
        &fixtures["order"]["requester"],
        &fixture_key(&fixtures, "practitioner")?,
    )?;
    Ok(())
}

async fn no_ids(ctx: &mut Ctx) -> Outcome {
    fixtures(ctx).await?;
    let mut bundle = submission(ctx, "-id")?;
    bundle["entry"][0]["resource"]["id"] = json!("chosen-by-client");
    let exchange = ctx.send(Call::with_json(Method::POST, "", &bundle)).await?;
    expect_outcome(&exchange, &[400, 422])
}

async fn amended(ctx: &mut Ctx) -> Outcome {
    let fixtures = fixtures(ctx).await?;
    let mut bundle = submission(ctx, "")?;
    bundle["entry"][5]["resource"]["status"] = json!("amended");
    let exchange = ctx.send(Call::with_json(Method::POST, "", &bundle)).await?;
    ensure!(exchange.status == 200, "{}: the amended report was not accepted", exchange.label());
    let report = fixture_key(&fixtures, "report")?;
    let history = ctx.get(format!("{report}/_history")).await?;
    ensure!(history.status == 200, "{}: expected 200", history.label());
    let bundle = history.json_or_fail()?;
    ensure!(bundle["type"] == "history", "the history is a Bundle of type {}", bundle["type"]);
    let statuses: Vec<&str> = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|entry| entry["resource"]["status"].as_str().unwrap_or("(deleted)"))
        .collect();
    ensure!(
        statuses.first() == Some(&"amended"),
        "the newest version's status is {:?}, not amended",
        statuses.first()
    );
    ensure!(statuses.contains(&"final"), "no version is final any more: {statuses:?}");
    Ok(())
}

async fn index_entries(ctx: &mut Ctx) -> Outcome {
    let fixtures = fixtures(ctx).await?;
    let patient = format!("{MRN_SYSTEM}|MRN-{}", ctx.run_id);
    let found =
        search(ctx, "DocumentReference", &[("patient.identifier".to_owned(), patient)]).await?;
    for source in ["order", "study", "report", "decoy-order", "study2"] {
        let key = fixture_key(&fixtures, source)?;
        let entry = found.matches.iter().find(|entry| {
            entry["context"]["related"].as_array().into_iter().flatten().any(|related| {
                related["reference"].as_str().and_then(type_and_id).as_deref() == Some(key.as_str())
            })
        });
        let Some(entry) = entry else {
            return Err(Stop::fail(format!("no DocumentReference index entry relates to {key}")));
        };
        let url = entry["content"][0]["attachment"]["url"].as_str().unwrap_or_default().to_owned();
        ensure!(
            type_and_id(&url).as_deref() == Some(key.as_str()),
            "{}: content.attachment.url {url:?} is not {key}",
            key_of(entry)
        );
        let read = ctx.get(url.clone()).await?;
        ensure!(read.status == 200, "{}: the index entry's url does not resolve", read.label());
    }
    Ok(())
}

/// How often and how long an asynchronous submission is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
const POLL_ATTEMPTS: usize = 240;

async fn asynchronous(ctx: &mut Ctx) -> Outcome {
    let cs = capabilities(ctx).await?;
    let documented = cs["rest"].as_array().into_iter().flatten().any(|rest| {
        interaction_codes(&rest["interaction"]).contains("transaction")
            && rest["interaction"].as_array().into_iter().flatten().any(|interaction| {
                interaction["code"] == "transaction"
                    && interaction["documentation"]
                        .as_str()
                        .is_some_and(|text| text.contains("respond-async"))
            })
    });
    if !documented {
        return Err(Stop::omit(
            "the transaction interaction does not document Prefer: respond-async",
        ));
    }
    fixtures(ctx).await?;
    // A submission of its own: the fixtures' report may have moved on (amended) since.
    let bundle = submission(ctx, "-async")?;
    let exchange = ctx
        .send(Call::with_json(Method::POST, "", &bundle).header("prefer", "respond-async"))
        .await?;
    ensure!(exchange.status == 202, "{}: expected 202", exchange.label());
    let Some(status_url) = exchange.header("content-location").map(str::to_owned) else {
        return Err(Stop::fail("the 202 has no Content-Location"));
    };
    for _ in 0..POLL_ATTEMPTS {
        let poll = ctx.get(status_url.clone()).await?;
        if poll.status == 202 {
            ctx.exchanges.pop();
            tokio::time::sleep(POLL_INTERVAL).await;
            continue;
        }
        ensure!(poll.status == 200, "{}: expected 200 once done", poll.label());
        let body = poll.json_or_fail()?;
        ensure!(
            body["type"] == "transaction-response",
            "the job's result is a {} {}",
            body["resourceType"],
            body["type"]
        );
        return Ok(());
    }
    Err(Stop::fail(format!("{status_url} still answers 202 after {POLL_ATTEMPTS} polls")))
}
