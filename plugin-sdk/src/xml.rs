//! XML bodies read safely: namespace-aware, no document type, bounded.
//!
//! Providers that post XML (Salesforce's outbound messages are SOAP 1.1) are parsed here, by the
//! host for a declared check before any connector code runs and by connectors for the content,
//! with the same rules on both sides:
//! - a `<!DOCTYPE ...>` is refused: no entity can be declared, so none can expand (the "billion
//!   laughs") or reach outside (XXE); only XML's five predefined entities and character
//!   references are read;
//! - nesting deeper than [`MAX_DEPTH`], more than [`MAX_ELEMENTS`] elements and an attribute
//!   longer than [`MAX_ATTRIBUTE_BYTES`] are refused, so a hostile body costs at most its own
//!   size again in memory;
//! - the document must be well formed: one root element, matching end tags, UTF-8;
//! - names are matched by namespace and local name, never by prefix.
//!
//! ```
//! # #[cfg(feature = "xml")] {
//! use plugin_sdk::xml;
//! let doc = xml::parse(br#"<a:root xmlns:a="urn:x"><a:id>7</a:id></a:root>"#).unwrap();
//! assert_eq!(doc.text_of("urn:x", "id"), Some("7"));
//! # }
//! ```
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

use std::fmt;

use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;

/// The deepest nesting read.
pub const MAX_DEPTH: usize = 64;
/// The most elements read in one document.
pub const MAX_ELEMENTS: usize = 100_000;
/// The longest attribute value read (an attribute names a type or a flag; text holds data).
pub const MAX_ATTRIBUTE_BYTES: usize = 64 * 1024;

/// Why a body is not XML this module reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlError {
    message: String,
    /// Byte offset in the body where reading stopped.
    pub position: u64,
}

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {})", self.message, self.position)
    }
}

impl std::error::Error for XmlError {}

/// An attribute, by namespace and local name (`xmlns` declarations are not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Its namespace; `None` for an unprefixed attribute.
    pub namespace: Option<String>,
    /// Its local name.
    pub name: String,
    /// Its value, entities resolved.
    pub value: String,
}

/// An element with what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// Its namespace; `None` when unbound.
    pub namespace: Option<String>,
    /// Its local name.
    pub name: String,
    /// Its attributes, in order.
    pub attributes: Vec<Attribute>,
    /// Its own text (text and CDATA directly inside it, entities resolved), as written.
    pub text: String,
    /// Its child elements, in order.
    pub children: Vec<Element>,
}

impl Element {
    /// Whether it is `{namespace}name` (`""`: no namespace).
    pub fn is(&self, namespace: &str, name: &str) -> bool {
        self.name == name && self.namespace.as_deref().unwrap_or("") == namespace
    }

    /// Its own text, trimmed.
    pub fn text(&self) -> &str {
        self.text.trim()
    }

    /// The first child `{namespace}name`.
    pub fn child(&self, namespace: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(namespace, name))
    }

    /// Every child `{namespace}name`, in order.
    pub fn children<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(namespace, name))
    }

    /// The trimmed text of the first child `{namespace}name`.
    pub fn text_of(&self, namespace: &str, name: &str) -> Option<&str> {
        self.child(namespace, name).map(Element::text)
    }

    /// The value of attribute `{namespace}name` (`""`: an unprefixed attribute).
    pub fn attribute(&self, namespace: &str, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.name == name && a.namespace.as_deref().unwrap_or("") == namespace)
            .map(|a| a.value.as_str())
    }

    /// The first `{namespace}name` at any depth, this element included (document order).
    pub fn find(&self, namespace: &str, name: &str) -> Option<&Element> {
        if self.is(namespace, name) {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(namespace, name))
    }
}

