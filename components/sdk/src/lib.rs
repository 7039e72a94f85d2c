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
//! The contract is `wit/v0.1.0/component.wit` (package `oberon:component@0.1.0`).
//! The raw generated bindings are in [`bindings`]; most components never need them.

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

/// The generated bindings for the `oberon:component@0.1.0` world `component`.
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit/v0.1.0",
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
