//! Resource JSON to FHIR XML.

use cdr_fhirpath::{ModelChild, ModelType};
use quick_xml::Reader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;
use serde_json::{Map, Value};

use crate::{FHIR_NAMESPACE, XHTML_NAMESPACE, XmlError};

/// The XML of a resource (a JSON object with a `resourceType`), with an XML declaration; indented by two
/// spaces a level when `pretty`.
///
/// # Errors
///
/// Whatever XML cannot carry (see the crate documentation), with the path of the element.
pub fn to_xml(resource: &Value, pretty: bool) -> Result<String, XmlError> {
    let mut writer = Writer { out: String::new(), pretty, depth: 0, path: Vec::new() };
    writer.out.push_str(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    if pretty {
        writer.out.push('\n');
    }
    writer.resource(resource, true)?;
    if pretty {
        writer.out.push('\n');
    }
    Ok(writer.out)
}

struct Writer<'a> {
    out: String,
    pretty: bool,
    depth: usize,
    /// The elements being written, for error messages: a name and, in an array, the index.
    path: Vec<(&'a str, Option<usize>)>,
}

/// One element of an object to write: its definition, its JSON key, its value and its `_key` sibling.
struct Entry<'a> {
    child: ModelChild,
    key: &'a str,
    value: Option<&'a Value>,
    extras: Option<&'a Value>,
}

impl<'a> Writer<'a> {
    fn error(&self, message: impl Into<String>) -> XmlError {
        XmlError { message: message.into(), expression: crate::path_expression(&self.path) }
    }

    fn newline(&mut self) {
        if self.pretty {
            self.out.push('\n');
            for _ in 0..self.depth {
                self.out.push_str("  ");
            }
        }
    }

