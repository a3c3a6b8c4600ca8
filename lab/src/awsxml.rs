//! The XML side of AWS's query and REST-XML protocols, shared by the lab's RDS,
//! Route53 and ELBv2: a document builder (quick-xml escapes), the error document, the
//! response metadata.

use std::io::Cursor;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

/// A small XML document builder over quick-xml (which does the escaping).
pub(crate) struct Xml {
    w: Writer<Cursor<Vec<u8>>>,
}

impl Xml {
    pub(crate) fn new() -> Xml {
        let mut w = Writer::new(Cursor::new(Vec::new()));
        let _ = w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
        Xml { w }
    }
    pub(crate) fn open(&mut self, name: &str) -> &mut Xml {
        let _ = self.w.write_event(Event::Start(BytesStart::new(name)));
        self
    }
    pub(crate) fn open_ns(&mut self, name: &str, ns: &str) -> &mut Xml {
        let _ = self.w.write_event(Event::Start(
            BytesStart::new(name).with_attributes([("xmlns", ns)]),
        ));
        self
    }
    pub(crate) fn close(&mut self, name: &str) -> &mut Xml {
        let _ = self.w.write_event(Event::End(BytesEnd::new(name)));
        self
    }
    pub(crate) fn el(&mut self, name: &str, text: &str) -> &mut Xml {
        self.open(name);
        let _ = self.w.write_event(Event::Text(BytesText::new(text)));
        self.close(name)
    }
    pub(crate) fn finish(self) -> String {
        String::from_utf8_lossy(&self.w.into_inner().into_inner()).into_owned()
    }
}

pub(crate) fn xml(code: StatusCode, body: String) -> Response {
    (code, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

pub(crate) fn request_id() -> String {
    let r = fastrand::u128(..);
    let h = format!("{r:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// An AWS error document (query and REST-XML protocols share this shape).
pub(crate) fn error(code: StatusCode, ns: &str, err_code: &str, message: &str) -> Response {
    let mut x = Xml::new();
    x.open_ns("ErrorResponse", ns)
        .open("Error")
        .el(
            "Type",
            if code.is_server_error() {
                "Receiver"
            } else {
                "Sender"
            },
        )
        .el("Code", err_code)
        .el("Message", message)
        .close("Error")
        .el("RequestId", &request_id())
        .close("ErrorResponse");
    xml(code, x.finish())
}

pub(crate) fn metadata(x: &mut Xml) {
    x.open("ResponseMetadata")
        .el("RequestId", &request_id())
        .close("ResponseMetadata");
}
