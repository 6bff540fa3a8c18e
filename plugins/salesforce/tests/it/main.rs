//! The connector end to end on the SDK's in-memory host, against a stand-in Salesforce org
//! that answers as Salesforce documents its REST API and posts Outbound Messages in the WSDL's
//! shape.

mod limits;
mod manifest;
mod outbound;
mod signature;
mod sync;
mod upsert;
mod util;
