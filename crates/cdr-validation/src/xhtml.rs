//! The R4 narrative rules (<https://hl7.org/fhir/R4/narrative.html>, invariants txt-1 and txt-2), checked
//! on the XML tokens of `Narrative.div` by allowlists: an element or attribute passes only if FHIR permits it.
//!
//! The narrative is one well-formed `div` in the XHTML namespace. Inside it: only the basic formatting
//! elements of HTML 4.0 (R4 names chapters 7-11, except section 4 of chapter 9, and 15), `a` (`name` or
//! `href`), images and tables; no head or body, scripts, forms, frames, objects, embeds, links or other
//! active content. Attributes are the generic ones (`id`, `class`, `title`, `style`, `lang`, ...), the
//! table-layout ones and a few per element (`a.href`, `img.src`, ...), never an event handler (`on*`).
//! A URL attribute may not use `javascript:`, `vbscript:` or (except an image's `data:image/...`) `data:`,
//! judged as a browser reads it: after entities are expanded, every space and control character is removed
//! and case is folded (`java&#9;script:` is `javascript:`). A `style` may not carry script (`expression(`,
//! `url(javascript:`, `behavior`, `-moz-binding`, `@import`, CSS escapes). Entities are XML's five and
//! character references; a document type, processing instruction or XML declaration is refused. The lists
//! are the HL7 FHIR validator's, which implements the same rules. The `div` must have some non-whitespace
//! content: text or an image (txt-2).

use quick_xml::Reader;
use quick_xml::XmlVersion;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};

const XHTML_NAMESPACE: &str = "http://www.w3.org/1999/xhtml";

/// The elements a narrative may contain.
const ELEMENTS: &[&str] = &[
    "a",
    "abbr",
    "acronym",
    "address",
    "area",
    "b",
    "bdo",
    "big",
    "blockquote",
    "br",
    "caption",
    "cite",
    "code",
    "col",
    "colgroup",
    "dd",
    "dfn",
    "div",
    "dl",
    "dt",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "kbd",
    "li",
    "map",
    "ol",
    "p",
    "pre",
    "q",
    "samp",
    "small",
    "span",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "tt",
    "ul",
    "var",
];

/// The attributes any narrative element may carry.
const GLOBAL_ATTRIBUTES: &[&str] = &[
    "abbr",
    "accesskey",
    "align",
    "axis",
    "char",
    "charoff",
    "class",
    "colspan",
    "dir",
    "headers",
    "id",
    "lang",
    "rowspan",
    "scope",
    "span",
    "style",
    "tabindex",
    "title",
    "valign",
    "width",
    "xml:lang",
];

/// The attributes allowed on one element only, as `element.attribute`.
const ELEMENT_ATTRIBUTES: &[&str] = &[
    "a.charset",
    "a.coords",
    "a.href",
    "a.hreflang",
    "a.name",
    "a.rel",
    "a.rev",
    "a.shape",
    "a.type",
    "area.alt",
    "area.coords",
    "area.href",
    "area.nohref",
    "area.shape",
    "blockquote.cite",
    "img.alt",
    "img.border",
    "img.height",
    "img.ismap",
    "img.longdesc",
    "img.src",
    "img.usemap",
    "img.width",
    "map.name",
    "pre.space",
    "q.cite",
    "table.border",
    "table.cellpadding",
    "table.cellspacing",
    "table.frame",
    "table.rules",
    "table.summary",
    "table.width",
    "td.nowrap",
];

/// The attributes whose value is a URL a browser may follow or load.
const URL_ATTRIBUTES: &[&str] =
    &["a.href", "area.href", "blockquote.cite", "img.longdesc", "img.src", "img.usemap", "q.cite"];

/// What a `style` may not contain once comments, spaces and case are gone.
const STYLE_SCRIPTS: &[&str] =
    &["expression(", "javascript:", "vbscript:", "behavior", "-moz-binding", "@import"];

/// Checks a `Narrative.div` value; `Some(message)` names the first rule it breaks.
pub(crate) fn check(text: &str) -> Option<String> {
    check_tokens(text).err()
}

