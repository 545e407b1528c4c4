// The imaging record viewer: finds a patient by identifier and shows their orders (ServiceRequest), studies
// (ImagingStudy) and reports (DiagnosticReport) on one timeline, and a report with its documents, versions and
// addenda. Everything comes from the FHIR API at fhir/, relative to this page.
//
// Every value from the server reaches the page as text (textContent, text nodes, or attributes that are not
// URLs or handlers); report documents are shown from blob: URLs, PDFs in a frame and HTML in a sandboxed frame
// that runs no script. The bearer token lives in this script's memory only.
"use strict";

/** The extension by which an Ontario MI addendum names the report it adds to. */
const ADDENDUM_OF = "http://ontariohealth.ca/fhir/mi/StructureDefinition/ext-di-addendum-of";
/** The Ontario health card number's identifier system. */
const HEALTH_CARD = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn";
const PAGE_SIZE = 100;
/** Pages read of one search or history before the viewer says it shows the first ones only. */
const MAX_PAGES = 10;

const state = {
  token: "",
  /** Counts the searches and patients opened, so an answer that arrives late is dropped. */
  generation: 0,
  /** Counts the reports opened, likewise. */
  reportGeneration: 0,
  orders: [],
  studies: [],
  reports: [],
  /** The blob: URLs of the report shown, revoked when another is shown. */
  blobUrls: [],
};

const byId = (id) => document.getElementById(id);

