//! FHIR XML to resource JSON.

use cdr_fhirpath::ModelType;
use quick_xml::NsReader;
use quick_xml::XmlVersion;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use serde_json::{Map, Number, Value};

use crate::write::is_xml_char;
use crate::{FHIR_NAMESPACE, MAX_ATTRIBUTES, MAX_DEPTH, XHTML_NAMESPACE, XmlError};

/// The XML Schema instance namespace, whose attributes (`xsi:schemaLocation`) documents may carry.
const XSI_NAMESPACE: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// The resource JSON of a FHIR XML document (UTF-8, an optional byte order mark and XML declaration, one
/// resource element).
///
/// # Errors
///
/// Whatever is not FHIR XML (see the crate documentation), with the line and column and the element's path.
pub fn from_xml(xml: &[u8]) -> Result<Value, XmlError> {
    let xml = xml.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(xml);
    let text = std::str::from_utf8(xml).map_err(|error| XmlError {
        message: format!("the XML is not UTF-8 (byte {})", error.valid_up_to()),
        expression: None,
    })?;
    let mut reader = NsReader::from_str(text);
    reader.config_mut().check_comments = true;
    let mut parser = Parser { reader, text, depth: 0, path: Vec::new(), position: 0 };
    parser.document()
}

struct Parser<'a> {
    reader: NsReader<&'a [u8]>,
    text: &'a str,
    depth: usize,
    /// The elements being read, for error messages: a name and, when it repeats, its index.
    path: Vec<(String, Option<usize>)>,
    /// Where the event being handled starts.
    position: usize,
}

/// What owns the elements being read: how `id` and `url` are spelt depends on it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Owner {
    Resource,
    Extension,
    Element,
    Primitive,
}

/// One child element read so far: its JSON key, whether it repeats, its values and its `_key` siblings.
type ChildEntry = (String, bool, Vec<Option<Value>>, Vec<Option<Value>>);

/// The children read so far of one element, in document order.
#[derive(Default)]
struct Children {
    entries: Vec<ChildEntry>,
    last_position: Option<u32>,
}

impl Children {
    fn into_json(self, mut object: Map<String, Value>) -> Map<String, Value> {
        for (key, repeats, values, extras) in self.entries {
            let shape = |items: Vec<Option<Value>>| -> Option<Value> {
                if items.iter().all(Option::is_none) {
                    return None;
                }
                Some(if repeats {
                    Value::Array(
                        items.into_iter().map(|item| item.unwrap_or(Value::Null)).collect(),
                    )
                } else {
                    items.into_iter().flatten().next().unwrap_or(Value::Null)
                })
            };
            let extras = shape(extras);
            if let Some(values) = shape(values) {
                object.insert(key.clone(), values);
            }
            if let Some(extras) = extras {
                object.insert(format!("_{key}"), extras);
            }
        }
        object
    }
}

/// What one child element carries: its value and, for a primitive, its `id` and extensions.
type Occurrence = (Option<Value>, Option<Value>);

impl<'a> Parser<'a> {
    fn error(&self, message: impl std::fmt::Display) -> XmlError {
        let before = &self.text[..self.position.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column =
            before.rfind('\n').map_or(before.len(), |newline| before.len() - newline - 1) + 1;
        XmlError {
            message: format!("{message} (line {line}, column {column})"),
            expression: crate::path_expression(&self.path),
        }
    }

    fn next(&mut self) -> Result<Event<'a>, XmlError> {
        self.position = usize::try_from(self.reader.buffer_position()).unwrap_or(usize::MAX);
        let event = self.reader.read_event().map_err(|error| {
            self.position = usize::try_from(self.reader.error_position()).unwrap_or(self.position);
            self.error(format!("the XML is not well-formed: {error}"))
        })?;
        match event {
            Event::DocType(_) => Err(self.error(
                "a document type declaration is not allowed: FHIR XML has no DTD and no entity declarations",
            )),
            Event::Decl(_) if self.position > 0 => {
                Err(self.error("an XML declaration may only open the document"))
            }
            event => Ok(event),
        }
    }