/// Parses a whole document into its root element, under the module's rules.
///
/// # Errors
/// When the body is not UTF-8, not well formed, has a document type, an undefined entity, or
/// goes past [`MAX_DEPTH`] or [`MAX_ELEMENTS`].
pub fn parse(body: &[u8]) -> Result<Element, XmlError> {
    let text = std::str::from_utf8(body).map_err(|e| XmlError {
        message: "the body is not UTF-8".into(),
        position: e.valid_up_to() as u64,
    })?;
    let mut reader = NsReader::from_str(text);
    let mut open: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut elements = 0usize;
    loop {
        let at = reader.buffer_position();
        let fail = |message: String| XmlError {
            message,
            position: at,
        };
        let event = reader
            .read_resolved_event()
            .map(|(_, e)| e)
            .map_err(|e| fail(format!("not well-formed XML: {e}")))?;
        match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() => {
                return Err(fail("more than one root element".into()));
            }
            Event::Start(start) => {
                elements += 1;
                if open.len() >= MAX_DEPTH {
                    return Err(fail(format!("nested deeper than {MAX_DEPTH} elements")));
                }
                check_count(elements).map_err(fail)?;
                open.push(element(&reader, &start).map_err(fail)?);
            }
            Event::Empty(start) => {
                elements += 1;
                if open.len() >= MAX_DEPTH {
                    return Err(fail(format!("nested deeper than {MAX_DEPTH} elements")));
                }
                check_count(elements).map_err(fail)?;
                let done = element(&reader, &start).map_err(fail)?;
                close(&mut open, &mut root, done);
            }
            Event::End(_) => {
                // quick-xml checks that the end tag matches its start.
                let Some(done) = open.pop() else {
                    return Err(fail("an end tag without its start".into()));
                };
                close(&mut open, &mut root, done);
            }
            Event::Text(t) => {
                let s = t.decode().map_err(|e| fail(format!("bad text: {e}")))?;
                content(&mut open, &s).map_err(fail)?;
            }
            Event::CData(t) => {
                let s = t.decode().map_err(|e| fail(format!("bad CDATA: {e}")))?;
                match open.last_mut() {
                    Some(e) => e.text.push_str(&s),
                    None => return Err(fail("CDATA outside the root element".into())),
                }
            }
            Event::GeneralRef(r) => {
                let name = r
                    .decode()
                    .map_err(|e| fail(format!("bad reference: {e}")))?;
                let reference = format!("&{name};");
                let resolved = quick_xml::escape::unescape(&reference)
                    .map_err(|_| fail(format!("undefined entity `&{name};`")))?;
                content(&mut open, &resolved).map_err(fail)?;
            }
            Event::DocType(_) => {
                return Err(fail(
                    "a document type (DOCTYPE) is not accepted: no entity may be declared".into(),
                ));
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => {
                if !open.is_empty() {
                    return Err(fail("the document ends inside an element".into()));
                }
                return root.ok_or_else(|| fail("no root element".into()));
            }
        }
    }
}

/// The trimmed text of the first `{namespace}name` element of a document, if it has one.
///
/// # Errors
/// As [`parse`]: the whole document is checked, not only up to the element.
pub fn find_text(body: &[u8], namespace: &str, name: &str) -> Result<Option<String>, XmlError> {
    Ok(parse(body)?
        .find(namespace, name)
        .map(|e| e.text().to_string()))
}

fn check_count(elements: usize) -> Result<(), String> {
    if elements > MAX_ELEMENTS {
        return Err(format!("more than {MAX_ELEMENTS} elements"));
    }
    Ok(())
}

/// Ends an element: into its parent, or as the root.
fn close(open: &mut [Element], root: &mut Option<Element>, done: Element) {
    match open.last_mut() {
        Some(parent) => parent.children.push(done),
        None => *root = Some(done),
    }
}

/// Text inside the open element; outside the root only whitespace may stand.
fn content(open: &mut [Element], s: &str) -> Result<(), String> {
    match open.last_mut() {
        Some(e) => {
            e.text.push_str(s);
            Ok(())
        }
        None if s.trim().is_empty() => Ok(()),
        None => Err("text outside the root element".into()),
    }
}

/// An element's name and attributes, resolved.
fn element(reader: &NsReader<&[u8]>, start: &BytesStart<'_>) -> Result<Element, String> {
    let (ns, local) = reader.resolve_element(start.name());
    let mut out = Element {
        namespace: namespace(ns)?,
        name: utf8(local.as_ref())?,
        ..Element::default()
    };
    for attr in start.attributes() {
        let attr = attr.map_err(|e| format!("bad attribute: {e}"))?;
        let key = attr.key;
        if key.as_ref() == b"xmlns" || key.as_ref().starts_with(b"xmlns:") {
            continue;
        }
        if attr.value.len() > MAX_ATTRIBUTE_BYTES {
            return Err(format!(
                "an attribute longer than {} KiB",
                MAX_ATTRIBUTE_BYTES / 1024
            ));
        }
        let (ns, local) = reader.resolve_attribute(key);
        let value = attr
            .unescape_value()
            .map_err(|e| format!("bad attribute value: {e}"))?;
        out.attributes.push(Attribute {
            namespace: namespace(ns)?,
            name: utf8(local.as_ref())?,
            value: value.into_owned(),
        });
    }
    Ok(out)
}

fn namespace(ns: ResolveResult<'_>) -> Result<Option<String>, String> {
    match ns {
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Bound(n) => utf8(n.as_ref()).map(Some),
        ResolveResult::Unknown(prefix) => Err(format!(
            "the prefix `{}` is not declared",
            String::from_utf8_lossy(&prefix)
        )),
    }
}

