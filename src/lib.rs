//! driftless: GitOps as a library.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod apply;
pub mod image;
pub mod object;
pub mod plan;
pub mod render;
pub mod schema;
pub mod source;
pub mod verify;
pub mod yaml;

pub use object::{Object, ObjectId, Revision};
