//! What each direction refuses, and the mapping details the R4 examples do not all exercise.

#![allow(clippy::unwrap_used, reason = "tests panic on broken fixtures")]

use serde_json::{Value, json};

use crate::{MAX_DEPTH, from_xml, to_xml};

fn read(xml: &str) -> Value {
    from_xml(xml.as_bytes()).unwrap_or_else(|error| panic!("{error}"))
}

/// The message and the element path of a refusal.
fn refusal(xml: &str) -> (String, Option<String>) {
    let error = from_xml(xml.as_bytes()).unwrap_err();
    (error.message, error.expression)
}

fn patient(inner: &str) -> String {
    format!(r#"<Patient xmlns="http://hl7.org/fhir">{inner}</Patient>"#)
}

fn round_trip(json: &Value) {
    let xml = to_xml(json, false).unwrap();
    assert_eq!(&from_xml(xml.as_bytes()).unwrap(), json, "{xml}");
}

#[test]
fn primitive_ids_and_extensions_travel_as_underscore_siblings() {
    let json = read(&patient(
        r#"<name><given value="Peter"/><given id="g2"><extension url="http://example.org/x"><valueBoolean value="true"/></extension></given><given value="Jim"/></name>
           <birthDate value="1974-12-25"><extension url="http://hl7.org/fhir/StructureDefinition/patient-birthTime"><valueDateTime value="1974-12-25T14:35:45-05:00"/></extension></birthDate>"#,
    ));
    assert_eq!(
        json,
        json!({"resourceType": "Patient",
            "name": [{"given": ["Peter", null, "Jim"],
                "_given": [null, {"id": "g2", "extension": [{"url": "http://example.org/x", "valueBoolean": true}]}, null]}],
            "birthDate": "1974-12-25",
            "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                "valueDateTime": "1974-12-25T14:35:45-05:00"}]}})
    );
    round_trip(&json);
}

#[test]
fn numbers_keep_their_text_and_booleans_are_json_booleans() {
    let json: Value = serde_json::from_str(
        r#"{"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "valueQuantity": {"value": 72.50, "unit": "kg"}, "component": [{"code": {"text": "y"}, "valueInteger": 0},
            {"code": {"text": "z"}, "valueQuantity": {"value": 1.0e-7}}, {"code": {"text": "b"}, "valueBoolean": false}]}"#,
    )
    .unwrap();
    let xml = to_xml(&json, false).unwrap();
    assert!(xml.contains(r#"<valueQuantity><value value="72.50"/>"#), "{xml}");
    assert!(xml.contains(r#"<value value="1.0e-7"/>"#), "{xml}");
    round_trip(&json);
    assert_eq!(
        serde_json::to_string(&from_xml(xml.as_bytes()).unwrap()["valueQuantity"]).unwrap(),
        r#"{"value":72.50,"unit":"kg"}"#
    );
    for bad in ["01", "+1", "1.", ".5", "1e", " 1", "NaN", ""] {
        let xml = format!(
            r#"<Observation xmlns="http://hl7.org/fhir"><valueInteger value="{bad}"/></Observation>"#
        );
        assert!(refusal(&xml).0.contains("is not a integer"), "{bad}");
    }
    let xml = r#"<Patient xmlns="http://hl7.org/fhir"><active value="yes"/></Patient>"#;
    assert!(refusal(xml).0.contains("'yes' is not a boolean"));
}

#[test]
fn attribute_values_are_normalised_as_xml_reads_them_and_written_so_they_survive() {
    let json = read(&patient(
        "<name><text value=\"a\r\n\tb &#10;c &amp; &lt;d&gt; &quot;e&apos;\"/></name>",
    ));
    assert_eq!(json["name"][0]["text"], "a  b \nc & <d> \"e'");
    let text =
        json!({"resourceType": "Patient", "name": [{"text": "line\nnext\r\tend <&> \"q\" é 😀"}]});
    round_trip(&text);
    let control = json!({"resourceType": "Patient", "name": [{"text": "bell \u{7}"}]});
    let error = to_xml(&control, false).unwrap_err();
    assert!(error.message.contains("U+0007"), "{error}");
    assert_eq!(error.expression.as_deref(), Some("Patient.name[0].text"));
}

#[test]
fn element_ids_and_extension_urls_are_attributes_resource_ids_elements() {
    let json = json!({"resourceType": "Patient", "id": "p1", "identifier": [{"id": "i1", "value": "7"}],
        "extension": [{"id": "e1", "url": "http://example.org/e", "valueString": "s"}]});
    let xml = to_xml(&json, false).unwrap();
    assert!(xml.contains(r#"<Patient xmlns="http://hl7.org/fhir"><id value="p1"/><extension id="e1" url="http://example.org/e"><valueString value="s"/></extension><identifier id="i1"><value value="7"/></identifier></Patient>"#), "{xml}");
    round_trip(&json);
    assert!(
        refusal(&patient(r#"<identifier><id value="i1"/></identifier>"#))
            .0
            .contains("'id' is an attribute")
    );
    assert!(
        refusal(&patient(r#"<extension><url value="u"/></extension>"#))
            .0
            .contains("'url' is an attribute")
    );
    assert!(
        refusal(r#"<Patient xmlns="http://hl7.org/fhir" id="p1"/>"#)
            .0
            .contains("attribute 'id' is not allowed")
    );
}

#[test]
fn contained_resources_and_bundle_entries_are_wrapped_in_their_type() {
    let json = json!({"resourceType": "Bundle", "type": "collection", "entry": [{"resource":
        {"resourceType": "DiagnosticReport", "contained": [{"resourceType": "Observation", "id": "o",
            "status": "final", "code": {"text": "c"}}], "status": "final", "code": {"text": "r"}, "result": [{"reference": "#o"}]}}]});
    let xml = to_xml(&json, false).unwrap();
    assert!(
        xml.contains("<resource><DiagnosticReport><contained><Observation><id value=\"o\"/>"),
        "{xml}"
    );
    round_trip(&json);
    let two = r#"<Bundle xmlns="http://hl7.org/fhir"><entry><resource><Patient/><Patient/></resource></entry></Bundle>"#;
    assert!(refusal(two).0.contains("exactly one resource"));
    let none = r#"<Bundle xmlns="http://hl7.org/fhir"><entry><resource><name value="x"/></resource></entry></Bundle>"#;
    assert!(refusal(none).0.contains("<name> is not an R4 resource type"));
}

#[test]
fn the_narrative_is_inline_xhtml_kept_to_the_byte() {
    let div = "<div xmlns=\"http://www.w3.org/1999/xhtml\">\n  <p title='t'>A &amp; B &#233; <br/><!-- c --></p>\n</div>";
    let json = json!({"resourceType": "Patient", "text": {"status": "generated", "div": div}});
    let xml = to_xml(&json, true).unwrap();
    assert!(xml.contains(div), "{xml}");
    round_trip(&json);
    let no_namespace = patient(r#"<text><status value="generated"/><div>x</div></text>"#);
    assert!(refusal(&no_namespace).0.contains("the narrative must be a <div xmlns="));
    let entity = patient(
        r#"<text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml">&nbsp;</div></text>"#,
    );
    assert!(refusal(&entity).0.contains("the entity '&nbsp;' is not XML's"));
    for bad in [
        "<div>x</div>",
        "<p xmlns=\"http://www.w3.org/1999/xhtml\">x</p>",
        "<div xmlns=\"http://www.w3.org/1999/xhtml\">x",
        "text",
    ] {
        let json = json!({"resourceType": "Patient", "text": {"status": "generated", "div": bad}});
        let error = to_xml(&json, false).unwrap_err();
        assert_eq!(error.expression.as_deref(), Some("Patient.text.div"), "{bad}: {error}");
    }
}

#[test]
fn unknown_misplaced_and_repeated_elements_are_refused_where_they_are() {
    let (message, expression) =
        refusal(&patient("\n  <name><family value=\"x\"/><nickname value=\"y\"/></name>"));
    assert!(
        message.contains("<nickname> is not an element of HumanName (line 2, column 28)"),
        "{message}"
    );
    assert_eq!(expression.as_deref(), Some("Patient.name[0]"));
    let (message, _) = refusal(&patient(r#"<gender value="male"/><active value="true"/>"#));
    assert!(message.contains("<active> is out of order: R4 puts it before <gender>"), "{message}");
    let (message, _) = refusal(&patient(
        r#"<name><given value="a"/><prefix value="b"/><given value="c"/></name>"#,
    ));
    assert!(message.contains("<given> is out of order"), "{message}");
    let (message, _) = refusal(&patient(r#"<gender value="male"/><gender value="female"/>"#));
    assert!(message.contains("<gender> may appear only once"), "{message}");
    let (message, _) =
        refusal(&patient(r#"<deceasedBoolean value="true"/><deceasedDateTime value="2020"/>"#));
    assert!(message.contains("may appear only once"), "{message}");
    let (message, _) = refusal(&patient(r#"<deceased value="true"/>"#));
    assert!(message.contains("<deceased> is not an element of Patient"), "{message}");
    let json = json!({"resourceType": "Patient", "nickname": "x"});
    let error = to_xml(&json, false).unwrap_err();
    assert!(error.message.contains("'nickname' is not an element of Patient"), "{error}");
}

#[test]
fn values_text_and_attributes_outside_fhir_are_refused() {
    assert!(refusal(&patient("<gender/>")).0.contains("needs a value attribute or extensions"));
    assert!(
        refusal(&patient(r#"<gender id="g"/>"#))
            .0
            .contains("needs a value attribute or extensions")
    );
    assert!(
        refusal(&patient("<gender>male</gender>"))
            .0
            .contains("text is not allowed in a FHIR element")
    );
    assert!(refusal(&patient("<name>Peter</name>")).0.contains("text is not allowed"));
    assert!(refusal(&patient("<name><![CDATA[x]]></name>")).0.contains("text is not allowed"));
    assert!(
        refusal(&patient(r#"<gender value="male" lang="en"/>"#))
            .0
            .contains("attribute 'lang' is not allowed")
    );
    assert!(refusal(&patient(r#"<gender value="&foo;"/>"#)).0.contains("the attribute 'value'"));
    assert!(refusal("<Patient/>").0.contains("not in the FHIR namespace"));
    assert!(refusal(r#"<Patient xmlns="http://hl7.org/fhir"><x:gender xmlns:x="urn:other" value="male"/></Patient>"#).0.contains("not in the FHIR namespace"));
    assert!(
        refusal(r#"<Person xmlns="http://hl7.org/fhir"/><Patient/>"#)
            .0
            .contains("nothing but comments")
    );
    assert!(
        refusal(r#"<Resource xmlns="http://hl7.org/fhir"/>"#).0.contains("not an R4 resource type")
    );
    assert!(
        refusal(
            r#"<?xml version="1.0" encoding="ISO-8859-1"?><Patient xmlns="http://hl7.org/fhir"/>"#
        )
        .0
        .contains("FHIR XML is UTF-8")
    );
    assert!(refusal(&patient("<name>")).0.contains("not well-formed"));
    assert!(
        from_xml(b"<Patient xmlns=\"http://hl7.org/fhir\">\xff</Patient>")
            .unwrap_err()
            .message
            .contains("not UTF-8")
    );
    // A prefixed FHIR namespace, a schema location, comments and a byte order mark are all well.
    let json = read(
        "\u{feff}<?xml version=\"1.0\"?><!-- c --><f:Patient xmlns:f=\"http://hl7.org/fhir\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:schemaLocation=\"http://hl7.org/fhir x.xsd\"><!-- c --><f:active value=\"true\"/></f:Patient>",
    );
    assert_eq!(json, json!({"resourceType": "Patient", "active": true}));
}

#[test]
fn document_types_and_entity_declarations_are_refused_before_anything_expands() {
    let laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><Patient xmlns="http://hl7.org/fhir"><name><text value="&lol2;"/></name></Patient>"#;
    assert!(refusal(laughs).0.contains("a document type declaration is not allowed"));
    let xxe = r#"<!DOCTYPE Patient [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><Patient xmlns="http://hl7.org/fhir"><name><text value="&xxe;"/></name></Patient>"#;
    assert!(refusal(xxe).0.contains("a document type declaration is not allowed"));
}

#[test]
fn nesting_and_attributes_are_bounded() {
    let deep = format!(
        r#"<Patient xmlns="http://hl7.org/fhir">{}{}</Patient>"#,
        r#"<extension url="u">"#.repeat(10_000),
        "</extension>".repeat(10_000)
    );
    assert!(refusal(&deep).0.contains(&format!("nest deeper than {MAX_DEPTH} levels")));
    let deep_div = patient(&format!(
        r#"<text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml">{}</div></text>"#,
        "<b>".repeat(10_000)
    ));
    assert!(refusal(&deep_div).0.contains("nest deeper"));
    let many = (0..40).map(|i| format!(r#" xmlns:p{i}="urn:{i}""#)).collect::<String>();
    assert!(
        refusal(&format!(r#"<Patient xmlns="http://hl7.org/fhir"{many}/>"#))
            .0
            .contains("at most 32 attributes")
    );
}
