//! The FHIR R4 type table: every resource, data type and backbone element with its child elements, compiled
//! in from `generated/model.txt` and indexed once on first use.

use std::collections::HashMap;
use std::sync::OnceLock;

/// A type known to the model: a named FHIR type or a backbone element (identified by its path).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TypeId(u32);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TypeKind {
    Primitive,
    Complex,
    Resource,
    AbstractResource,
    Backbone,
}

#[derive(Debug)]
pub(crate) struct TypeDef {
    /// The FHIR type name; `BackboneElement` or `Element` for backbone elements.
    pub(crate) name: &'static str,
    pub(crate) kind: TypeKind,
    pub(crate) base: Option<TypeId>,
    /// Child elements sorted by name.
    pub(crate) elements: Vec<ElementDef>,
}

#[derive(Debug)]
pub(crate) struct ElementDef {
    pub(crate) name: &'static str,
    pub(crate) choice: bool,
    /// Whether the element may repeat (its JSON is an array).
    pub(crate) repeats: bool,
    pub(crate) types: Vec<TypeId>,
    /// The element's place among its type's own elements, in StructureDefinition order.
    pub(crate) index: u32,
}

#[derive(Debug)]
pub(crate) struct Model {
    pub(crate) types: Vec<TypeDef>,
    by_name: HashMap<&'static str, TypeId>,
}

/// The names of the System types.
pub(crate) const SYSTEM_TYPES: [&str; 8] =
    ["Boolean", "String", "Integer", "Decimal", "Date", "DateTime", "Time", "Quantity"];

const MODEL_TABLE: &str = include_str!("generated/model.txt");

pub(crate) fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| Model::parse(MODEL_TABLE))
}

impl Model {
    fn parse(table: &'static str) -> Model {
        // Pass one: assign an id to every type and backbone element.
        let mut by_name = HashMap::new();
        let mut headers = Vec::new();
        for line in table.lines() {
            let mut parts = line.split(' ');
            match parts.next() {
                Some("T") => {
                    let name = parts.next().unwrap_or_default();
                    let base = parts.next().unwrap_or("-");
                    let kind = match parts.next() {
                        Some("P") => TypeKind::Primitive,
                        Some("R") => TypeKind::Resource,
                        Some("A") => TypeKind::AbstractResource,
                        _ => TypeKind::Complex,
                    };
                    by_name.insert(name, TypeId(u32::try_from(headers.len()).unwrap_or(u32::MAX)));
                    headers.push((name, base, kind));
                }
                Some("B") => {
                    let path = parts.next().unwrap_or_default();
                    let base = parts.next().unwrap_or("BackboneElement");
                    by_name.insert(path, TypeId(u32::try_from(headers.len()).unwrap_or(u32::MAX)));
                    headers.push((base, base, TypeKind::Backbone));
                }
                _ => {}
            }
        }
        let mut types: Vec<TypeDef> = headers
            .iter()
            .map(|&(name, base, kind)| TypeDef {
                name,
                kind,
                base: by_name.get(base).copied(),
                elements: Vec::new(),
            })
            .collect();
        // Pass two: the child elements of each.
        let mut current = None;
        let mut index = 0usize;
        for line in table.lines() {
            if line.starts_with("T ") || line.starts_with("B ") {
                current = Some(index);
                index += 1;
                continue;
            }
            let (Some(type_idx), Some(rest)) = (current, line.strip_prefix(' ')) else { continue };
            let mut parts = rest.split(' ');
            let raw_name = parts.next().unwrap_or_default();
            let (raw_name, repeats) = match raw_name.strip_suffix('+') {
                Some(name) => (name, true),
                None => (raw_name, false),
            };
            let (name, choice) = match raw_name.strip_suffix('*') {
                Some(name) => (name, true),
                None => (raw_name, false),
            };
            let element_types = parts
                .filter_map(|type_name| {
                    by_name.get(type_name.strip_prefix('#').unwrap_or(type_name)).copied()
                })
                .collect();
            let own = &mut types[type_idx].elements;
            let index = u32::try_from(own.len()).unwrap_or(u32::MAX);
            own.push(ElementDef { name, choice, repeats, types: element_types, index });
        }
        for type_def in &mut types {
            type_def.elements.sort_by(|a, b| a.name.cmp(b.name));
        }
        Model { types, by_name }
    }

