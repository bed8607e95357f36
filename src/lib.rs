//! driftless: GitOps as a library.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod apply;
pub mod diff;
pub mod fleet;
pub mod flux;
pub mod health;
pub mod image;
pub mod object;
pub mod pipeline;
pub mod plan;
pub mod policy;
pub mod render;
pub mod schema;
pub mod sops;
pub mod source;
pub mod verify;
pub mod yaml;

pub use object::{Object, ObjectId, Revision};
