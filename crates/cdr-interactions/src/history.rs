//! history at system, type and instance level, paged newest first with keyset cursors. Under patient
//! confinement the store lists the versions of the resources now in the compartment, and of those only the
//! versions whose own body is in it are shown (deletions of such resources too: they carry no body), so a
//! page may hold fewer entries than `_count`. The cursor is a position in the change sequence, which the store
//! confines again on every page; made under confinement it also names the patient (`_cursor=seq:patient`), and
//! it is refused under another confinement than its own.

use cdr_model::{Bundle, BundleEntry, BundleLink, BundleType, Instant, Resource};
use cdr_store::{HistoryEntry, HistoryQuery, HistoryScope, WriteMethod};
use serde_json::json;

use crate::{Compartment, Engine, InteractionError, parse_id};

/// The parameters of a history request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryParams {
    /// `_count`.
    pub count: Option<u32>,
    /// `_since`: only versions written at or after this instant.
    pub since: Option<Instant>,
    /// `_at` upper bound is not served; `_cursor` is the server's opaque paging token.
    pub cursor: Option<HistoryCursor>,
    /// The patient whose compartment the cursor was made under (`_cursor=…:patient`), if any.
    pub cursor_patient: Option<String>,
}

/// Where a history walk is: below the change sequence `seq`, and, in system and type history, among the
/// versions stamped before `horizon`, the feed horizon of its first page (`cdr_store::Store::feed_horizon`).
/// Written `{seq}` or `{seq}.{horizon in ms}` (then `:{patient}` when made under a patient's confinement).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryCursor {
    pub seq: i64,
    pub horizon: Option<Instant>,
}

impl HistoryCursor {
    fn parse(text: &str) -> Option<HistoryCursor> {
        let (seq, horizon) = match text.split_once('.') {
            Some((seq, horizon)) => (seq, Some(Instant::from_millis(horizon.parse().ok()?))),
            None => (text, None),
        };
        Some(HistoryCursor { seq: seq.parse().ok()?, horizon })
    }

    fn render(self) -> String {
        match self.horizon {
            Some(horizon) => format!("{}.{}", self.seq, horizon.millis()),
            None => self.seq.to_string(),
        }
    }
}

impl HistoryParams {
    /// Parses a history query string (`_count`, `_since`, `_cursor`; `_format` and `_pretty` are
    /// accepted and ignored).
    ///
    /// # Errors
    /// [`InteractionError::Invalid`] for a malformed value, [`InteractionError::NotSupported`] for any
    /// other parameter.
    pub fn parse(query: &str) -> Result<HistoryParams, InteractionError> {
        let mut params = HistoryParams::default();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match name.as_ref() {
                "_count" => {
                    let count = value.parse::<u32>().map_err(|_| {
                        InteractionError::invalid(format!(
                            "_count must be a non-negative integer, not '{value}'"
                        ))
                    })?;
                    params.count = Some(count);
                }
                "_since" => {
                    let since = Instant::parse_fhir(&value).map_err(|_| {
                        InteractionError::invalid(format!(
                            "_since must be an instant, not '{value}'"
                        ))
                    })?;
                    params.since = Some(since);
                }
                "_cursor" => {
                    let invalid =
                        || InteractionError::invalid(format!("invalid paging cursor '{value}'"));
                    let (cursor, patient) = match value.split_once(':') {
                        Some((cursor, patient)) if !patient.is_empty() => (cursor, Some(patient)),
                        Some(_) => return Err(invalid()),
                        None => (value.as_ref(), None),
                    };
                    params.cursor = Some(HistoryCursor::parse(cursor).ok_or_else(invalid)?);
                    params.cursor_patient = patient.map(str::to_owned);
                }
                "_format" | "_pretty" => {}
                other => {
                    return Err(InteractionError::NotSupported(format!(
                        "history parameter '{other}' is not supported (supported: _count, _since)"
                    )));
                }
            }
        }
        Ok(params)
    }
}