    pub(crate) fn type_by_name(&self, name: &str) -> Option<TypeId> {
        self.by_name.get(name).copied().filter(|id| self.get(*id).kind != TypeKind::Backbone)
    }

    pub(crate) fn get(&self, id: TypeId) -> &TypeDef {
        &self.types[id.0 as usize]
    }

    /// Finds a child element of `owner` (or of one of its base types) by name.
    pub(crate) fn element(&self, owner: TypeId, name: &str) -> Option<&ElementDef> {
        let mut current = Some(owner);
        while let Some(type_id) = current {
            let type_def = self.get(type_id);
            if let Ok(idx) = type_def.elements.binary_search_by(|e| e.name.cmp(name)) {
                return Some(&type_def.elements[idx]);
            }
            current = type_def.base;
        }
        None
    }

    /// Whether `derived` is `ancestor` or derives from it.
    pub(crate) fn is_subtype(&self, derived: TypeId, ancestor: TypeId) -> bool {
        let mut current = Some(derived);
        while let Some(type_id) = current {
            if type_id == ancestor {
                return true;
            }
            current = self.get(type_id).base;
        }
        false
    }

    /// Whether the type named `derived` is `ancestor` or derives from it, by names.
    pub(crate) fn is_subtype_name(&self, derived: TypeId, ancestor: &str) -> bool {
        let mut current = Some(derived);
        while let Some(type_id) = current {
            let type_def = self.get(type_id);
            if type_def.name == ancestor {
                return true;
            }
            current = type_def.base;
        }
        false
    }

    /// Whether a type specifier names a System type or an R4 type (`System.` and `FHIR.` restrict the search).
    pub(crate) fn is_known_type(&self, namespace: Option<&str>, name: &str) -> bool {
        let system = namespace != Some("FHIR") && SYSTEM_TYPES.contains(&name);
        let fhir = namespace != Some("System") && self.type_by_name(name).is_some();
        (namespace.is_none() || matches!(namespace, Some("System" | "FHIR"))) && (system || fhir)
    }

    pub(crate) fn is_resource(&self, id: TypeId) -> bool {
        matches!(self.get(id).kind, TypeKind::Resource | TypeKind::AbstractResource)
    }
}

/// A type of the R4 model (a named type or a backbone element), for callers that build JSON of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelType(TypeId);

/// A child element of a [`ModelType`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelElement {
    /// Whether the element may repeat: its JSON is an array.
    pub repeats: bool,
    /// Whether it is a choice element named without its type suffix (`value` of `value[x]`): its JSON key
    /// is the name followed by the type (`valueString`).
    pub choice: bool,
    /// The element's type; `None` for a choice element named without a suffix (it has several).
    pub element_type: Option<ModelType>,
}

impl ModelType {
    pub(crate) fn new(type_id: TypeId) -> ModelType {
        ModelType(type_id)
    }

    /// The type named `name` (`Patient`, `HumanName`); `None` for an unknown name.
    pub fn named(name: &str) -> Option<ModelType> {
        model().type_by_name(name).map(ModelType)
    }

