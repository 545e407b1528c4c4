//! Group: the core REST interactions of R4 http.html on a Patient of the kit's own: conditional create,
//! read, update with `If-Match`, vread, history, delete and 410, the headers (`Location`, `ETag`,
//! `Last-Modified`, `Content-Type`) and an OperationOutcome with every error; the type and system history
//! since the fixtures were written, and conditional delete.

use std::collections::BTreeMap;

use hyper::Method;
use serde_json::{Value, json};

use super::support::{
    MRN_SYSTEM, TAG_SYSTEM, capabilities, expect_outcome, fixture_key, fixtures, interaction_codes,
    key_of, link, resource_capability, rest_patient, type_and_id,
};
use crate::client::{Call, Exchange};
use crate::context::{Ctx, Mode};
use crate::model::{GroupDef, Outcome, Stop, TestDef, body, ensure};

pub(crate) fn group() -> GroupDef {
    GroupDef {
        id: "core-rest",
        title: "Core REST interactions",
        description: "R4 http.html on a Patient the kit creates (write mode).",
        tests: vec![
            TestDef::new("create", "A conditional create answers 201 with Location, ETag and Last-Modified", "R4 http.html#cond-update: PUT [type]?identifier with no match creates; 201 with Location [base]/Patient/id/_history/1, ETag W/\"1\", Last-Modified, application/fhir+json.", body!(create)),
            TestDef::new("read", "Read answers 200 with the resource, its ETag and Last-Modified", "R4 http.html#read: ETag is W/\"versionId\", Last-Modified meta.lastUpdated.", body!(read)),
            TestDef::new("update", "An update with a matching If-Match makes version 2", "R4 http.html#concurrency: PUT [type]/id with If-Match W/\"1\" answers 200, ETag W/\"2\".", body!(update)),
            TestDef::new("stale-if-match", "An update with a stale If-Match is refused with 412", "R4 http.html#concurrency: 412 Precondition Failed when the version does not match, with an OperationOutcome.", body!(stale_if_match)),
            TestDef::new("vread", "Vread answers the first version as it was", "R4 http.html#vread: GET [type]/id/_history/1.", body!(vread)),
            TestDef::new("history", "Instance history lists both versions, newest first", "R4 http.html#history: a Bundle of type history.", body!(history)),
            TestDef::new("patch", "A JSON Patch, when declared, makes the next version", "R4 http.html#patch: PATCH [type]/id with application/json-patch+json answers 200 and the patched resource. Omitted unless the type declares patch (the guide does not require it).", body!(patch)),
            TestDef::new("not-found", "Reading an unknown id answers 404 with an OperationOutcome", "R4 http.html#read: 404 Not Found for an unknown resource.", body!(not_found)),
            TestDef::new("delete", "Delete answers 200 or 204, and a read of the deleted resource 410", "R4 http.html#delete: a later read is 410 Gone, with an OperationOutcome.", body!(delete)),
            TestDef::new("bad-json", "A body that is not JSON is refused with 400 and an OperationOutcome", "R4 http.html: 400 Bad Request when the resource cannot be parsed.", body!(bad_json)),
            TestDef::new("bad-content-type", "A body of an unsupported media type is refused with 415", "R4 http.html#mime-type; 415 Unsupported Media Type with an OperationOutcome (as HAPI); optional, R4 names no status for it.", body!(bad_content_type)).optional(),
            TestDef::new("xml", "XML, when declared, is served as application/fhir+xml", "R4 http.html#mime-type; the guide accepts XML but prefers JSON. Omitted unless the CapabilityStatement lists xml.", body!(xml)),
            TestDef::new("type-history", "Type history since the fixtures were written lists the order's version, newest first", "R4 http.html#history: GET [type]/_history?_since, a Bundle of type history whose entries have request and response (bdl-3, bdl-4), the run's own versions newest first. Omitted unless ServiceRequest declares history-type.", body!(type_history)),
            TestDef::new("system-history", "System history since the fixtures were written lists the patient's and the order's versions", "R4 http.html#history: GET [base]/_history?_since. Omitted unless the server declares history-system.", body!(system_history)),
            TestDef::new("conditional-delete", "A conditional delete by identifier deletes its one match", "R4 http.html#cdelete: DELETE [type]?identifier with one match deletes it (200 or 204), and a read of it is 410. Omitted unless Patient declares conditionalDelete.", body!(conditional_delete)),
        ],
    }
}

/// The REST Patient's `Type/id`, made by the create test.
fn rest_id(ctx: &Ctx) -> Result<String, Stop> {
    if ctx.mode == Mode::ReadOnly {
        return Err(Stop::skip("writes: write mode only"));
    }
    ctx.state
        .get("rest-patient")
        .cloned()
        .ok_or_else(|| Stop::skip("needs the Patient of the create test (1 of this group)"))
}