fn check_tokens(text: &str) -> Result<(), String> {
    let mut reader = Reader::from_str(text);
    let mut depth = 0_usize;
    let mut seen_root = false;
    let mut has_content = false;
    loop {
        let event = reader.read_event().map_err(|error| not_well_formed(&error))?;
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                let is_empty = matches!(event, Event::Empty(_));
                if depth == 0 {
                    if seen_root {
                        return Err("narrative must be a single <div> element".to_owned());
                    }
                    seen_root = true;
                    check_root(start)?;
                }
                let name = check_element(start)?;
                has_content |= name == "img";
                if !is_empty {
                    depth += 1;
                }
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Text(ref content) if depth == 0 => {
                if !is_blank(content) {
                    return Err("narrative must be a single <div> element".to_owned());
                }
            }
            Event::Text(ref content) => has_content |= !is_blank(content),
            Event::CData(ref content) => {
                if depth == 0 {
                    return Err("narrative must be a single <div> element".to_owned());
                }
                has_content |= !is_blank(content);
            }
            Event::GeneralRef(ref reference) => {
                if depth == 0 {
                    return Err("narrative must be a single <div> element".to_owned());
                }
                let character =
                    reference.resolve_char_ref().map_err(|error| not_well_formed(&error))?;
                match character {
                    Some(character) => has_content |= !character.is_whitespace(),
                    None if resolve_predefined_entity(reference).is_some() => has_content = true,
                    None => {
                        return Err(format!(
                            "narrative uses the entity '&{};': only XML's own entities and character \
                             references are allowed",
                            &**reference
                        ));
                    }
                }
            }
            Event::Comment(_) => {}
            Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {
                return Err(
                    "narrative contains an XML declaration, processing instruction or document type"
                        .to_owned(),
                );
            }
            Event::Eof => break,
        }
    }
    if depth > 0 {
        return Err("narrative is not well-formed XHTML: an element is not closed".to_owned());
    }
    if !seen_root {
        return Err("narrative must be a single <div> element".to_owned());
    }
    if !has_content {
        return Err("narrative must have some non-whitespace content (txt-2)".to_owned());
    }
    Ok(())
}

fn not_well_formed(error: &dyn std::fmt::Display) -> String {
    format!("narrative is not well-formed XHTML: {error}")
}

fn is_blank(text: &str) -> bool {
    text.bytes().all(|byte| byte.is_ascii_whitespace())
}

/// The root is a `div` whose default namespace is XHTML.
fn check_root(start: &BytesStart<'_>) -> Result<(), String> {
    if start.name().as_ref() != "div" {
        return Err("narrative must be a single <div> element".to_owned());
    }
    let declares_xhtml = start.attributes().flatten().any(|attribute| {
        attribute.key.as_ref() == "xmlns" && attribute.value.as_ref() == XHTML_NAMESPACE
    });
    if declares_xhtml {
        Ok(())
    } else {
        Err(format!("narrative <div> must declare xmlns=\"{XHTML_NAMESPACE}\""))
    }
}

/// Checks an element and its attributes against the allowlists; returns the element's name.
fn check_element<'a>(start: &'a BytesStart<'_>) -> Result<&'a str, String> {
    let name = start.name().into_inner();
    if !ELEMENTS.contains(&name) {
        return Err(format!("narrative contains a forbidden <{}> element", shorten(name)));
    }
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|error| not_well_formed(&error))?;
        let key: &str = attribute.key.as_ref();
        let lower = key.to_ascii_lowercase();
        if lower.starts_with("on") {
            return Err(format!("narrative contains an event attribute '{}'", shorten(key)));
        }
        let qualified = format!("{name}.{key}");
        let namespace_declaration = key == "xmlns" || key.starts_with("xmlns:");
        if !namespace_declaration
            && !GLOBAL_ATTRIBUTES.contains(&key)
            && !ELEMENT_ATTRIBUTES.contains(&qualified.as_str())
        {
            return Err(format!(
                "narrative contains an attribute '{}' not allowed on <{name}>",
                shorten(key)
            ));
        }
        let value = attribute
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|error| format!("narrative attribute '{key}' on <{name}>: {error}"))?;
        if URL_ATTRIBUTES.contains(&qualified.as_str()) {
            check_url(&qualified, &value)?;
        } else if key == "style" {
            check_style(&value)?;
        }
    }
    Ok(name)
}