impl Engine {
    /// A history Bundle. `type_name` and `id` select the level: neither (system), type, or both
    /// (instance). `base` is the FHIR base URL used for `fullUrl` and links.
    ///
    /// # Errors
    /// Unknown type, invalid id or parameters, an unknown instance, or a storage failure.
    pub async fn history(
        &self,
        base: &str,
        type_name: Option<&str>,
        id: Option<&str>,
        params: &HistoryParams,
    ) -> Result<serde_json::Value, InteractionError> {
        let resource_type = type_name.map(|name| self.served_type(name)).transpose()?;
        let id = id.map(parse_id).transpose()?;
        let patient = self.confinement.as_ref().map(Compartment::patient_id);
        if params.cursor.is_some() && params.cursor_patient.as_deref() != patient {
            return Err(InteractionError::invalid(
                "this paging cursor was made for another caller's history: page from the first page of your own",
            ));
        }
        let (scope, path) = match (&resource_type, &id) {
            (None, _) => (HistoryScope::System, "_history".to_owned()),
            (Some(resource_type), None) => {
                (HistoryScope::Type(*resource_type), format!("{resource_type}/_history"))
            }
            (Some(resource_type), Some(id)) => {
                let current = self.store.read(*resource_type, id).await?;
                if !current.is_some_and(|current| self.shows(*resource_type, id, &current)) {
                    return Err(InteractionError::NotFound(format!("{resource_type}/{id}")));
                }
                (
                    HistoryScope::Instance(*resource_type, id),
                    format!("{resource_type}/{id}/_history"),
                )
            }
        };
        let count = self.page_size(params.count);
        // System and type history are the feeds clients poll: the whole walk reads the versions stamped before
        // the horizon of its first page. All of them are committed by then and no other will be stamped before
        // it, so the pages of one walk are one fixed set, and the next walk (`_since` = this horizon) starts
        // where this one ends. A horizon before `_since` (a write in flight since before it) holds nothing new:
        // the poll is empty and the next one starts at `_since` again, never before it. An instance's history
        // is read as it is now, so that a client reads its own write back at once.
        let horizon = match (params.cursor, scope) {
            (_, HistoryScope::Instance(..)) => None,
            (Some(cursor), _) => cursor.horizon,
            (None, _) => {
                let horizon = self.store.feed_horizon().await?;
                Some(params.since.map_or(horizon, |since| horizon.max(since)))
            }
        };
        let query = HistoryQuery {
            since: params.since,
            until: None,
            horizon,
            before_seq: params.cursor.map(|cursor| cursor.seq),
            count,
            compartment: self.confinement.as_ref(),
        };
        let mut entries = self.store.history(scope, &query).await?;
        let has_next = entries.len() > count as usize;
        entries.truncate(count as usize);
        // The next page starts after the last version read, shown or not.
        let last_seq = entries.last().map(|entry| entry.seq);
        if self.confinement.is_some() {
            // The store lists the versions of resources now in the compartment; each version must be too.
            entries.retain(|entry| match &entry.version.body {
                Some(body) => self.visible(entry.res_type, &entry.res_id, body),
                None => true,
            });
        }

        let mut bundle = Bundle::new(BundleType::History);
        bundle.id = Some(uuid::Uuid::new_v4().to_string());
        // The instant the Bundle is complete up to: the `_since` of the next poll.
        bundle.last_updated = Some(horizon.unwrap_or_else(Instant::now).to_fhir());
        let page_url = |cursor: Option<HistoryCursor>| {
            let mut url = format!("{base}/{path}?_count={count}");
            if let Some(since) = params.since {
                url.push_str(&format!("&_since={}", since.to_fhir()));
            }
            if let Some(cursor) = cursor {
                url.push_str(&format!("&_cursor={}", cursor.render()));
                if let Some(patient) = patient {
                    url.push_str(&format!(":{patient}"));
                }
            }
            url
        };
        bundle.links.push(BundleLink { relation: "self", url: page_url(params.cursor) });
        if params.cursor.is_some() {
            bundle.links.push(BundleLink { relation: "first", url: page_url(None) });
        }
        if let (true, Some(last_seq)) = (has_next, last_seq) {
            let next = HistoryCursor { seq: last_seq, horizon };
            bundle.links.push(BundleLink { relation: "next", url: page_url(Some(next)) });
        }
        for entry in &entries {
            bundle.entries.push(history_entry(base, entry)?);
        }
        Ok(bundle.to_json())
    }
}

fn history_entry(base: &str, entry: &HistoryEntry) -> Result<BundleEntry, InteractionError> {
    let resource = match &entry.version.body {
        Some(body) => Some(serde_json::Value::Object(
            Resource::from_slice(body.as_bytes())
                .map_err(|error| {
                    InteractionError::Internal(cdr_store::StoreError::Corrupt(error.to_string()))
                })?
                .into_json(),
        )),
        None => None,
    };
    let (request_url, status) = match entry.method {
        WriteMethod::Create => (entry.res_type.as_str().to_owned(), "201 Created"),
        WriteMethod::Update => (format!("{}/{}", entry.res_type, entry.res_id), "200 OK"),
        WriteMethod::Delete => (format!("{}/{}", entry.res_type, entry.res_id), "204 No Content"),
    };
    Ok(BundleEntry {
        full_url: Some(format!("{base}/{}/{}", entry.res_type, entry.res_id)),
        resource,
        search: None,
        request: Some(json!({"method": entry.method.verb(), "url": request_url})),
        response: Some(json!({
            "status": status,
            "etag": entry.version.version.etag().to_string(),
            "lastModified": entry.version.last_updated.to_fhir(),
        })),
    })
}