    fn document(&mut self) -> Result<Value, XmlError> {
        loop {
            match self.next()? {
                Event::Decl(declaration) => {
                    if let Some(encoding) = declaration.encoding() {
                        let encoding = encoding.map_err(|error| self.error(error))?;
                        if !encoding.eq_ignore_ascii_case("utf-8") {
                            return Err(self.error(format!(
                                "the XML declares the encoding '{encoding}': FHIR XML is UTF-8"
                            )));
                        }
                    }
                }
                Event::Comment(_) | Event::PI(_) => {}
                Event::Text(text) if is_blank(&text) => {}
                event @ (Event::Start(_) | Event::Empty(_)) => {
                    let is_empty = matches!(event, Event::Empty(_));
                    let (Event::Start(start) | Event::Empty(start)) = event else { continue };
                    let resource = self.resource(&start, is_empty)?;
                    self.epilogue()?;
                    return Ok(resource);
                }
                Event::Eof => return Err(self.error("the XML holds no resource")),
                _ => return Err(self.error("text is not allowed outside the resource element")),
            }
        }
    }

    fn epilogue(&mut self) -> Result<(), XmlError> {
        loop {
            match self.next()? {
                Event::Comment(_) | Event::PI(_) => {}
                Event::Text(text) if is_blank(&text) => {}
                Event::Eof => return Ok(()),
                _ => return Err(self.error("nothing but comments may follow the resource element")),
            }
        }
    }

    /// Whether an element is in the namespace, and its local name.
    fn resolve(&self, start: &BytesStart<'a>, namespace: &str) -> (bool, String) {
        let (resolved, local) = self.reader.resolver().resolve_element(start.name());
        let matches =
            matches!(resolved, ResolveResult::Bound(bound) if bound.as_ref() == namespace);
        (matches, local.as_ref().to_owned())
    }

    /// A resource element (the document's, or the one inside a wrapper such as `contained`).
    fn resource(&mut self, start: &BytesStart<'a>, is_empty: bool) -> Result<Value, XmlError> {
        let (in_fhir, name) = self.resolve(start, FHIR_NAMESPACE);
        if !in_fhir {
            return Err(self.error(format!(
                "<{name}> is not in the FHIR namespace: a resource element needs xmlns=\"{FHIR_NAMESPACE}\""
            )));
        }
        let model = ModelType::named(&name)
            .filter(|model| {
                model.is_resource() && !matches!(name.as_str(), "Resource" | "DomainResource")
            })
            .ok_or_else(|| self.error(format!("<{name}> is not an R4 resource type")))?;
        self.check_attributes(start, &[])?;
        self.path.push((name.clone(), None));
        let mut object = Map::new();
        object.insert("resourceType".to_owned(), Value::String(name));
        let children =
            if is_empty { Children::default() } else { self.children(model, Owner::Resource)? };
        self.path.pop();
        Ok(Value::Object(children.into_json(object)))
    }

    /// The attributes FHIR gives this element, in the order asked; namespace declarations and `xsi:`
    /// attributes are passed over; any other is refused.
    fn check_attributes(
        &self,
        start: &BytesStart<'a>,
        allowed: &[&str],
    ) -> Result<Vec<Option<String>>, XmlError> {
        let mut found = vec![None; allowed.len()];
        for (count, attribute) in start.attributes().enumerate() {
            if count >= MAX_ATTRIBUTES {
                return Err(
                    self.error(format!("an element may carry at most {MAX_ATTRIBUTES} attributes"))
                );
            }
            let attribute =
                attribute.map_err(|error| self.error(format!("a malformed attribute: {error}")))?;
            let key = attribute.key.as_ref();
            if key == "xmlns" || key.starts_with("xmlns:") {
                continue;
            }
            let (resolved, local) = self.reader.resolver().resolve_attribute(attribute.key);
            match resolved {
                ResolveResult::Bound(namespace) if namespace.as_ref() == XSI_NAMESPACE => continue,
                ResolveResult::Unbound => {}
                _ => return Err(self.error(format!("the attribute '{key}' is not FHIR's"))),
            }
            let Some(slot) = allowed.iter().position(|name| *name == local.as_ref()) else {
                return Err(self.error(format!("the attribute '{key}' is not allowed here")));
            };
            let value = attribute
                .normalized_value_with(XmlVersion::Implicit1_0, 1, resolve_predefined_entity)
                .map_err(|error| self.error(format!("the attribute '{key}': {error}")))?;
            found[slot] = Some(value.into_owned());
        }
        Ok(found)
    }