/** A new element with attributes and children (strings become text nodes). */
function element(name, attributes, ...children) {
  const node = document.createElement(name);
  for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

/** A refusal from the server: its status and, when it sent one, its OperationOutcome. */
class ServerError extends Error {
  constructor(path, response, body, text) {
    super(`${response.status} ${response.statusText}`);
    this.path = path;
    this.status = response.status;
    this.statusText = response.statusText;
    this.outcome = body && body.resourceType === "OperationOutcome" ? body : null;
    this.text = text;
  }
}

/** GET fhir/{path} as FHIR JSON, with the bearer token when one is set. */
async function fhir(path) {
  const headers = { Accept: "application/fhir+json" };
  if (state.token) headers.Authorization = "Bearer " + state.token;
  const response = await fetch("fhir/" + path, { headers });
  const text = await response.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch (_) {
    body = null;
  }
  if (!response.ok) throw new ServerError(path, response, body, text);
  if (body === null || typeof body !== "object") throw new Error(`fhir/${path} did not answer JSON`);
  return body;
}

/** The next page of a Bundle, as a path below fhir/ (the server's link may name another host). */
function nextPage(bundle, path) {
  const next = (bundle.link || []).find((link) => link.relation === "next");
  return next ? path + new URL(next.url, document.baseURI).search : null;
}

/** Every resource of a search or history (`path`, `query`), up to MAX_PAGES pages. */
async function readAll(path, query, generation) {
  const resources = [];
  let page = `${path}?${query}`;
  let pages = 0;
  while (page) {
    const bundle = await fhir(page);
    if (generation !== undefined && generation !== state.generation) return null;
    for (const entry of bundle.entry || []) {
      if (entry.search && entry.search.mode === "include") continue;
      resources.push(entry);
    }
    pages += 1;
    page = nextPage(bundle, path);
    if (page && pages >= MAX_PAGES) return { entries: resources, more: true };
  }
  return { entries: resources, more: false };
}

/** A token search value with FHIR's escapes (`\`, `,`, `$`, `|`). */
function escapeToken(value) {
  return value.replace(/[\\,$|]/g, (character) => "\\" + character);
}

/** `system|value` or a bare value, as typed: `{system, value}` (system undefined for a bare value). */
function parseIdentifier(text) {
  const bar = text.indexOf("|");
  if (bar < 0) return { system: undefined, value: text };
  return { system: text.slice(0, bar), value: text.slice(bar + 1) };
}

function showError(error) {
  const box = byId("error");
  box.replaceChildren();
  if (error instanceof ServerError) {
    const path = error.path.length > 160 ? `${error.path.slice(0, 160)}…` : error.path;
    box.append(element("strong", {}, `The server answered ${error.status} ${error.statusText} to fhir/${path}`));
    const issues = (error.outcome && error.outcome.issue) || [];
    if (issues.length) {
      box.append(element("ul", {}, ...issues.map((issue) => element("li", {}, issueText(issue)))));
    } else if (error.text) {
      box.append(element("pre", {}, error.text.slice(0, 2000)));
    }
  } else {
    box.append(element("strong", {}, "The request failed: "), String(error && error.message ? error.message : error));
  }
  box.hidden = false;
}

function issueText(issue) {
  const details = (issue.details && (issue.details.text || codeText(issue.details))) || issue.diagnostics || "";
  const where = (issue.expression || issue.location || []).join(", ");
  return `${issue.severity || "error"} (${issue.code || "unknown"}): ${details}${where ? ` (at ${where})` : ""}`;
}

function clearMessages() {
  byId("error").hidden = true;
  byId("error").replaceChildren();
  byId("status").textContent = "";
}

/** A CodeableConcept as text: its text, else its first coding's display or code. */
function codeText(concept) {
  if (!concept) return "";
  if (concept.text) return concept.text;
  const coding = (concept.coding || [])[0];
  return coding ? coding.display || coding.code || "" : "";
}

function humanName(patient) {
  const names = patient.name || [];
  const name = names.find((candidate) => candidate.use === "official") || names[0];
  if (!name) return "(no name)";
  if (name.text) return name.text;
  return [...(name.prefix || []), ...(name.given || []), name.family].filter(Boolean).join(" ") || "(no name)";
}

function identifierLabel(identifier) {
  const codes = ((identifier.type && identifier.type.coding) || []).map((coding) => coding.code);
  if (identifier.system === HEALTH_CARD || codes.includes("JHN")) return "Health card";
  if (codes.includes("MR")) return "MRN";
  if (codes.includes("ACSN")) return "Accession";
  return codeText(identifier.type) || "Identifier";
}

/** A FHIR date or dateTime as shown: as sent, the time after a space. */
function when(value) {
  return value ? value.replace("T", " ") : "";
}

/** The id of a reference to `type` (relative, absolute, or versioned), or null. */
function referencedId(reference, type) {
  const text = (reference && reference.reference) || "";
  const match = text.match(new RegExp(`(?:^|/)${type}/([A-Za-z0-9\\-.]{1,64})(?:/_history/[^/]+)?$`));
  return match ? match[1] : null;
}

function addendumOf(report) {
  const extension = (report.extension || []).find((candidate) => candidate.url === ADDENDUM_OF);
  return extension ? referencedId(extension.valueReference, "DiagnosticReport") : null;
}

// ---- Server ----

async function showServer() {
  try {
    const capabilities = await fhir("metadata");
    const software = capabilities.software || {};
    byId("server-name").textContent = software.name || capabilities.name || "FHIR server";
    byId("server-version").textContent = software.version ? `version ${software.version}` : "";
    const description = (capabilities.implementation && capabilities.implementation.description) || "";
    if (description) byId("server-description").textContent = `${description}, FHIR ${capabilities.fhirVersion || ""}`;
  } catch (error) {
    showError(error);
  }
}

// ---- Patients ----

async function findPatients(text) {
  clearMessages();
  const generation = ++state.generation;
  byId("patients").hidden = true;
  byId("record").hidden = true;
  const typed = parseIdentifier(text.trim());
  const search =
    typed.system === undefined ? escapeToken(typed.value) : `${escapeToken(typed.system)}|${escapeToken(typed.value)}`;
  byId("status").textContent = "Searching…";
  const found = await readAll("Patient", `identifier=${encodeURIComponent(search)}&_count=${PAGE_SIZE}`, generation);
  if (found === null) return;
  byId("status").textContent = "";
  const patients = found.entries
    .map((entry) => entry.resource)
    .filter((resource) => resource && resource.resourceType === "Patient");
  if (patients.length === 0) {
    byId("status").textContent = `No patient has the identifier ${text.trim()}.`;
    return;
  }
  if (patients.length === 1) {
    await openPatient(patients[0], typed, generation);
    return;
  }
  byId("patients-query").textContent = text.trim();
  byId("patient-list").replaceChildren(
    ...patients.map((patient) => {
      const button = element("button", { type: "button", class: "link" }, humanName(patient));
      button.addEventListener("click", () => run(() => openPatient(patient, typed, ++state.generation)));
      return element(
        "li",
        { "data-id": patient.id },
        button,
        " ",
        patientFacts(patient),
        " · ",
        identifiersText(patient),
      );
    }),
  );
  byId("patients").hidden = false;
}

function patientFacts(patient) {
  return [patient.gender, patient.birthDate ? `born ${patient.birthDate}` : ""].filter(Boolean).join(", ");
}

function identifiersText(patient) {
  return (patient.identifier || [])
    .map((identifier) => `${identifierLabel(identifier)} ${identifier.value || ""}`)
    .join(", ");
}

/** The patient's identifier that the search matched (for `patient.identifier=`), else the first full one. */
function matchedIdentifier(patient, typed) {
  const identifiers = (patient.identifier || []).filter((identifier) => identifier.system && identifier.value);
  return (
    identifiers.find(
      (identifier) =>
        identifier.value === typed.value && (typed.system === undefined || identifier.system === typed.system),
    ) ||
    identifiers[0] ||
    null
  );
}

async function openPatient(patient, typed, generation) {
  clearMessages();
  byId("patients").hidden = true;
  byId("report").hidden = true;
  byId("patient-name").textContent = humanName(patient);
  byId("patient-facts").textContent = patientFacts(patient);
  byId("patient-identifiers").replaceChildren(
    ...(patient.identifier || []).map((identifier) =>
      element(
        "li",
        {},
        element("strong", {}, identifierLabel(identifier)),
        " ",
        identifier.value || "",
        element("small", {}, identifier.system ? ` ${identifier.system}` : ""),
      ),
    ),
  );
  byId("timeline").replaceChildren();
  byId("timeline-note").hidden = true;
  byId("record").hidden = false;
  byId("status").textContent = "Reading the imaging record…";
  // The patient by id, and by identifier too: a server that requires patient.identifier (the Ontario rule) answers.
  const params = new URLSearchParams();
  params.set("patient", `Patient/${patient.id}`);
  const identifier = matchedIdentifier(patient, typed);
  if (identifier)
    params.set("patient.identifier", `${escapeToken(identifier.system)}|${escapeToken(identifier.value)}`);
  params.set("_count", String(PAGE_SIZE));
  const query = params.toString();
  const [orders, studies, reports] = await Promise.all(
    ["ServiceRequest", "ImagingStudy", "DiagnosticReport"].map((type) => readAll(type, query, generation)),
  );
  if (orders === null || studies === null || reports === null) return;
  const resources = (found, type) =>
    found.entries.map((entry) => entry.resource).filter((resource) => resource && resource.resourceType === type);
  state.orders = resources(orders, "ServiceRequest");
  state.studies = resources(studies, "ImagingStudy");
  state.reports = resources(reports, "DiagnosticReport");
  byId("status").textContent = "";
  if (orders.more || studies.more || reports.more) {
    byId("timeline-note").textContent = `Showing the first ${MAX_PAGES * PAGE_SIZE} of each kind only.`;
    byId("timeline-note").hidden = false;
  }
  renderTimeline();
}

// ---- Timeline ----

function accession(order) {
  const identifiers = order.identifier || [];
  const coded = identifiers.find((identifier) =>
    ((identifier.type && identifier.type.coding) || []).some((coding) => coding.code === "ACSN"),
  );
  return (coded || identifiers[0] || {}).value || "";
}

function modalities(study) {
  const codes = (study.modality || []).map((coding) => coding.code || coding.display).filter(Boolean);
  return codes.length ? codes.join("/") : "(no modality)";
}

function countText(count, one, many) {
  if (count === undefined || count === null) return `${many}: not given`;
  return `${count} ${count === 1 ? one : many}`;
}

const KIND_ORDER = { report: 0, study: 1, order: 2 };

function timelineEntries() {
  const entries = [
    ...state.orders.map((order) => ({
      kind: "order",
      resource: order,
      date: order.authoredOn || order.occurrenceDateTime || (order.occurrencePeriod || {}).start,
    })),
    ...state.studies.map((study) => ({ kind: "study", resource: study, date: study.started })),
    ...state.reports.map((report) => ({
      kind: "report",
      resource: report,
      date: report.issued || report.effectiveDateTime || (report.effectivePeriod || {}).start,
    })),
  ];
  for (const entry of entries) {
    entry.time = Date.parse(entry.date || "");
    if (Number.isNaN(entry.time)) entry.time = Date.parse((entry.resource.meta || {}).lastUpdated || "");
    if (Number.isNaN(entry.time)) entry.time = -Infinity;
  }
  // Newest first; at one instant the report, then the study, then the order.
  return entries.sort(
    (a, b) =>
      b.time - a.time ||
      KIND_ORDER[a.kind] - KIND_ORDER[b.kind] ||
      String(a.resource.id).localeCompare(String(b.resource.id)),
  );
}

function renderTimeline() {
  const items = timelineEntries().map((entry) => {
    const resource = entry.resource;
    let title;
    let facts;
    if (entry.kind === "order") {
      title = element("span", { class: "title" }, codeText(resource.code) || "(no procedure code)");
      facts = [resource.status, accession(resource) ? `accession ${accession(resource)}` : ""];
    } else if (entry.kind === "study") {
      title = element(
        "span",
        { class: "title" },
        [modalities(resource), resource.description].filter(Boolean).join(" "),
      );
      facts = [
        resource.status,
        countText(resource.numberOfSeries, "series", "series"),
        countText(resource.numberOfInstances, "instance", "instances"),
      ];
    } else {
      title = element("button", { type: "button", class: "title link" }, codeText(resource.code) || "(no report code)");
      title.addEventListener("click", () => run(() => openReport(resource.id)));
      const original = addendumOf(resource);
      const originalReport = state.reports.find((report) => report.id === original);
      facts = [
        resource.status,
        original
          ? `addendum to ${originalReport ? codeText(originalReport.code) : `DiagnosticReport/${original}`}`
          : "",
        resource.conclusion || "",
      ];
    }
    const kinds = { order: "Order", study: "Study", report: "Report" };
    return element(
      "li",
      { class: `entry ${entry.kind}`, "data-kind": entry.kind, "data-id": resource.id },
      element("time", {}, when(entry.date) || "(no date)"),
      element("span", { class: "kind" }, kinds[entry.kind]),
      title,
      element("span", { class: "facts" }, facts.filter(Boolean).join(" · ")),
    );
  });
  if (items.length === 0)
    items.push(element("li", { class: "empty" }, "No orders, studies or reports for this patient."));
  byId("timeline").replaceChildren(...items);
}

// ---- Report ----

async function openReport(id) {
  clearMessages();
  const generation = ++state.reportGeneration;
  byId("status").textContent = "Reading the report…";
  const path = `DiagnosticReport/${encodeURIComponent(id)}`;
  const [current, history] = await Promise.all([fhir(path), readAll(`${path}/_history`, `_count=${PAGE_SIZE}`)]);
  if (generation !== state.reportGeneration) return;
  byId("status").textContent = "";
  renderReport(current, history.entries, current);
  byId("report").hidden = false;
  byId("report").scrollIntoView({ block: "nearest" });
}

/** Shows `shown` (the current version or an earlier one) of the report whose current version is `current`. */
function renderReport(shown, versions, current) {
  for (const url of state.blobUrls) URL.revokeObjectURL(url);
  state.blobUrls = [];
  const versionId = (resource) => (resource.meta || {}).versionId || "";
  byId("report-title").textContent = codeText(shown.code) || "Report";
  const note = byId("report-version-note");
  note.hidden = shown === current;
  note.textContent =
    shown === current
      ? ""
      : `An earlier version: version ${versionId(shown)} of ${versionId(current)}, written ${(shown.meta || {}).lastUpdated || ""}.`;
  if (shown !== current) {
    const back = element("button", { type: "button", class: "link" }, "Show the current version");
    back.addEventListener("click", () => renderReport(current, versions, current));
    note.append(" ", back);
  }

  const facts = [
    ["Status", shown.status],
    ["Code", codeText(shown.code)],
    ["Category", (shown.category || []).map(codeText).filter(Boolean).join(", ")],
    ["Issued", when(shown.issued)],
    ["Effective", when(shown.effectiveDateTime || (shown.effectivePeriod || {}).start)],
    ["Version", `${versionId(shown)}, written ${when((shown.meta || {}).lastUpdated)}`],
    ["Orders", (shown.basedOn || []).map(orderText).join(", ")],
    ["Studies", (shown.imagingStudy || []).map(studyText).join(", ")],
  ];
  const list = byId("report-facts");
  list.replaceChildren();
  for (const [name, value] of facts) {
    if (value) list.append(element("dt", {}, name), element("dd", {}, value));
  }
  const original = addendumOf(shown);
  if (original) {
    const report = state.reports.find((candidate) => candidate.id === original);
    const label = report ? `${codeText(report.code)}, issued ${when(report.issued)}` : `DiagnosticReport/${original}`;
    const open = element("button", { type: "button", class: "link" }, label);
    open.addEventListener("click", () => run(() => openReport(original)));
    list.append(element("dt", {}, "Addendum to"), element("dd", {}, open));
  }
  byId("report-conclusion").textContent = shown.conclusion || "(no conclusion)";
  const narrative = shown.text && shown.text.div ? narrativeText(shown.text.div) : "";
  byId("report-narrative").textContent = narrative;
  byId("report-narrative-part").hidden = !narrative;
  byId("report-forms").replaceChildren(...(shown.presentedForm || []).map(attachmentView));
  renderAddenda(current.id);
  renderVersions(shown, versions, current);
}

function orderText(reference) {
  const id = referencedId(reference, "ServiceRequest");
  const order = state.orders.find((candidate) => candidate.id === id);
  if (order) return `${codeText(order.code)}${accession(order) ? ` (accession ${accession(order)})` : ""}`;
  return reference.display || reference.reference || "";
}

function studyText(reference) {
  const id = referencedId(reference, "ImagingStudy");
  const study = state.studies.find((candidate) => candidate.id === id);
  if (study) return `${modalities(study)}${study.started ? ` ${when(study.started)}` : ""}`;
  return reference.display || reference.reference || "";
}

/** The text of a narrative's XHTML, parsed into an inert document that runs and loads nothing. */
function narrativeText(xhtml) {
  const parsed = new DOMParser().parseFromString(xhtml, "text/html");
  return (parsed.body.textContent || "").replace(/\s+/g, " ").trim();
}

/** A presentedForm attachment: a PDF in a frame, HTML in a sandboxed frame, text as text, else a download. */
function attachmentView(attachment) {
  const type = (attachment.contentType || "application/octet-stream").split(";")[0].trim().toLowerCase();
  const title = attachment.title || type;
  const part = element("div", { class: "form" }, element("h4", {}, `Document: ${title}`));
  if (attachment.data === undefined) {
    const url = attachment.url || "";
    part.append(element("p", {}, url ? `Stored at ${url}` : "No content."));
    return part;
  }
  let bytes;
  try {
    bytes = Uint8Array.from(atob(attachment.data), (character) => character.charCodeAt(0));
  } catch (_) {
    part.append(element("p", { class: "error" }, "Its data is not base64."));
    return part;
  }
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  state.blobUrls.push(url);
  if (type === "application/pdf") {
    // Chromium's viewer opens it to the frame's width, without its page thumbnails.
    part.append(element("iframe", { class: "pdf", src: `${url}#navpanes=0&view=FitH`, title }));
  } else if (type === "text/html" || type === "application/xhtml+xml") {
    part.append(element("iframe", { class: "html", src: url, title, sandbox: "" }));
  } else if (type.startsWith("text/")) {
    part.append(element("pre", {}, new TextDecoder().decode(bytes)));
  }
  part.append(
    element("p", {}, element("a", { href: url, download: title }, `Download (${type}, ${bytes.length} bytes)`)),
  );
  return part;
}

function renderAddenda(id) {
  const addenda = state.reports.filter((report) => addendumOf(report) === id);
  byId("report-addenda-part").hidden = addenda.length === 0;
  byId("report-addenda").replaceChildren(
    ...addenda.map((addendum) => {
      const open = element(
        "button",
        { type: "button", class: "link" },
        codeText(addendum.code) || `DiagnosticReport/${addendum.id}`,
      );
      open.addEventListener("click", () => run(() => openReport(addendum.id)));
      return element(
        "li",
        { "data-id": addendum.id },
        open,
        " ",
        [addendum.status, when(addendum.issued), addendum.conclusion].filter(Boolean).join(" · "),
      );
    }),
  );
}

const VERSION_NOTES = { amended: "amended", corrected: "corrected", appended: "appended (an addendum)" };

function renderVersions(shown, versions, current) {
  const rows = versions.map((entry) => {
    const resource = entry.resource;
    if (!resource) {
      const deleted = (entry.response && entry.response.etag) || "";
      return element(
        "tr",
        {},
        element("td", {}, deleted),
        element("td", {}, ""),
        element("td", {}, "deleted"),
        element("td", {}, ""),
      );
    }
    const version = (resource.meta || {}).versionId || "";
    const isShown = version === ((shown.meta || {}).versionId || "");
    const label = version === ((current.meta || {}).versionId || "") ? `${version} (current)` : version;
    const open = element("button", { type: "button", class: "link" }, label);
    open.addEventListener("click", () =>
      renderReport(version === (current.meta || {}).versionId ? current : resource, versions, current),
    );
    return element(
      "tr",
      { "data-version": version, class: isShown ? "shown" : "" },
      element("td", {}, open),
      element("td", {}, when((resource.meta || {}).lastUpdated)),
      element("td", {}, VERSION_NOTES[resource.status] || resource.status || ""),
      element("td", {}, resource.conclusion || ""),
    );
  });
  byId("report-versions").tBodies[0].replaceChildren(...rows);
}

// ---- Wiring ----

/** Runs an action, showing its failure. */
function run(action) {
  Promise.resolve()
    .then(action)
    .catch((error) => {
      byId("status").textContent = "";
      showError(error);
    });
}

byId("find").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = byId("identifier").value;
  if (text.trim()) run(() => findPatients(text));
});
byId("token").addEventListener("input", (event) => {
  state.token = event.target.value.trim();
});
showServer();