fn utf8(bytes: &[u8]) -> Result<String, String> {
    std::str::from_utf8(bytes)
        .map(str::to_string)
        .map_err(|_| "a name is not UTF-8".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTBOUND: &str = "http://soap.sforce.com/2005/09/outbound";
    const SOBJECT: &str = "urn:sobject.enterprise.soap.sforce.com";
    const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

    /// Salesforce's documented outbound message shape (PROVIDERS-2.md's fixture).
    const MESSAGE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound">
  <OrganizationId>00D000000000001AAA</OrganizationId><ActionId>04k000000000001AAA</ActionId><SessionId xsi:nil="true"/>
  <Notification><Id>04l000000000001AAA</Id><sObject xsi:type="sf:Contact" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
   <sf:Id>003000000000001AAA</sf:Id><sf:Email>ada&amp;co@example.com</sf:Email><sf:Note><![CDATA[<b>hi</b>]]></sf:Note></sObject></Notification>
 </notifications></soapenv:Body></soapenv:Envelope>"#;

    #[test]
    fn reads_a_soap_message_by_namespace() {
        let doc = parse(MESSAGE.as_bytes()).unwrap();
        assert!(doc.is("http://schemas.xmlsoap.org/soap/envelope/", "Envelope"));
        let n = doc.find(OUTBOUND, "notifications").unwrap();
        assert_eq!(
            n.text_of(OUTBOUND, "OrganizationId"),
            Some("00D000000000001AAA")
        );
        assert_eq!(
            n.child(OUTBOUND, "SessionId")
                .unwrap()
                .attribute(XSI, "nil"),
            Some("true")
        );
        let notes: Vec<_> = n.children(OUTBOUND, "Notification").collect();
        assert_eq!(notes.len(), 1);
        let so = notes[0].child(OUTBOUND, "sObject").unwrap();
        assert_eq!(so.attribute(XSI, "type"), Some("sf:Contact"));
        assert_eq!(so.text_of(SOBJECT, "Email"), Some("ada&co@example.com"));
        assert_eq!(so.text_of(SOBJECT, "Note"), Some("<b>hi</b>"));
        // By prefix alone nothing is found: `sf:Email` is not `Email` in no namespace.
        assert_eq!(so.text_of("", "Email"), None);
        assert_eq!(
            find_text(MESSAGE.as_bytes(), OUTBOUND, "OrganizationId").unwrap(),
            Some("00D000000000001AAA".into())
        );
    }

    #[test]
    fn the_same_namespace_under_another_prefix_is_the_same_name() {
        let doc = parse(br#"<x:a xmlns:x="urn:n"><y:b xmlns:y="urn:n">1</y:b></x:a>"#).unwrap();
        assert_eq!(doc.text_of("urn:n", "b"), Some("1"));
    }

    #[test]
    fn refuses_entity_declarations_and_unknown_entities() {
        let bomb = br#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><a>&lol2;</a>"#;
        let e = parse(bomb).unwrap_err();
        assert!(e.to_string().contains("DOCTYPE"), "{e}");
        let xxe = br#"<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>"#;
        assert!(parse(xxe).unwrap_err().to_string().contains("DOCTYPE"));
        let undefined = parse(b"<a>&x;</a>").unwrap_err();
        assert!(
            undefined.to_string().contains("undefined entity"),
            "{undefined}"
        );
        assert_eq!(parse(b"<a>&#65;&lt;</a>").unwrap().text, "A<");
    }

    #[test]
    fn refuses_deep_nesting_and_too_many_elements() {
        let deep = format!(
            "{}{}",
            "<a>".repeat(MAX_DEPTH + 1),
            "</a>".repeat(MAX_DEPTH + 1)
        );
        assert!(
            parse(deep.as_bytes())
                .unwrap_err()
                .to_string()
                .contains("deeper")
        );
        let fits = format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        assert!(parse(fits.as_bytes()).is_ok());
        let wide = format!("<r>{}</r>", "<a/>".repeat(MAX_ELEMENTS));
        assert!(
            parse(wide.as_bytes())
                .unwrap_err()
                .to_string()
                .contains("elements")
        );
    }

    #[test]
    fn refuses_what_is_not_one_well_formed_document() {
        for bad in [
            &b""[..],
            b"   ",
            b"<a>",
            b"<a></b>",
            b"</a>",
            b"<a/><b/>",
            b"text<a/>",
            b"<a/>text",
            b"<p:a/>",
            b"<a x='1' x='2'/>",
            b"\xff\xfe<a/>",
            b"<a b=\"&nope;\"/>",
        ] {
            assert!(
                parse(bad).is_err(),
                "{:?} parsed",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_long_attribute_is_refused_and_long_text_is_read() {
        let big = format!(r#"<a v="{}"/>"#, "x".repeat(1 << 20));
        assert!(
            parse(big.as_bytes())
                .unwrap_err()
                .to_string()
                .contains("attribute")
        );
        let fits = format!(r#"<a v="{}"/>"#, "x".repeat(MAX_ATTRIBUTE_BYTES));
        assert!(parse(fits.as_bytes()).is_ok());
        // A Long Text Area field holds up to 131,072 characters.
        let text = format!("<a>{}</a>", "y".repeat(131_072));
        assert_eq!(parse(text.as_bytes()).unwrap().text.len(), 131_072);
    }
}
