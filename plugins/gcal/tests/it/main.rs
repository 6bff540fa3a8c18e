//! The connector end to end on the SDK's in-memory host, against a stand-in Google Calendar
//! that answers as the discovery document describes.

mod book;
mod change;
mod channels;
mod push;
mod register;
mod slots;
mod sync;
mod util;
