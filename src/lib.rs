//! driftless: GitOps as a library.
//!
//! driftless does what Flux's controllers do, from inside any Rust program:
//! take a Git revision as the single source of truth, prove who signed it,
//! render its kustomize overlays, compare the result with the live cluster,
//! and produce a deterministic plan that an [`apply::Applier`] carries out.
//!
//! ```text
//!  GitRef ─▶ Source::fetch ─▶ Snapshot { revision, commit, tree }
//!                                │
//!            Verified::check ─▶ Verified<Snapshot>     (unsigned ⇒ stop)
//!                                │
//!            Renderer::render ─▶ Rendered { objects }  (kustomize, Flux mode)
//!                                │
//!            Applier::get ─▶ live objects, previous inventory
//!                                │
//!            plan::plan ─▶ Plan { stages, prune }      (pure, deterministic)
//!                                │
//!            dry-run all ─▶ apply staged ─▶ prune ─▶ record inventory
//! ```
//!
//! The four traits are the plug-in points: [`source::Source`],
//! [`verify::Verifier`], [`render::Renderer`] and [`apply::Applier`].
//! Everything between them is pure: the core reads no clock, no RNG and no
//! file outside the snapshot's [`source::Tree`].
//!
//! # Example
//!
//! Reconcile a folder of the bundled demo fleet into the embedded cluster:
//!
//! ```
//! use driftless::apply::MemoryCluster;
//! use driftless::pipeline::{ReconcileOptions, Reconciler};
//! use driftless::render::kustomize::{Kustomize, KustomizeOptions};
//! use driftless::schema::Schema;
//! use driftless::source::DirSource;
//! use driftless::verify::danger::NoVerification;
//!
//! let fleet = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fleet");
//! let renderer = Kustomize::new(KustomizeOptions { flux: true, ..Default::default() });
//! let cluster = MemoryCluster::new();
//! let reconciler = Reconciler {
//!     source: &DirSource::new(fleet),
//!     // a plain folder carries no signature; Git sources use SshVerifier or OpenPgpVerifier
//!     verifier: &NoVerification,
//!     renderer: &renderer,
//!     applier: &cluster,
//!     schema: Schema::kubernetes(),
//! };
//! let options = ReconcileOptions { path: "apps/overlays/production".into(), ..Default::default() };
//! let report = futures::executor::block_on(reconciler.reconcile(&options)).unwrap();
//! assert!(report.changes.entries.iter().any(|e| e.subject == "Deployment/apps/app1"));
//! // a second run changes nothing
//! let again = futures::executor::block_on(reconciler.reconcile(&options)).unwrap();
//! assert!(again.plan.is_noop());
//! ```
//!
//! For a whole Flux repository (cluster folder, Kustomizations, dependsOn,
//! health checks, tenancy), see [`fleet::FleetContext`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod apply;
pub mod diff;
pub mod fleet;
pub mod flux;
pub mod gotmpl;
pub mod health;
mod hint;
pub mod image;
pub mod object;
mod par;
pub mod pipeline;
pub mod plan;
pub mod policy;
pub mod render;
pub mod schema;
pub mod sops;
pub mod source;
pub mod verify;

/// The README's examples, compiled and run as doctests exactly as printed.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme {}
pub mod yaml;

pub use object::{Object, ObjectId, Revision};