    /// The content of an element of type `model` up to its end tag.
    fn children(&mut self, model: ModelType, owner: Owner) -> Result<Children, XmlError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(format!("the elements nest deeper than {MAX_DEPTH} levels")));
        }
        let mut children = Children::default();
        loop {
            match self.next()? {
                Event::End(_) => break,
                Event::Comment(_) | Event::PI(_) => {}
                Event::Text(text) if is_blank(&text) => {}
                event @ (Event::Start(_) | Event::Empty(_)) => {
                    let is_empty = matches!(event, Event::Empty(_));
                    let (Event::Start(start) | Event::Empty(start)) = event else { continue };
                    self.child(model, owner, &start, is_empty, &mut children)?;
                }
                Event::Eof => return Err(self.error("the XML ends inside an element")),
                _ => {
                    return Err(self.error(
                        "text is not allowed in a FHIR element: values are in value attributes",
                    ));
                }
            }
        }
        self.depth -= 1;
        Ok(children)
    }

    fn child(
        &mut self,
        model: ModelType,
        owner: Owner,
        start: &BytesStart<'a>,
        is_empty: bool,
        children: &mut Children,
    ) -> Result<(), XmlError> {
        let local = start.local_name().as_ref().to_owned();
        let child = model
            .child(&local)
            .filter(|_| owner != Owner::Primitive || local == "extension")
            .ok_or_else(|| {
                self.error(format!("<{local}> is not an element of {}", model.name()))
            })?;
        if (local == "id" && owner != Owner::Resource)
            || (local == "url" && owner == Owner::Extension)
        {
            return Err(self.error(format!("'{local}' is an attribute here, not an element")));
        }
        let same = children.entries.last().is_some_and(|(key, ..)| *key == local);
        match children.last_position {
            Some(last) if last > child.position => {
                return Err(self.error(format!(
                    "<{local}> is out of order: R4 puts it before <{}>",
                    children.entries.last().map_or("", |(key, ..)| key.as_str())
                )));
            }
            Some(last) if last == child.position && !(same && child.repeats) => {
                return Err(self.error(format!("<{local}> may appear only once here")));
            }
            _ => {}
        }
        children.last_position = Some(child.position);
        if !same {
            children.entries.push((local.clone(), child.repeats, Vec::new(), Vec::new()));
        }
        let index = children.entries.last().map_or(0, |(_, _, values, _)| values.len());
        self.path.push((local, child.repeats.then_some(index)));
        let (value, extra) = self.occurrence(child.element_type, start, is_empty)?;
        self.path.pop();
        if let Some((_, _, values, extras)) = children.entries.last_mut() {
            values.push(value);
            extras.push(extra);
        }
        Ok(())
    }

    fn occurrence(
        &mut self,
        model: ModelType,
        start: &BytesStart<'a>,
        is_empty: bool,
    ) -> Result<Occurrence, XmlError> {
        if model.name() == "xhtml" {
            return Ok((Some(Value::String(self.narrative(start, is_empty)?)), None));
        }
        let (in_fhir, local) = self.resolve(start, FHIR_NAMESPACE);
        if !in_fhir {
            return Err(self.error(format!("<{local}> is not in the FHIR namespace")));
        }
        if model.is_primitive() {
            return self.primitive(model, start, is_empty);
        }
        if model.is_resource() {
            self.check_attributes(start, &[])?;
            if is_empty {
                return Err(self.error("a resource element must hold a resource"));
            }
            return Ok((Some(self.wrapped_resource()?), None));
        }
        let owner = if model.is_a("Extension") { Owner::Extension } else { Owner::Element };
        let names: &[&str] = if owner == Owner::Extension { &["id", "url"] } else { &["id"] };
        let mut attributes = self.check_attributes(start, names)?.into_iter();
        let mut object = Map::new();
        if let Some(id) = attributes.next().flatten() {
            object.insert("id".to_owned(), Value::String(id));
        }
        if let Some(url) = attributes.next().flatten() {
            object.insert("url".to_owned(), Value::String(url));
        }
        let children = if is_empty { Children::default() } else { self.children(model, owner)? };
        Ok((Some(Value::Object(children.into_json(object))), None))
    }

    /// The one resource inside a wrapper element, up to the wrapper's end tag.
    fn wrapped_resource(&mut self) -> Result<Value, XmlError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(format!("the elements nest deeper than {MAX_DEPTH} levels")));
        }
        let mut resource = None;
        loop {
            match self.next()? {
                Event::End(_) if resource.is_some() => break,
                Event::Comment(_) | Event::PI(_) => {}
                Event::Text(text) if is_blank(&text) => {}
                event @ (Event::Start(_) | Event::Empty(_)) if resource.is_none() => {
                    let is_empty = matches!(event, Event::Empty(_));
                    let (Event::Start(start) | Event::Empty(start)) = event else { continue };
                    resource = Some(self.resource(&start, is_empty)?);
                }
                _ => return Err(self.error("a resource element must hold exactly one resource")),
            }
        }
        self.depth -= 1;
        resource.ok_or_else(|| self.error("a resource element must hold a resource"))
    }

    fn primitive(
        &mut self,
        model: ModelType,
        start: &BytesStart<'a>,
        is_empty: bool,
    ) -> Result<Occurrence, XmlError> {
        let mut attributes = self.check_attributes(start, &["id", "value"])?.into_iter();
        let id = attributes.next().flatten();
        let value = match attributes.next().flatten() {
            Some(text) => Some(self.primitive_value(model, text)?),
            None => None,
        };
        let children = if is_empty {
            Children::default()
        } else {
            let element =
                ModelType::named("Element").ok_or_else(|| self.error("no Element type"))?;
            self.children(element, Owner::Primitive)?
        };
        let mut extras = Map::new();
        if let Some(id) = id {
            extras.insert("id".to_owned(), Value::String(id));
        }
        let extras = children.into_json(extras);
        if value.is_none() && !extras.contains_key("extension") {
            return Err(self.error("a primitive element needs a value attribute or extensions"));
        }
        Ok((value, (!extras.is_empty()).then_some(Value::Object(extras))))
    }

    /// The JSON of a primitive's `value`: a boolean, a number (its text kept), or a string.
    fn primitive_value(&self, model: ModelType, text: String) -> Result<Value, XmlError> {
        if model.is_a("boolean") {
            return match text.as_str() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err(self.error(format!("'{text}' is not a boolean: true or false"))),
            };
        }
        if model.is_a("integer") || model.is_a("decimal") {
            let number = is_json_number(&text)
                .then(|| serde_json::from_str::<Number>(&text).ok())
                .flatten()
                .ok_or_else(|| self.error(format!("'{text}' is not a {}", model.name())))?;
            return Ok(Value::Number(number));
        }
        Ok(Value::String(text))
    }

    /// `Narrative.div`: its exact text, from `<div` to the end of its end tag.
    fn narrative(&mut self, start: &BytesStart<'a>, is_empty: bool) -> Result<String, XmlError> {
        let (in_xhtml, local) = self.resolve(start, XHTML_NAMESPACE);
        let declares = start.attributes().flatten().any(|attribute| {
            attribute.key.as_ref() == "xmlns" && attribute.value == XHTML_NAMESPACE
        });
        if !in_xhtml || local != "div" || start.name().as_ref() != "div" || !declares {
            return Err(self.error(format!(
                "the narrative must be a <div xmlns=\"{XHTML_NAMESPACE}\"> element"
            )));
        }
        let from = self.position;
        let base_depth = self.depth;
        if !is_empty {
            self.depth += 1;
            while self.depth > base_depth {
                match self.next()? {
                    Event::Start(_) => {
                        self.depth += 1;
                        if self.depth > MAX_DEPTH {
                            return Err(self.error(format!(
                                "the elements nest deeper than {MAX_DEPTH} levels"
                            )));
                        }
                    }
                    Event::End(_) => self.depth -= 1,
                    Event::GeneralRef(reference) => {
                        let known = reference
                            .resolve_char_ref()
                            .map_err(|error| self.error(error))?
                            .is_some_and(is_xml_char)
                            || resolve_predefined_entity(&reference).is_some();
                        if !known {
                            return Err(self.error(format!(
                                "the entity '&{};' is not XML's: only &lt; &gt; &amp; &quot; &apos; and character references",
                                &*reference
                            )));
                        }
                    }
                    Event::Eof => return Err(self.error("the XML ends inside the narrative")),
                    _ => {}
                }
            }
        }
        let to = usize::try_from(self.reader.buffer_position()).unwrap_or(usize::MAX);
        Ok(self.text.get(from..to).unwrap_or_default().to_owned())
    }
}

fn is_blank(text: &str) -> bool {
    text.bytes().all(|byte| matches!(byte, b' ' | b'\t' | b'\r' | b'\n'))
}

/// Whether the text is a JSON number as written (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`), which
/// FHIR's decimal and integer forms are too.
fn is_json_number(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut at = usize::from(bytes.first() == Some(&b'-'));
    let digits = |from: usize| bytes[from..].iter().take_while(|b| b.is_ascii_digit()).count();
    let whole = digits(at);
    if whole == 0 || (whole > 1 && bytes[at] == b'0') {
        return false;
    }
    at += whole;
    if bytes.get(at) == Some(&b'.') {
        let fraction = digits(at + 1);
        if fraction == 0 {
            return false;
        }
        at += 1 + fraction;
    }
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        at += 1;
        if matches!(bytes.get(at), Some(b'+' | b'-')) {
            at += 1;
        }
        let exponent = digits(at);
        if exponent == 0 {
            return false;
        }
        at += exponent;
    }
    at == bytes.len()
}
