//! The `$validate` operation (R4 operation-resource-validate) at system (`[base]/$validate`), type
//! (`[base]/[type]/$validate`) and instance level (`[base]/[type]/[id]/$validate`).
//!
//! The body is the resource, or a Parameters with `resource`, `mode` and `profile`; `mode` and `profile` may also
//! be URL parameters (if given both ways, they must agree). The answer is an OperationOutcome whenever the
//! validation ran, whatever it found (its issues say the result; one information issue when there is none); a
//! request that cannot be validated (no resource, a resource of another type than the URL's, an unknown mode, a
//! delete without an instance) is [`InteractionError::Invalid`], an unknown instance to delete
//! [`InteractionError::NotFound`].
//!
//! The content is always validated (base R4, `meta.profile`, the `profile` parameter, and in strict mode the
//! type's profile), whatever `--validation` says. Then the mode (R4 `ResourceValidationMode`) adds the checks of
//! the interaction it names, as this server would make them:
//! - no mode, or `profile` (which needs a `profile`): the content only;
//! - `create`: a create assigns its own id, so the instance of the URL is not looked up and a resource's id is
//!   noted as ignored; under the miCDR contribution rules, the form of a submission (no id), the registry check
//!   and the references that must resolve;
//! - `update`: the resource's `id` must be the URL's (R4 update; at type and system level the resource's own id
//!   names the instance), the resource must exist unless update-as-create is on (a deleted one is brought back),
//!   an update that changes nothing is said so; under the contribution rules, the registry check, the report
//!   lifecycle against the stored report and the references that must resolve;
//! - `delete`: instance level only; the content is ignored (R4); an unknown instance is not found; a live or deleted
//!   one may be deleted (deleting a deleted resource writes nothing), since this server refuses no delete (no
//!   referential integrity on delete, and the contribution rules only mark the index entry).
//!
//! Under patient confinement ([`Engine::confined`]) an instance outside the compartment is not found (modes
//! update and delete), and a resource that a create or update would write outside it is an error issue
//! (`forbidden`), as the write would be refused.
//!
//! What the update or create would be refused for is an error issue of the outcome, not an error: R4 answers
//! `$validate` with the outcome whenever the check ran (success, whatever it found), as HAPI does for the
//! content. HAPI fails the operation instead for a create with an id and an update without one (and answers a
//! deleted resource to delete as gone); here a create's id is only noted, since a create ignores it (R4 create),
//! and deleting a deleted resource succeeds, as the delete interaction does.

use cdr_model::{
    Issue, IssueSeverity, IssueType, LogicalId, OperationOutcome, Resource, ResourceType,
};
use serde_json::Value;

use crate::validate::ValidationMode;
use crate::write::{invalid_at, parse_value, unchanged};
use crate::{Engine, InteractionError, parse_id};

/// R4 `ResourceValidationMode`: which interaction `$validate` checks besides the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Create,
    Update,
    Delete,
    Profile,
}

impl Mode {
    fn parse(code: &str, location: &str) -> Result<Mode, InteractionError> {
        match code {
            "create" => Ok(Mode::Create),
            "update" => Ok(Mode::Update),
            "delete" => Ok(Mode::Delete),
            "profile" => Ok(Mode::Profile),
            other => Err(invalid_at(
                format!("'{other}' is not a $validate mode: create, update, delete or profile"),
                location,
            )),
        }
    }
}

/// What `$validate` was asked, from the body and the URL.
#[derive(Debug, Default)]
struct Request {
    resource: Option<Resource>,
    mode: Option<Mode>,
    profile: Option<String>,
}

/// The result of the part of `$validate` that runs on the CPU pool.
enum Checked {
    /// A delete to check: the content, if any, is ignored.
    Delete,
    /// The content's outcome, for `resource` in `mode`.
    Content { resource: Resource, mode: Option<Mode>, outcome: OperationOutcome },
}