/// A URL as a browser reads it: without spaces and control characters (which URL parsing drops or strips), in
/// lower case.
fn folded(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .collect::<String>()
        .to_lowercase()
}

fn check_url(attribute: &str, value: &str) -> Result<(), String> {
    let url = folded(value);
    let scheme = url
        .split_once(':')
        .map(|(scheme, _)| scheme)
        .filter(|scheme| !scheme.contains(['/', '?', '#']));
    let allowed = match scheme {
        Some("javascript" | "vbscript") => false,
        Some("data") => attribute == "img.src" && url.starts_with("data:image/"),
        _ => true,
    };
    if allowed {
        Ok(())
    } else {
        Err(format!("narrative contains a {}: URL in {attribute}", scheme.unwrap_or_default()))
    }
}

fn check_style(value: &str) -> Result<(), String> {
    if value.contains('\\') {
        return Err("narrative contains a style with a CSS escape".to_owned());
    }
    let mut style = String::new();
    let mut rest = value;
    while let Some((before, after)) = rest.split_once("/*") {
        style.push_str(before);
        rest = after.split_once("*/").map_or("", |(_, after)| after);
    }
    style.push_str(rest);
    let style = folded(&style);
    match STYLE_SCRIPTS.iter().find(|script| style.contains(**script)) {
        Some(script) => Err(format!("narrative contains a style with '{script}'")),
        None => Ok(()),
    }
}

fn shorten(text: &str) -> &str {
    text.char_indices().nth(40).map_or(text, |(end, _)| &text[..end])
}

#[cfg(test)]
mod tests {
    use super::check;