fn expect_headers(exchange: &Exchange, version: &str) -> Outcome {
    ensure!(
        exchange.is_fhir_json(),
        "{}: Content-Type {:?} is not application/fhir+json",
        exchange.label(),
        exchange.header("content-type")
    );
    let etag = exchange.header("etag");
    ensure!(
        etag == Some(&format!("W/\"{version}\"")),
        "{}: ETag {etag:?}, expected W/\"{version}\"",
        exchange.label()
    );
    ensure!(exchange.header("last-modified").is_some(), "{}: no Last-Modified", exchange.label());
    Ok(())
}

async fn create(ctx: &mut Ctx) -> Outcome {
    if ctx.mode == Mode::ReadOnly {
        return Err(Stop::skip("writes: write mode only"));
    }
    let patient = rest_patient(ctx, "rest");
    let criteria = format!("Patient?identifier={MRN_SYSTEM}|MRN-{}-rest", ctx.run_id);
    let exchange = ctx.send(Call::with_json(Method::PUT, criteria, &patient)).await?;
    ensure!(exchange.status == 201, "{}: expected 201", exchange.label());
    let location = exchange.header("location").map(str::to_owned);
    let Some(key) = location.as_deref().and_then(type_and_id) else {
        return Err(Stop::fail(format!(
            "{}: Location {location:?} names no Patient/id",
            exchange.label()
        )));
    };
    ctx.created.push(key.clone());
    ctx.state.insert("rest-patient".to_owned(), key);
    expect_headers(&exchange, "1")
}

async fn read(ctx: &mut Ctx) -> Outcome {
    let key = rest_id(ctx)?;
    let exchange = ctx.get(key.clone()).await?;
    ensure!(exchange.status == 200, "{}: expected 200", exchange.label());
    let body = exchange.json_or_fail()?;
    ensure!(
        format!("Patient/{}", body["id"].as_str().unwrap_or_default()) == key,
        "the body's id is {}",
        body["id"]
    );
    expect_headers(&exchange, body["meta"]["versionId"].as_str().unwrap_or_default())
}

async fn update(ctx: &mut Ctx) -> Outcome {
    let key = rest_id(ctx)?;
    let mut patient = rest_patient(ctx, "rest");
    patient["id"] = json!(key.trim_start_matches("Patient/"));
    patient["birthDate"] = json!("1980-05-07");
    let exchange =
        ctx.send(Call::with_json(Method::PUT, key, &patient).header("if-match", "W/\"1\"")).await?;
    ensure!(exchange.status == 200, "{}: expected 200", exchange.label());
    expect_headers(&exchange, "2")
}

async fn stale_if_match(ctx: &mut Ctx) -> Outcome {
    let key = rest_id(ctx)?;
    let mut patient = rest_patient(ctx, "rest");
    patient["id"] = json!(key.trim_start_matches("Patient/"));
    let exchange =
        ctx.send(Call::with_json(Method::PUT, key, &patient).header("if-match", "W/\"1\"")).await?;
    expect_outcome(&exchange, &[412])
}

async fn vread(ctx: &mut Ctx) -> Outcome {
    let key = rest_id(ctx)?;
    let exchange = ctx.get(format!("{key}/_history/1")).await?;
    ensure!(exchange.status == 200, "{}: expected 200", exchange.label());
    let body = exchange.json_or_fail()?;
    ensure!(body["meta"]["versionId"] == "1", "versionId is {}", body["meta"]["versionId"]);
    ensure!(body["birthDate"] == "1980-05-06", "version 1 has birthDate {}", body["birthDate"]);
    Ok(())
}