impl Engine {
    /// The `$validate` operation: `type_name` is the URL's type (`None` at system level), `id` its instance
    /// (`None` at type and system level), `query` the URL's query string and `body` the request body (empty
    /// for a delete given by the URL).
    ///
    /// # Errors
    /// Unknown type, invalid id, a body that is not a resource or a Parameters with one (unless the mode is
    /// delete), a resource of another type than the URL's, an unknown mode, `profile` mode without a
    /// profile, `delete` without an instance or on one that never existed, or a storage failure.
    pub async fn validate_operation(
        &self,
        type_name: Option<&str>,
        id: Option<&str>,
        query: Option<&str>,
        body: &[u8],
    ) -> Result<OperationOutcome, InteractionError> {
        let expected_type = type_name.map(|name| self.served_type(name)).transpose()?;
        let id = id.map(parse_id).transpose()?;
        let url = url_parameters(query.unwrap_or_default())?;
        let engine = self.clone();
        let body = body.to_vec();
        let checked =
            self.cpu.clone().run(move || engine.check_content(expected_type, url, &body)).await?;
        let (resource, mode, mut outcome) = match checked {
            Checked::Delete => {
                let (Some(resource_type), Some(id)) = (expected_type, &id) else {
                    return Err(InteractionError::invalid(
                        "$validate in mode delete checks an existing resource: use [base]/[type]/[id]/$validate",
                    ));
                };
                return self.validate_delete(resource_type, id).await;
            }
            Checked::Content { resource, mode, outcome } => (resource, mode, outcome),
        };
        let rule_issues = match mode {
            Some(Mode::Create) => self.create_issues(&resource).await?,
            Some(Mode::Update) => self.update_issues(&resource, id.as_ref()).await?,
            Some(Mode::Delete | Mode::Profile) | None => Vec::new(),
        };
        outcome.issues.extend(rule_issues);
        if outcome.issues.is_empty() {
            outcome.issues.push(Issue::new(
                IssueSeverity::Information,
                IssueType::Informational,
                "validation found no issues",
            ));
        }
        Ok(outcome)
    }

    /// Parses the request and validates its content, on the calling thread.
    fn check_content(
        &self,
        expected_type: Option<ResourceType>,
        url: Request,
        body: &[u8],
    ) -> Result<Checked, InteractionError> {
        let request =
            if body.is_empty() { Request::default() } else { parse_body(expected_type, body)? };
        let mode = agree(url.mode, request.mode, "mode")?;
        let profile = agree(url.profile, request.profile, "profile")?;
        if mode == Some(Mode::Delete) {
            return Ok(Checked::Delete);
        }
        let resource = request.resource.ok_or_else(|| {
            InteractionError::invalid(
                "$validate needs the resource to validate: the body, or the resource parameter of a Parameters",
            )
        })?;
        if let Some(expected) = expected_type
            && resource.resource_type() != expected
        {
            return Err(InteractionError::invalid(format!(
                "the resource is a {}, but the URL is for {expected}",
                resource.resource_type()
            )));
        }
        if mode == Some(Mode::Profile) && profile.is_none() {
            return Err(InteractionError::invalid(
                "$validate in mode profile needs the profile to validate against (the profile parameter)",
            ));
        }
        let mut extra: Vec<&str> = profile.iter().map(String::as_str).collect();
        if self.config.validation == ValidationMode::Strict
            && let Some(url) = self.profiles.for_type(resource.resource_type().as_str())
        {
            extra.push(url);
        }
        self.limits.check(resource.json())?;
        let value = Value::Object(resource.json().clone());
        let started = std::time::Instant::now();
        let outcome =
            cdr_validation::validate(&value, self.profiles.set(), &extra).to_operation_outcome();
        self.validation_times.observe(started.elapsed());
        Ok(Checked::Content { resource, mode, outcome })
    }

