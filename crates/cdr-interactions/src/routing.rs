//! Report routing: the `recipient` index rows of each DiagnosticReport, the clinicians it must reach. They are
//! the `requester` of each ServiceRequest the report is `basedOn` and the order's copy-to recipients (HL7 v2
//! OBR-28 "Result Copies To", carried as the `result-copies-to` extension, indexed by the ServiceRequest
//! parameter of the same code), those that are a Practitioner or PractitionerRole (or a reference by
//! identifier alone, such as a licence number). See ARCHITECTURE.md, "Report routing".
//!
//! The rows come from other resources than the report, so extraction (pure, one resource at a time) cannot
//! compute them: [`route`] runs in the write transaction, after its versions are written and before it
//! commits, from the index rows as the transaction sees them (its own writes included, so a Bundle that
//! writes the order and the report together routes the report). It rewrites the `recipient` rows of every
//! report the transaction wrote and of every report based on an order it wrote (found by the reverse
//! reference index), so a report written before its order is routed when the order arrives, and a changed
//! order re-routes its reports. A clinician's licence is not copied: `recipient.identifier` chains through the
//! Practitioner's own identifier rows, so a changed licence needs no re-routing.
//!
//! Concurrency (PostgreSQL): the orders a report is routed from are locked `FOR SHARE` before they are read,
//! so a report written while its order is rewritten waits for that order's commit and reads the new order,
//! and an order rewritten after the report's lock waits for the report's commit, and then finds the report
//! among its referrers. When both transactions already hold rows the other needs, PostgreSQL breaks the
//! deadlock by rolling one back (a conflict: a transaction Bundle retries, a single write answers 409).

use std::collections::{BTreeMap, BTreeSet};

use cdr_model::{LogicalId, ResourceType};
use cdr_search::{IndexEntry, IndexValue, ReferenceIndex, SearchParamRegistry, SearchParamType};
use cdr_store::{RowLock, StoreError, StoreTx};

/// The DiagnosticReport parameter that routing writes (`profiles/SearchParameter-DiagnosticReport-recipient.json`).
pub(crate) const RECIPIENT: &str = "recipient";

/// The report's orders (R4 `DiagnosticReport-based-on`).
const BASED_ON: &str = "based-on";

/// The order's parameters whose references are its recipients: R4 `ServiceRequest-requester` and
/// `profiles/SearchParameter-ServiceRequest-result-copies-to.json`.
const ORDER_RECIPIENTS: [&str; 2] = ["requester", "result-copies-to"];

/// The types a recipient may be.
const RECIPIENT_TYPES: [&str; 2] = ["Practitioner", "PractitionerRole"];

/// Rewrites the `recipient` rows of the reports among `changed` and of the reports based on the orders among
/// `changed`, from their orders as this transaction sees them. Does nothing when the registry has no
/// `recipient` parameter.
///
/// # Errors
/// On storage failure (a deadlock with a concurrent writer is [`StoreError::Conflict`]).
pub(crate) async fn route(
    tx: &mut StoreTx,
    registry: &SearchParamRegistry,
    changed: &[(ResourceType, LogicalId)],
) -> Result<(), StoreError> {
    let (Ok(report_type), Ok(order_type)) =
        (ResourceType::parse("DiagnosticReport"), ResourceType::parse("ServiceRequest"))
    else {
        return Ok(());
    };
    if registry.get(report_type, RECIPIENT).is_none() {
        return Ok(());
    }
    let mut reports: BTreeSet<LogicalId> = changed
        .iter()
        .filter(|(res_type, _)| *res_type == report_type)
        .map(|(_, id)| id.clone())
        .collect();
    let orders: Vec<&LogicalId> =
        changed.iter().filter(|(res_type, _)| *res_type == order_type).map(|(_, id)| id).collect();
    if !orders.is_empty() {
        reports.extend(tx.referrers(report_type, BASED_ON, order_type, &orders).await?);
    }
    if reports.is_empty() {
        return Ok(());
    }
    let report_ids: Vec<&LogicalId> = reports.iter().collect();
    let mut orders_of: BTreeMap<LogicalId, Vec<LogicalId>> = BTreeMap::new();
    for row in tx.references(report_type, &report_ids, &[BASED_ON]).await? {
        let order = row
            .reference
            .target_id
            .as_deref()
            .filter(|_| row.reference.target_type == Some(order_type))
            .and_then(|id| LogicalId::parse(id).ok());
        if let Some(order) = order {
            orders_of.entry(row.res_id).or_default().push(order);
        }
    }
    let all_orders: BTreeSet<&LogicalId> = orders_of.values().flatten().collect();
    let mut recipients_of: BTreeMap<LogicalId, Vec<ReferenceIndex>> = BTreeMap::new();
    if !all_orders.is_empty() {
        let locks: Vec<(ResourceType, &LogicalId, RowLock)> =
            all_orders.iter().map(|id| (order_type, *id, RowLock::Share)).collect();
        tx.lock_rows(&locks).await?;
        let order_ids: Vec<&LogicalId> = all_orders.into_iter().collect();
        for row in tx.references(order_type, &order_ids, &ORDER_RECIPIENTS).await? {
            if is_recipient(&row.reference) {
                recipients_of.entry(row.res_id).or_default().push(row.reference);
            }
        }
    }
    let rows: Vec<(LogicalId, Vec<IndexEntry>)> = reports
        .into_iter()
        .map(|report| {
            let mut entries: Vec<IndexEntry> = Vec::new();
            let orders = orders_of.get(&report).map_or(&[][..], Vec::as_slice);
            for reference in orders.iter().filter_map(|order| recipients_of.get(order)).flatten() {
                let entry = IndexEntry {
                    code: RECIPIENT.to_owned(),
                    param_type: SearchParamType::Reference,
                    value: IndexValue::Reference(reference.clone()),
                };
                if !entries.contains(&entry) {
                    entries.push(entry);
                }
            }
            (report, entries)
        })
        .collect();
    tx.replace_param_index(report_type, RECIPIENT, SearchParamType::Reference, &rows).await
}

/// Whether an order's reference names a recipient: a Practitioner or PractitionerRole, or a reference by
/// identifier alone whose type is not given.
fn is_recipient(reference: &ReferenceIndex) -> bool {
    match reference.target_type {
        Some(target_type) => RECIPIENT_TYPES.contains(&target_type.as_str()),
        None => reference.identifier.is_some() && reference.target_id.is_none(),
    }
}