    fn resource(&mut self, value: &'a Value, top: bool) -> Result<(), XmlError> {
        let Some(object) = value.as_object() else {
            return Err(self.error("a resource must be a JSON object"));
        };
        let Some(type_name) = object.get("resourceType").and_then(Value::as_str) else {
            return Err(self.error("a resource needs a resourceType"));
        };
        let model = ModelType::named(type_name)
            .filter(|model| {
                model.is_resource() && !matches!(type_name, "Resource" | "DomainResource")
            })
            .ok_or_else(|| self.error(format!("'{type_name}' is not an R4 resource type")))?;
        self.path.push((type_name, None));
        if !top {
            self.newline();
        }
        self.out.push('<');
        self.out.push_str(type_name);
        if top {
            self.out.push_str(&format!(r#" xmlns="{FHIR_NAMESPACE}""#));
        }
        self.children(model, object, &["resourceType"], type_name)?;
        self.path.pop();
        Ok(())
    }

    /// Writes `>`, the children of `object` in the model's order and the end tag, or `/>` when there are
    /// none. `skip` names the keys written as attributes (or `resourceType`).
    fn children(
        &mut self,
        model: ModelType,
        object: &'a Map<String, Value>,
        skip: &[&str],
        name: &str,
    ) -> Result<(), XmlError> {
        let mut entries: Vec<Entry<'a>> = Vec::with_capacity(object.len());
        for (key, value) in object {
            if skip.contains(&key.as_str()) {
                continue;
            }
            let (key, is_extras) = match key.strip_prefix('_') {
                Some(plain) => (plain, true),
                None => (key.as_str(), false),
            };
            if let Some(entry) = entries.iter_mut().find(|entry| entry.key == key) {
                if is_extras {
                    entry.extras = Some(value);
                } else {
                    entry.value = Some(value);
                }
                continue;
            }
            let Some(child) = model.child(key) else {
                return Err(self.error(format!("'{key}' is not an element of {}", model.name())));
            };
            if is_extras && !child.element_type.is_primitive() {
                return Err(self.error(format!("'_{key}' is only allowed for a primitive element")));
            }
            let (value, extras) = if is_extras { (None, Some(value)) } else { (Some(value), None) };
            entries.push(Entry { child, key, value, extras });
        }
        if entries.is_empty() {
            self.out.push_str("/>");
            return Ok(());
        }
        entries.sort_by_key(|entry| entry.child.position);
        if let Some(pair) =
            entries.windows(2).find(|pair| pair[0].child.position == pair[1].child.position)
        {
            return Err(self.error(format!(
                "'{}' and '{}' are the same element: a choice takes one type",
                pair[0].key, pair[1].key
            )));
        }
        self.out.push('>');
        self.depth += 1;
        for entry in &entries {
            self.entry(entry)?;
        }
        self.depth -= 1;
        self.newline();
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        Ok(())
    }

    fn entry(&mut self, entry: &Entry<'a>) -> Result<(), XmlError> {
        let Entry { child, key, value, extras } = *entry;
        if !child.repeats {
            self.path.push((key, None));
            self.element(key, child.element_type, value.filter(|v| !v.is_null()), extras)?;
            self.path.pop();
            return Ok(());
        }
        let values = match value {
            None => &[][..],
            Some(Value::Array(values)) => values.as_slice(),
            Some(_) => return Err(self.at(key, "repeats: its JSON must be an array")),
        };
        let extras = match extras {
            None => &[][..],
            Some(Value::Array(extras)) => extras.as_slice(),
            Some(_) => return Err(self.at(key, "repeats: its '_' sibling must be an array")),
        };
        if !values.is_empty() && !extras.is_empty() && values.len() != extras.len() {
            return Err(self.at(key, "and its '_' sibling must be arrays of the same length"));
        }
        for index in 0..values.len().max(extras.len()) {
            self.path.push((key, Some(index)));
            let value = values.get(index).filter(|value| !value.is_null());
            let extras = extras.get(index).filter(|extras| !extras.is_null());
            if value.is_none() && extras.is_none() {
                return Err(
                    self.error("an array may hold null only where its '_' sibling has a value")
                );
            }
            self.element(key, child.element_type, value, extras)?;
            self.path.pop();
        }
        Ok(())
    }

    fn at(&self, key: &str, message: &str) -> XmlError {
        self.error(format!("'{key}' {message}"))
    }

    /// One occurrence of an element: `value` is its JSON, `extras` its `_name` sibling (primitives only).
    fn element(
        &mut self,
        name: &'a str,
        model: ModelType,
        value: Option<&'a Value>,
        extras: Option<&'a Value>,
    ) -> Result<(), XmlError> {
        if model.name() == "xhtml" {
            return self.narrative(value, extras);
        }
        if model.is_primitive() {
            return self.primitive(name, value, extras);
        }
        let Some(value) = value else {
            return Err(self.error("an element without a value"));
        };
        self.newline();
        if model.is_resource() {
            self.out.push('<');
            self.out.push_str(name);
            self.out.push('>');
            self.depth += 1;
            self.resource(value, false)?;
            self.depth -= 1;
            self.newline();
            self.out.push_str("</");
            self.out.push_str(name);
            self.out.push('>');
            return Ok(());
        }
        let Some(object) = value.as_object() else {
            return Err(self.error(format!("a {} must be a JSON object", model.name())));
        };
        self.out.push('<');
        self.out.push_str(name);
        let mut skip = Vec::with_capacity(2);
        if let Some(id) = object.get("id") {
            self.attribute("id", id)?;
            skip.push("id");
        }
        if model.is_a("Extension")
            && let Some(url) = object.get("url")
        {
            self.attribute("url", url)?;
            skip.push("url");
        }
        self.children(model, object, &skip, name)
    }

    fn primitive(
        &mut self,
        name: &str,
        value: Option<&'a Value>,
        extras: Option<&'a Value>,
    ) -> Result<(), XmlError> {
        self.newline();
        self.out.push('<');
        self.out.push_str(name);
        let extras = match extras {
            None => None,
            Some(Value::Object(extras)) => Some(extras),
            Some(_) => return Err(self.error("a primitive's '_' sibling must be a JSON object")),
        };
        if let Some(id) = extras.and_then(|extras| extras.get("id")) {
            self.attribute("id", id)?;
        }
        if let Some(value) = value {
            self.attribute("value", value)?;
        }
        let Some(extras) = extras else {
            self.out.push_str("/>");
            return Ok(());
        };
        if let Some(key) = extras.keys().find(|key| !matches!(key.as_str(), "id" | "extension")) {
            return Err(self.error(format!("a primitive's '_' sibling has no element '{key}'")));
        }
        let element = ModelType::named("Element").ok_or_else(|| self.error("no Element type"))?;
        self.children(element, extras, &["id"], name)
    }

    fn attribute(&mut self, name: &str, value: &Value) -> Result<(), XmlError> {
        let text = match value {
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            Value::Bool(flag) => flag.to_string(),
            _ => return Err(self.error(format!("'{name}' must be a string, number or boolean"))),
        };
        self.out.push(' ');
        self.out.push_str(name);
        self.out.push_str("=\"");
        for character in text.chars() {
            match character {
                '&' => self.out.push_str("&amp;"),
                '<' => self.out.push_str("&lt;"),
                '>' => self.out.push_str("&gt;"),
                '"' => self.out.push_str("&quot;"),
                // Attribute-value normalisation would read these as spaces: they travel as references.
                '\n' => self.out.push_str("&#10;"),
                '\r' => self.out.push_str("&#13;"),
                '\t' => self.out.push_str("&#9;"),
                other if is_xml_char(other) => self.out.push(other),
                other => {
                    return Err(self.error(format!(
                        "the character U+{:04X} cannot be written in XML",
                        u32::from(other)
                    )));
                }
            }
        }
        self.out.push('"');
        Ok(())
    }

    /// `Narrative.div`: the JSON string, one well-formed XHTML `div`, written as it is.
    fn narrative(
        &mut self,
        value: Option<&'a Value>,
        extras: Option<&'a Value>,
    ) -> Result<(), XmlError> {
        if extras.is_some() {
            return Err(self.error("the narrative div cannot have extensions in XML"));
        }
        let Some(div) = value.and_then(Value::as_str) else {
            return Err(self.error("the narrative div must be a string"));
        };
        let div = div.trim();
        check_div(div).map_err(|message| self.error(message))?;
        self.newline();
        self.out.push_str(div);
        Ok(())
    }
}

/// Whether XML 1.0 can hold the character (its `Char` production).
pub(crate) fn is_xml_char(character: char) -> bool {
    matches!(character, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
        || character >= '\u{10000}'
}

/// Checks that a narrative is one well-formed `div` element declaring the XHTML namespace, with XML's own
/// entities only, so that it can stand inline in the resource's XML.
fn check_div(div: &str) -> Result<(), String> {
    let malformed = |detail: &dyn std::fmt::Display| {
        format!("the narrative div is not well-formed XHTML, which XML cannot carry: {detail}")
    };
    if let Some(bad) = div.chars().find(|&c| !is_xml_char(c)) {
        return Err(malformed(&format!("it holds the character U+{:04X}", u32::from(bad))));
    }
    let mut reader = Reader::from_str(div);
    let mut depth = 0_usize;
    let mut closed = false;
    loop {
        let event = reader.read_event().map_err(|error| malformed(&error))?;
        if closed && !matches!(event, Event::Eof) {
            return Err(malformed(&"there is content after the div"));
        }
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                if depth == 0 {
                    let declares = start.attributes().flatten().any(|attribute| {
                        attribute.key.as_ref() == "xmlns" && attribute.value == XHTML_NAMESPACE
                    });
                    if start.name().as_ref() != "div" || !declares {
                        return Err(format!(
                            "the narrative must be one <div xmlns=\"{XHTML_NAMESPACE}\"> element"
                        ));
                    }
                }
                if matches!(event, Event::Start(_)) {
                    depth += 1;
                } else if depth == 0 {
                    closed = true;
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                closed = depth == 0;
            }
            Event::GeneralRef(ref reference) => {
                let known =
                    reference.resolve_char_ref().map_err(|error| malformed(&error))?.is_some()
                        || resolve_predefined_entity(reference).is_some();
                if !known {
                    return Err(malformed(&format!("it uses the entity '&{};'", &**reference)));
                }
            }
            Event::Text(_) | Event::CData(_) | Event::Comment(_) if depth > 0 => {}
            Event::Eof if closed => return Ok(()),
            Event::Eof => return Err(malformed(&"the div is not closed")),
            _ => {
                return Err(format!(
                    "the narrative must be one <div xmlns=\"{XHTML_NAMESPACE}\"> element"
                ));
            }
        }
    }
}