    /// Mode `create`: what a create of `resource` would be refused for besides its content.
    async fn create_issues(&self, resource: &Resource) -> Result<Vec<Issue>, InteractionError> {
        let mut issues = refusal(self.check_submission(resource, true, true).await)?;
        if let Some(id) = resource.id().filter(|_| !self.config.contribution_rules) {
            issues.push(
                Issue::new(
                    IssueSeverity::Information,
                    IssueType::Informational,
                    format!("a create ignores the resource's id '{id}': the server assigns one"),
                )
                .at(format!("{}.id", resource.resource_type())),
            );
        }
        issues.extend(refusal(self.check_single_references(resource).await)?);
        // A create writes under an id the server assigns.
        let id = crate::write::new_id();
        issues.extend(refusal(self.confine_write(resource.resource_type(), &id, resource))?);
        Ok(issues)
    }

    /// Mode `update`: what an update of `resource` to `url_id` (or, with none, to the resource's own id) would
    /// be refused for besides its content, and what it would do when that is not a plain update.
    async fn update_issues(
        &self,
        resource: &Resource,
        url_id: Option<&LogicalId>,
    ) -> Result<Vec<Issue>, InteractionError> {
        let resource_type = resource.resource_type();
        let at_id = format!("{resource_type}.id");
        let mut issues = Vec::new();
        let id = match (url_id, resource.id()) {
            (Some(url_id), Some(own)) => {
                if own != url_id.as_str() {
                    let text = format!(
                        "the resource id '{own}' is not the URL id '{url_id}': an update would be refused"
                    );
                    issues.push(Issue::error(IssueType::Invalid, text).at(&at_id));
                }
                url_id.clone()
            }
            (Some(url_id), None) => {
                issues.push(
                    Issue::error(
                        IssueType::Required,
                        "an update carries the id of its URL in the resource: this one would be refused",
                    )
                    .at(&at_id),
                );
                url_id.clone()
            }
            (None, Some(own)) => parse_id(own)?,
            (None, None) => {
                issues.push(
                    Issue::error(
                        IssueType::Required,
                        "an update names the resource it changes: give the resource its id, or use [base]/[type]/[id]/$validate",
                    )
                    .at(&at_id),
                );
                return Ok(issues);
            }
        };
        let stored = self.store.read(resource_type, &id).await?;
        self.confine_existing(resource_type, &id, stored.as_ref())?;
        let information =
            |text: String| Issue::new(IssueSeverity::Information, IssueType::Informational, text);
        match &stored {
            None if !self.config.update_create => {
                let text = format!(
                    "{resource_type}/{id} does not exist and this server assigns ids itself (update as create is off): an update would be refused"
                );
                issues.push(Issue::error(IssueType::NotFound, text));
            }
            None => issues.push(information(format!(
                "{resource_type}/{id} does not exist: an update would create it (update as create is on)"
            ))),
            Some(stored) if stored.deleted => issues.push(information(format!(
                "{resource_type}/{id} is deleted: an update would bring it back"
            ))),
            Some(stored) if unchanged(resource, &id, stored) => issues.push(information(format!(
                "the resource is the current version of {resource_type}/{id}: an update would change nothing and write no version"
            ))),
            Some(_) => {}
        }
        issues.extend(refusal(self.check_submission(resource, false, true).await)?);
        if let Some(body) = stored
            .as_ref()
            .filter(|stored| !stored.deleted)
            .and_then(|stored| stored.body.as_deref())
        {
            issues.extend(refusal(self.check_report_update(resource, &id, body))?);
        }
        issues.extend(refusal(self.check_single_references(resource).await)?);
        issues.extend(refusal(self.confine_write(resource_type, &id, resource))?);
        Ok(issues)
    }

    /// Mode `delete` of `resource_type/id`.
    async fn validate_delete(
        &self,
        resource_type: ResourceType,
        id: &LogicalId,
    ) -> Result<OperationOutcome, InteractionError> {
        let stored = self.store.read(resource_type, id).await?;
        let Some(stored) = stored.filter(|stored| self.shows(resource_type, id, stored)) else {
            return Err(InteractionError::NotFound(format!("{resource_type}/{id}")));
        };
        let text = if stored.deleted {
            format!(
                "{resource_type}/{id} is already deleted: a delete would succeed and write nothing"
            )
        } else {
            format!("{resource_type}/{id} may be deleted")
        };
        Ok(OperationOutcome::single(Issue::new(
            IssueSeverity::Information,
            IssueType::Informational,
            text,
        )))
    }
}

