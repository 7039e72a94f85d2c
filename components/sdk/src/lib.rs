//! Guest SDK for Oberon components.
//!
//! A component is a type implementing [`Component`], exported with
//! [`export_component!`]:
//!
//! ```no_run
//! use oberon_sdk::{Component, Context, Fragment, Metadata, Props, html};
//!
//! struct Hello;
//!
//! impl Component for Hello {
//!     fn describe() -> Metadata {
//!         Metadata::new("hello")
//!     }
//!
//!     fn render(_ctx: &Context, props: Props) -> Result<Fragment, String> {
//!         let who = props.str("who").unwrap_or("world");
//!         Ok(Fragment::html(format!("<p>Hello, {}!</p>", html::escape(who))))
//!     }
//! }
//!
//! oberon_sdk::export_component!(Hello);
//! ```
//!
//! The contract is `wit/v0.2.0/component.wit` (package `oberon:component@0.2.0`).
//! The raw generated bindings are in [`bindings`]; most components never need them.
//!
//! # Reuse
//!
//! A component may declare with [`Metadata::reuse`] that the renderer can reuse its
//! render: for that many seconds, a request with the same inputs gets the outcome of
//! an earlier render (its HTML, head entries and the topics it published) without
//! running the component. The inputs are this build of the component, the slot's
//! props, the values of the topics it subscribes to, and the request's path, route
//! parameters, query and locale. So a reusable component's render must depend on
//! nothing else. It must not:
//!
//! - read a clock (`std::time`, a date in a WASI call) or randomness;
//! - show the request id ([`Context`]'s `request_id`) or count renders;
//! - depend on the signed-in user (the renderer never reuses a render for a request
//!   with a user, nor for a component declared [`Cacheability::Personal`], but a
//!   component that reads [`Context::user`] should not declare reuse at all);
//! - rely on a log line per request (a reused render logs nothing).
//!
//! The renderer also never reuses a render on a page rendered for a canary. Renders
//! that fail (`Err`, a trap, a timeout) are never reused. Components built against
//! `oberon:component@0.1.0` are never reused.

#![warn(missing_docs)]

#[cfg(all(feature = "allocator", target_arch = "wasm32", target_os = "unknown"))]
mod allocator;
pub mod bus;
mod component;
mod context;
pub mod html;
pub mod log;
mod props;
mod types;

pub use component::Component;
pub use props::Props;
pub use serde_json::{self, Value, json};

/// The generated bindings for the `oberon:component@0.2.0` world `component`.
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit/v0.2.0",
        world: "component",
        pub_export_macro: true,
        export_macro_name: "__export_oberon_component",
        default_bindings_module: "oberon_sdk::bindings",
    });
}

/// How cacheable a component's output is.
pub use bindings::oberon::component::types::Cacheability;
/// The request context a component renders for (path, route parameters, query,
/// locale, verified user, request id). See [`Context::param`], [`Context::query`]
/// and [`Context::user`].
pub use bindings::oberon::component::types::Context;
/// The output of a render: slot HTML plus head entries. Build with [`Fragment::html`].
pub use bindings::oberon::component::types::Fragment;
/// One `<title>`, `<meta>`, `<link>`, `<script>` or `<style>` element for the document head.
pub use bindings::oberon::component::types::HeadEntry;
/// What a component declares about itself. Build with [`Metadata::new`].
pub use bindings::oberon::component::types::Metadata;
/// The signed-in user, as asserted by the gateway.
pub use bindings::oberon::component::types::User;

#[doc(hidden)]
pub mod __private {
    pub use crate::component::Adapter;
}

/// Exports a type implementing [`Component`] as this crate's component.
///
/// Use it once, at the crate root of a `cdylib` crate:
///
/// ```
/// use oberon_sdk::{Component, Context, Fragment, Metadata, Props};
///
/// struct MyComponent;
///
/// impl Component for MyComponent {
///     fn describe() -> Metadata {
///         Metadata::new("my-component")
///     }
///     fn render(_ctx: &Context, _props: Props) -> Result<Fragment, String> {
///         Ok(Fragment::html("<p>hi</p>"))
///     }
/// }
///
/// oberon_sdk::export_component!(MyComponent);
/// ```
#[macro_export]
macro_rules! export_component {
    ($ty:ty) => {
        #[doc(hidden)]
        type __OberonExportedComponent = $crate::__private::Adapter<$ty>;
        $crate::bindings::__export_oberon_component!(
            __OberonExportedComponent with_types_in $crate::bindings
        );
    };
}

/// The workspace README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