async fn history(ctx: &mut Ctx) -> Outcome {
    let key = rest_id(ctx)?;
    let exchange = ctx.get(format!("{key}/_history")).await?;
    ensure!(exchange.status == 200, "{}: expected 200", exchange.label());
    let body = exchange.json_or_fail()?;
    ensure!(body["type"] == "history", "a Bundle of type {}", body["type"]);
    let versions: Vec<String> = body["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|entry| entry["resource"]["meta"]["versionId"].as_str().unwrap_or_default().to_owned())
        .collect();
    ensure!(versions == ["2", "1"], "versions {versions:?}, expected [\"2\", \"1\"]");
    Ok(())
}

async fn not_found(ctx: &mut Ctx) -> Outcome {
    let exchange = ctx.get(format!("Patient/no-such-{}", ctx.run_id)).await?;
    expect_outcome(&exchange, &[404])
}

async fn delete(ctx: &mut Ctx) -> Outcome {
    let key = rest_id(ctx)?;
    let exchange = ctx
        .send(Call { method: Method::DELETE, target: key.clone(), headers: Vec::new(), body: None })
        .await?;
    ensure!(matches!(exchange.status, 200 | 204), "{}: expected 200 or 204", exchange.label());
    ctx.created.retain(|created| *created != key);
    let read = ctx.get(key).await?;
    expect_outcome(&read, &[410])
}

async fn bad_json(ctx: &mut Ctx) -> Outcome {
    if ctx.mode == Mode::ReadOnly {
        return Err(Stop::skip("writes: write mode only"));
    }
    let call = Call {
        method: Method::PUT,
        target: format!("Patient?identifier={MRN_SYSTEM}|MRN-{}-bad", ctx.run_id),
        headers: vec![("content-type", "application/fhir+json".to_owned())],
        body: Some("{\"resourceType\": \"Patient\", ".to_owned()),
    };
    let exchange = ctx.send(call).await?;
    expect_outcome(&exchange, &[400])
}

async fn bad_content_type(ctx: &mut Ctx) -> Outcome {
    if ctx.mode == Mode::ReadOnly {
        return Err(Stop::skip("writes: write mode only"));
    }
    let patient = rest_patient(ctx, "bad");
    let call = Call::with_json(
        Method::PUT,
        format!("Patient?identifier={MRN_SYSTEM}|MRN-{}-bad", ctx.run_id),
        &patient,
    )
    .header("content-type", "text/plain");
    let exchange = ctx.send(call).await?;
    expect_outcome(&exchange, &[415])
}

async fn patch(ctx: &mut Ctx) -> Outcome {
    let key = rest_id(ctx)?;
    let cs = capabilities(ctx).await?;
    let declared = resource_capability(&cs, "Patient")
        .is_some_and(|resource| interaction_codes(&resource["interaction"]).contains("patch"));
    if !declared {
        return Err(Stop::omit("Patient does not declare the patch interaction"));
    }
    let operations = json!([{"op": "replace", "path": "/birthDate", "value": "1980-05-08"}]);
    let call = Call::with_json(Method::PATCH, key, &operations)
        .header("content-type", "application/json-patch+json")
        .header("if-match", "W/\"2\"");
    let exchange = ctx.send(call).await?;
    ensure!(exchange.status == 200, "{}: expected 200", exchange.label());
    let body = exchange.json_or_fail()?;
    ensure!(body["birthDate"] == "1980-05-08", "the patched birthDate is {}", body["birthDate"]);
    expect_headers(&exchange, "3")
}

async fn xml(ctx: &mut Ctx) -> Outcome {
    let cs = capabilities(ctx).await?;
    let declared = cs["format"].as_array().into_iter().flatten().any(|format| {
        format.as_str().is_some_and(|format| format == "xml" || format.ends_with("+xml"))
    });
    if !declared {
        return Err(Stop::omit("the CapabilityStatement does not list xml"));
    }
    let exchange = ctx.send(Call::get("metadata").header("accept", "application/fhir+xml")).await?;
    ensure!(exchange.status == 200, "{}: expected 200", exchange.label());
    let media = exchange.header("content-type").unwrap_or_default();
    ensure!(
        media.starts_with("application/fhir+xml"),
        "Content-Type {media:?} is not application/fhir+xml"
    );
    Ok(())
}

/// Most pages of a history the kit reads.
const MAX_HISTORY_PAGES: usize = 50;

/// `GET {target}` and its `next` pages: the entries of a Bundle of type history, each with its request and
/// response (bdl-3, bdl-4).
async fn history_entries(ctx: &mut Ctx, target: String) -> Result<Vec<Value>, Stop> {
    let mut entries = Vec::new();
    let mut next = Some(target);
    let mut pages = 0;
    while let Some(target) = next {
        pages += 1;
        ensure!(pages <= MAX_HISTORY_PAGES, "more than {MAX_HISTORY_PAGES} pages of history");
        let exchange = ctx.get(target).await?;
        ensure!(exchange.status == 200, "{}: expected 200", exchange.label());
        let bundle = exchange.json_or_fail()?;
        ensure!(bundle["type"] == "history", "a Bundle of type {}", bundle["type"]);
        for entry in bundle["entry"].as_array().into_iter().flatten() {
            ensure!(
                entry["request"]["method"].is_string() && entry["request"]["url"].is_string(),
                "a history entry has no request method and url (bdl-3)"
            );
            ensure!(
                entry["response"]["status"].is_string(),
                "a history entry has no response status (bdl-4)"
            );
            entries.push(entry.clone());
        }
        next = link(&bundle, "next");
    }
    Ok(entries)
}

/// The `Type/id` of each history entry's resource (its request url for a deletion).
fn entry_keys(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .filter_map(|entry| match entry.get("resource") {
            Some(resource) => Some(key_of(resource)),
            None => entry["request"]["url"].as_str().and_then(type_and_id),
        })
        .collect()
}

/// The `meta.lastUpdated` of a fixture, as a `_since` value.
fn written_at(fixtures: &BTreeMap<String, Value>, key: &str) -> Result<String, Stop> {
    fixtures
        .get(key)
        .and_then(|resource| resource["meta"]["lastUpdated"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| Stop::fail(format!("the stored {key} has no meta.lastUpdated")))
}

async fn type_history(ctx: &mut Ctx) -> Outcome {
    let cs = capabilities(ctx).await?;
    let declared = resource_capability(&cs, "ServiceRequest").is_some_and(|resource| {
        interaction_codes(&resource["interaction"]).contains("history-type")
    });
    if !declared {
        return Err(Stop::omit("ServiceRequest does not declare history-type"));
    }
    let fixtures = fixtures(ctx).await?;
    let since = written_at(&fixtures, "order")?;
    let query = super::support::query(&[("_since".to_owned(), since)]);
    let entries = history_entries(ctx, format!("ServiceRequest/_history?{query}")).await?;
    let keys = entry_keys(&entries);
    ensure!(
        keys.iter().all(|key| key.starts_with("ServiceRequest/")),
        "the ServiceRequest history holds {keys:?}"
    );
    let order = fixture_key(&fixtures, "order")?;
    ensure!(keys.contains(&order), "the order {order} is not in the type history {keys:?}");
    // Newest first among the run's own versions: another client's transaction, running at the same time, may
    // commit in another order than its lastUpdated says.
    let run_id = ctx.run_id.clone();
    let times: Vec<&str> = entries
        .iter()
        .map(|entry| &entry["resource"])
        .filter(|resource| {
            resource["meta"]["tag"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|tag| tag["system"] == TAG_SYSTEM && tag["code"] == run_id.as_str())
        })
        .filter_map(|resource| resource["meta"]["lastUpdated"].as_str())
        .collect();
    ensure!(
        !times.is_empty(),
        "none of the run's versions (tagged {TAG_SYSTEM}|{run_id}) is listed"
    );
    let ranges: Vec<i128> = times
        .iter()
        .filter_map(|time| crate::matcher::date_range(time).map(|range| range.0))
        .collect();
    ensure!(ranges.windows(2).all(|pair| pair[0] >= pair[1]), "not newest first: {times:?}");
    Ok(())
}

async fn system_history(ctx: &mut Ctx) -> Outcome {
    let cs = capabilities(ctx).await?;
    let declared = cs["rest"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|rest| interaction_codes(&rest["interaction"]).contains("history-system"));
    if !declared {
        return Err(Stop::omit("the server does not declare history-system"));
    }
    let fixtures = fixtures(ctx).await?;
    let since = written_at(&fixtures, "patient")?;
    let query = super::support::query(&[("_since".to_owned(), since)]);
    let entries = history_entries(ctx, format!("_history?{query}")).await?;
    let keys = entry_keys(&entries);
    for fixture in ["patient", "order"] {
        let key = fixture_key(&fixtures, fixture)?;
        ensure!(keys.contains(&key), "the {fixture} {key} is not in the system history");
    }
    Ok(())
}

async fn conditional_delete(ctx: &mut Ctx) -> Outcome {
    let cs = capabilities(ctx).await?;
    let declared = resource_capability(&cs, "Patient")
        .and_then(|resource| resource["conditionalDelete"].as_str());
    if !matches!(declared, Some("single" | "multiple")) {
        return Err(Stop::omit("Patient does not declare conditionalDelete"));
    }
    if ctx.mode == Mode::ReadOnly {
        return Err(Stop::skip("writes: write mode only"));
    }
    let patient = rest_patient(ctx, "conditional-delete");
    let criteria = format!("Patient?identifier={MRN_SYSTEM}|MRN-{}-conditional-delete", ctx.run_id);
    let created = ctx.send(Call::with_json(Method::PUT, criteria.clone(), &patient)).await?;
    ensure!(created.status == 201, "{}: expected 201", created.label());
    let Some(key) = created.header("location").and_then(type_and_id) else {
        return Err(Stop::fail(format!("{}: no Location Patient/id", created.label())));
    };
    ctx.created.push(key.clone());
    let deleted = ctx
        .send(Call { method: Method::DELETE, target: criteria, headers: Vec::new(), body: None })
        .await?;
    ensure!(matches!(deleted.status, 200 | 204), "{}: expected 200 or 204", deleted.label());
    let read = ctx.get(key.clone()).await?;
    expect_outcome(&read, &[410])?;
    ctx.created.retain(|created| *created != key);
    Ok(())
}
