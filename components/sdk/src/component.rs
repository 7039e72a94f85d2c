//! The [`Component`] trait and its adapter to the generated `Guest` trait.

use std::marker::PhantomData;

use crate::{Context, Fragment, Metadata, Props};

/// An Oberon component. Implement it on a unit struct and export it with
/// [`export_component!`](crate::export_component).
pub trait Component {
    /// Describes the component: name, bus topics, assets and cacheability.
    /// The host calls this once per loaded component version, not per request.
    fn describe() -> Metadata;

    /// Renders the component for one request. `props` is the JSON object the
    /// page configuration gives this slot (`null` when it gives none).
    ///
    /// An `Err` is reported by the host as a failed render of this slot.
    /// All data interpolated into HTML must go through [`crate::html::escape`].
    fn render(ctx: &Context, props: Props) -> Result<Fragment, String>;
}

/// Adapts a [`Component`] to the generated bindings. Used by `export_component!`.
#[doc(hidden)]
pub struct Adapter<T>(PhantomData<T>);

impl<T: Component> crate::bindings::Guest for Adapter<T> {
    fn describe() -> Metadata {
        T::describe()
    }

    fn render(ctx: Context, props: String) -> Result<Fragment, String> {
        let props = Props::from_json(&props).map_err(|e| format!("invalid props JSON: {e}"))?;
        T::render(&ctx, props)
    }
}