    /// The type name; `BackboneElement` (or `Element`) for a backbone element.
    pub fn name(self) -> &'static str {
        model().get(self.0).name
    }

    /// The child element `name` of this type (inherited ones included); a choice element is found by its
    /// plain name (`value`) or with its type suffix (`valueString`, then typed by the suffix).
    pub fn element(self, name: &str) -> Option<ModelElement> {
        let model = model();
        if let Some(element) = model.element(self.0, name) {
            let element_type = match element.types.as_slice() {
                [only] if !element.choice => Some(ModelType(*only)),
                _ => None,
            };
            return Some(ModelElement {
                repeats: element.repeats,
                choice: element.choice,
                element_type,
            });
        }
        let split = name.find(|c: char| c.is_ascii_uppercase())?;
        let element = model.element(self.0, &name[..split]).filter(|element| element.choice)?;
        let type_id = element.types.iter().copied().find(|&type_id| {
            crate::eval::choice_key(&name[..split], model.get(type_id).name) == name
        })?;
        Some(ModelElement {
            repeats: element.repeats,
            choice: false,
            element_type: Some(ModelType(type_id)),
        })
    }
}

/// A child element of a [`ModelType`] as a serialisation names and orders it (the XML form).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelChild {
    /// The element's name without `[x]`: `value` for `valueString`.
    pub name: &'static str,
    /// Where the element comes among its type's children: inherited elements first (`Resource`'s, then
    /// `DomainResource`'s, ...), each type's own in StructureDefinition order. Ascending positions are the
    /// order R4's XML requires; a choice element has one position whatever its type.
    pub position: u32,
    /// Whether the element may repeat: its JSON is an array.
    pub repeats: bool,
    /// The element's type; for a choice element, the one its suffix names.
    pub element_type: ModelType,
}

/// Positions of one type in a base chain apart: more than any type has elements of its own.
const POSITIONS_PER_TYPE: u32 = 1024;

impl ModelType {
    /// The child named `key` as JSON keys and XML element names spell it: a plain element (`status`), or a
    /// choice element with its type suffix (`valueString`, `multipleBirthInteger`); `None` for an unknown name
    /// and for a choice element named without a suffix.
    pub fn child(self, key: &str) -> Option<ModelChild> {
        let model = model();
        if let Some((element, position)) = self.own_or_inherited(key) {
            return match element.types.as_slice() {
                [only] if !element.choice => Some(ModelChild {
                    name: element.name,
                    position,
                    repeats: element.repeats,
                    element_type: ModelType(*only),
                }),
                _ => None,
            };
        }
        key.char_indices().filter(|(_, c)| c.is_ascii_uppercase()).find_map(|(split, _)| {
            let (element, position) =
                self.own_or_inherited(&key[..split]).filter(|(element, _)| element.choice)?;
            let type_id = element.types.iter().copied().find(|&type_id| {
                crate::eval::choice_key(element.name, model.get(type_id).name) == key
            })?;
            Some(ModelChild {
                name: element.name,
                position,
                repeats: element.repeats,
                element_type: ModelType(type_id),
            })
        })
    }

    /// The element `name` of this type or of a base type, with its position (see [`ModelChild::position`]).
    fn own_or_inherited(self, name: &str) -> Option<(&'static ElementDef, u32)> {
        let model = model();
        let mut chain = Vec::with_capacity(6);
        let mut current = Some(self.0);
        while let Some(type_id) = current {
            chain.push(type_id);
            current = model.get(type_id).base;
        }
        let depth = u32::try_from(chain.len()).unwrap_or(u32::MAX);
        chain.iter().zip(1..).find_map(|(&type_id, step)| {
            let elements = &model.get(type_id).elements;
            let found = elements.binary_search_by(|e| e.name.cmp(name)).ok()?;
            let element = &elements[found];
            Some((element, (depth - step) * POSITIONS_PER_TYPE + element.index))
        })
    }

    /// Whether this is a primitive type (`string`, `decimal`, `xhtml`, ...), whose JSON is a JSON primitive.
    pub fn is_primitive(self) -> bool {
        model().get(self.0).kind == TypeKind::Primitive
    }

    /// Whether this is a resource type, `Resource` and `DomainResource` included.
    pub fn is_resource(self) -> bool {
        model().is_resource(self.0)
    }