    fn div(inner: &str) -> String {
        format!(r#"<div xmlns="http://www.w3.org/1999/xhtml">{inner}</div>"#)
    }

    #[test]
    fn r4_style_narratives_pass() {
        for inner in [
            "<p>hello</p>",
            r#"<table class="grid" border="1" cellpadding="2"><tr><td colspan="2" style="padding: 2px">x</td></tr></table>"#,
            r##"<a name="top"> </a><a href="#top" title="Top">top</a> &amp; &lt;b&gt; &#160;x"##,
            r#"<img src="data:image/png;base64,iVBORw0KGgo=" alt="."/>"#,
            r#"<span style="background-image: url(data:image/png;base64,iVBOR)">.</span><br/>"#,
            r#"<p xml:lang="fr" lang="fr">bonjour</p><!-- a comment -->"#,
            r#"<a href="https://example.org/x?a=1&amp;b=2">link</a><a href="Patient/123">p</a>"#,
            r#"<p title="&#174; &quot;x&quot; &apos;y&apos;">&#174; &#xAE; &#xae; &gt;</p>"#,
        ] {
            assert_eq!(check(&div(inner)), None, "{inner}");
        }
    }

    #[test]
    fn active_content_is_refused() {
        let cases = [
            ("<img src=x/onerror=alert(1)>", "not well-formed"),
            (r#"<img src="x" onerror="alert(1)"/>"#, "event attribute 'onerror'"),
            ("<svg/onload=alert(1)>", "forbidden <svg"),
            (r#"<svg onload="alert(1)"/>"#, "forbidden <svg>"),
            ("<a href=\"java\tscript:alert(1)\">x</a>", "javascript: URL"),
            (r#"<a href="java&#9;script:alert(1)">x</a>"#, "javascript: URL"),
            (r#"<a href=" JavaScript:alert(1)">x</a>"#, "javascript: URL"),
            (r#"<a href="&#106;avascript:alert(1)">x</a>"#, "javascript: URL"),
            (r#"<a href="vbscript:msgbox">x</a>"#, "vbscript: URL"),
            (r#"<a href="data:text/html,&lt;script&gt;">x</a>"#, "data: URL"),
            (r#"<img src="data:text/html;base64,PHNjcmlwdD4="/>"#, "data: URL"),
            ("<script>alert(1)</script>", "forbidden <script>"),
            (r#"<iframe src="https://x"></iframe>"#, "forbidden <iframe>"),
            ("<form><input/></form>", "forbidden <form>"),
            (r#"<object data="x"></object>"#, "forbidden <object>"),
            (r#"<embed src="x"/>"#, "forbidden <embed>"),
            (r#"<link rel="stylesheet" href="x"/>"#, "forbidden <link>"),
            ("<style>p{}</style>", "forbidden <style>"),
            ("<math>x</math>", "forbidden <math>"),
            (r#"<p OnClick="x()">hi</p>"#, "event attribute 'OnClick'"),
            (r#"<p style="width: expression(alert(1))">x</p>"#, "expression("),
            (r#"<p style="background: url( 'JAVA script:alert(1)')">x</p>"#, "javascript:"),
            (r#"<p style="-moz-binding: url(x)">x</p>"#, "-moz-binding"),
            (r#"<p style="x: \65xpression(1)">x</p>"#, "CSS escape"),
            (r#"<p style="width: expr/**/ession(alert(1))">x</p>"#, "expression("),
            (r#"<p formaction="x">x</p>"#, "attribute 'formaction' not allowed on <p>"),
            (r#"<p href="x">x</p>"#, "attribute 'href' not allowed on <p>"),
            (r#"<a xlink:href="x">x</a>"#, "attribute 'xlink:href' not allowed"),
            ("<p>&nbsp;</p>", "entity '&nbsp;'"),
            ("<p>Acme&reg; scanner</p>", "entity '&reg;'"),
            ("<p>&REG;</p>", "entity '&REG;'"),
            (r#"<p title="Acme&reg;">x</p>"#, "reg"),
            (r#"<a href="https://example.org/?a=1&copy;=2">x</a>"#, "copy"),
            ("<p>x</p", "not well-formed"),
            ("<p>x</b>", "not well-formed"),
            ("<p>x", "expected `</p>`"),
            (r#"<p id="a" id="b">x</p>"#, "not well-formed"),
        ];
        for (inner, expected) in cases {
            let problem = check(&div(inner)).unwrap_or_default();
            assert!(problem.contains(expected), "{inner}: {problem:?}");
        }
    }

    #[test]
    fn the_root_is_one_xhtml_div_with_content() {
        let cases = [
            ("<p>hi</p>", "single <div>"),
            ("<div><p>hi</p></div>", "must declare xmlns"),
            (r#"<div xmlns="http://www.w3.org/1999/xhtml"><p>hi</p></div><div/>"#, "single <div>"),
            (r#"<div xmlns="http://www.w3.org/1999/xhtml">hi</div> trailing"#, "single <div>"),
            (r#"<x:div xmlns:x="http://www.w3.org/1999/xhtml">hi</x:div>"#, "single <div>"),
            ("", "single <div>"),
            (
                r#"<?xml version="1.0"?><div xmlns="http://www.w3.org/1999/xhtml">hi</div>"#,
                "declaration",
            ),
            (
                r#"<!DOCTYPE div><div xmlns="http://www.w3.org/1999/xhtml">hi</div>"#,
                "document type",
            ),
            (r#"<div xmlns="http://www.w3.org/1999/xhtml"> <p> </p>&#32;</div>"#, "txt-2"),
            (r#"<div xmlns="http://www.w3.org/1999/xhtml"><p>x</p>"#, "not closed"),
            (r#"<div xmlns="http://www.w3.org/1999/xhtml"><!-- only a comment --></div>"#, "txt-2"),
        ];
        for (text, expected) in cases {
            let problem = check(text).unwrap_or_default();
            assert!(problem.contains(expected), "{text}: {problem:?}");
        }
        for text in [
            r#"  <div xmlns="http://www.w3.org/1999/xhtml">hi</div>  "#,
            r#"<div xmlns="http://www.w3.org/1999/xhtml"><img src="x.png" alt=""/></div>"#,
        ] {
            assert_eq!(check(text), None, "{text}");
        }
    }
}