/// The issues of a rule check's refusal (`Ok` with none when the rule holds); an error that is not a refusal
/// (the store failing) stays an error.
fn refusal(result: Result<(), InteractionError>) -> Result<Vec<Issue>, InteractionError> {
    match result {
        Ok(()) => Ok(Vec::new()),
        Err(InteractionError::Invalid(outcome) | InteractionError::Unprocessable(outcome)) => {
            Ok(outcome.issues)
        }
        Err(refused @ (InteractionError::NotAllowed(_) | InteractionError::NotFound(_))) => {
            Ok(vec![Issue::error(IssueType::BusinessRule, refused.to_string())])
        }
        Err(InteractionError::Forbidden(text)) => {
            Ok(vec![Issue::error(IssueType::Forbidden, text)])
        }
        Err(other) => Err(other),
    }
}

/// `mode` and `profile` of the URL; other parameters are not this operation's and are ignored.
fn url_parameters(query: &str) -> Result<Request, InteractionError> {
    let mut request = Request::default();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "mode" => {
                let mode = Mode::parse(&value, "mode")?;
                request.mode = agree(request.mode, Some(mode), "mode")?;
            }
            "profile" => {
                let profile = value.into_owned();
                request.profile = agree(request.profile, Some(profile), "profile")?;
            }
            _ => {}
        }
    }
    Ok(request)
}

/// The one value of a parameter given in the URL, the body, or both alike.
fn agree<T: PartialEq>(
    url: Option<T>,
    body: Option<T>,
    name: &str,
) -> Result<Option<T>, InteractionError> {
    match (url, body) {
        (Some(url), Some(body)) if url != body => Err(InteractionError::invalid(format!(
            "$validate was given two different values of {name}"
        ))),
        (url, body) => Ok(url.or(body)),
    }
}

/// The body: a resource, or (unless the URL's type is Parameters) a Parameters with `resource`, `mode` and
/// `profile` parts.
fn parse_body(
    expected_type: Option<ResourceType>,
    body: &[u8],
) -> Result<Request, InteractionError> {
    let parsed = parse_value(body)?;
    let is_parameters = parsed.resource_type().as_str() == "Parameters"
        && expected_type.is_none_or(|expected| expected.as_str() != "Parameters");
    if !is_parameters {
        return Ok(Request { resource: Some(parsed), ..Request::default() });
    }
    let mut request = Request::default();
    let parts = parsed.json().get("parameter").and_then(Value::as_array).map(Vec::as_slice);
    for (index, part) in parts.unwrap_or_default().iter().enumerate() {
        let location = format!("Parameters.parameter[{index}]");
        match part.get("name").and_then(Value::as_str) {
            Some("resource") => {
                let value = part.get("resource").cloned().ok_or_else(|| {
                    invalid_at("the resource parameter has no resource", &location)
                })?;
                let resource = Resource::from_value(value).map_err(|error| {
                    invalid_at(format!("the resource parameter: {error}"), &location)
                })?;
                request.resource = Some(resource);
            }
            Some("profile") => {
                let url = ["valueUri", "valueCanonical", "valueString"]
                    .iter()
                    .find_map(|key| part.get(*key).and_then(Value::as_str))
                    .ok_or_else(|| {
                        invalid_at(
                            "the profile parameter needs a valueUri or valueCanonical",
                            &location,
                        )
                    })?;
                request.profile = Some(url.to_owned());
            }
            Some("mode") => {
                let code = ["valueCode", "valueString"]
                    .iter()
                    .find_map(|key| part.get(*key).and_then(Value::as_str))
                    .ok_or_else(|| invalid_at("the mode parameter needs a valueCode", &location))?;
                request.mode = Some(Mode::parse(code, &location)?);
            }
            _ => {}
        }
    }
    Ok(request)
}