    /// Whether this type is the type named `ancestor` or derives from it (`positiveInt` from `integer`).
    pub fn is_a(self, ancestor: &str) -> bool {
        model().is_subtype_name(self.0, ancestor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn navigates_inherited_and_backbone_elements() {
        let model = model();
        let patient = model.type_by_name("Patient").unwrap();
        assert!(model.element(patient, "id").is_some());
        let contact = model.element(patient, "contact").unwrap();
        let contact_type = contact.types[0];
        assert_eq!(model.get(contact_type).name, "BackboneElement");
        assert!(model.element(contact_type, "name").is_some());
        assert!(model.element(contact_type, "modifierExtension").is_some());
        assert!(!model.element(contact_type, "name").unwrap().repeats);
        assert!(model.element(contact_type, "telecom").unwrap().repeats);
        assert!(model.element(patient, "identifier").unwrap().repeats);
        let deceased = model.element(patient, "deceased").unwrap();
        assert!(deceased.choice);
        assert!(!deceased.repeats);
        assert_eq!(deceased.types.len(), 2);
        let age = model.type_by_name("Age").unwrap();
        assert!(model.is_subtype_name(age, "Quantity"));
        assert!(model.element(age, "unit").is_some());
    }

    #[test]
    fn model_types_describe_their_elements() {
        let patient = ModelType::named("Patient").unwrap();
        assert_eq!(patient.name(), "Patient");
        let identifier = patient.element("identifier").unwrap();
        assert!(identifier.repeats && !identifier.choice);
        assert_eq!(identifier.element_type.map(ModelType::name), Some("Identifier"));
        let contact = patient.element("contact").unwrap().element_type.unwrap();
        assert_eq!(contact.name(), "BackboneElement");
        assert!(!contact.element("name").unwrap().repeats);
        assert!(contact.element("telecom").unwrap().repeats);
        let deceased = patient.element("deceased").unwrap();
        assert!(deceased.choice && deceased.element_type.is_none());
        let typed = patient.element("deceasedBoolean").unwrap();
        assert!(!typed.choice && !typed.repeats);
        assert_eq!(typed.element_type.map(ModelType::name), Some("boolean"));
        assert_eq!(patient.element("deceasedString"), None);
        assert_eq!(patient.element("unknown"), None);
        assert_eq!(ModelType::named("NoSuchType"), None);
    }

    #[test]
    fn children_are_ordered_as_their_definitions() {
        let patient = ModelType::named("Patient").unwrap();
        let position = |key: &str| patient.child(key).unwrap().position;
        let keys = ["id", "meta", "language", "text", "contained", "extension", "identifier"];
        assert!(keys.windows(2).all(|pair| position(pair[0]) < position(pair[1])));
        assert!(position("gender") < position("birthDate"));
        assert!(position("birthDate") < position("deceasedBoolean"));
        let births = patient.child("multipleBirthInteger").unwrap();
        assert_eq!((births.name, births.element_type.name()), ("multipleBirth", "integer"));
        assert_eq!(births.position, position("multipleBirthBoolean"));
        assert_eq!(patient.child("multipleBirth"), None);
        assert_eq!(patient.child("multipleBirthString"), None);
        let contact = patient.child("contact").unwrap().element_type;
        let position = |key: &str| contact.child(key).unwrap().position;
        assert!(position("id") < position("extension"));
        assert!(position("extension") < position("modifierExtension"));
        assert!(position("modifierExtension") < position("relationship"));
        assert!(patient.child("birthDate").unwrap().element_type.is_primitive());
        assert!(patient.child("contained").unwrap().element_type.is_resource());
        assert!(ModelType::named("positiveInt").unwrap().is_a("integer"));
        let questionnaire = ModelType::named("Questionnaire").unwrap();
        let item = questionnaire.child("item").unwrap().element_type;
        assert_eq!(item.child("item").unwrap().element_type, item);
    }
}
