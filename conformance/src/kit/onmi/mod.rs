//! The `onmi` kit: a server claiming the Ontario MI FHIR interactions (`/work/shared/spec/ONTARIO-MI.md` §2),
//! checked as the guide and FHIR R4 say: the CapabilityStatement, submission, the core REST interactions,
//! the search framework, and read and search of each of the guide's types.

mod capability;
mod must_support;
mod resources;
mod rest;
mod search;
mod submission;
mod support;

use hyper::Method;

use crate::client::Call;
use crate::context::Ctx;
use crate::model::{InputDef, SuiteDef};

pub(crate) fn suite() -> SuiteDef {
    let mut groups = vec![capability::group(), submission::group(), rest::group(), search::group()];
    groups.extend(resources::groups());
    SuiteDef {
        id: "onmi",
        title: "Ontario MI FHIR R4 server",
        description: "The Ontario MI interactions (submission, Search MI Order/Report/ImagingStudy/DocumentReference, read) and the FHIR R4 rules under them.",
        inputs: vec![
            InputDef {
                name: "patient_identifier",
                description: "read-only mode: a patient's identifier as system|value (MRN, HCN or ECID)",
            },
            InputDef {
                name: "accession",
                description: "read-only mode: an accession number of that patient's order, study and report, as system|value",
            },
            InputDef {
                name: "procedure_code",
                description: "read-only mode: a procedure code of that patient's orders, as system|code",
            },
            InputDef {
                name: "practitioner_identifier",
                description: "read-only mode: a practitioner's licence, as system|value",
            },
            InputDef {
                name: "placer_number",
                description: "read-only mode: the placer order number (the value alone) of that order and its report",
            },
            InputDef {
                name: "organization_identifier",
                description: "read-only mode: an organization's UPI, as system|value",
            },
        ],
        groups,
    }
}

/// Deletes the index entries of the run's patient, then what the run created, newest first.
pub(crate) async fn cleanup(ctx: &mut Ctx) -> (usize, usize) {
    let mut targets = Vec::new();
    let patient = format!("{}|MRN-{}", support::MRN_SYSTEM, ctx.run_id);
    if !ctx.created.is_empty()
        && let Ok(found) =
            support::search(ctx, "DocumentReference", &[("patient.identifier".to_owned(), patient)])
                .await
    {
        targets.extend(found.match_keys());
    }
    targets.extend(ctx.created.iter().rev().cloned());
    let (mut deleted, mut failed) = (0, 0);
    for target in targets {
        let call = Call { method: Method::DELETE, target, headers: Vec::new(), body: None };
        match ctx.send(call).await {
            Ok(exchange) if matches!(exchange.status, 200 | 204) => deleted += 1,
            _ => failed += 1,
        }
    }
    ctx.take_record();
    (deleted, failed)
}
