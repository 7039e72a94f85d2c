//! Host bindings for the component contract. This is the only place that names the WIT
//! package; everything else uses the domain types in [`crate::component`].

wasmtime::component::bindgen!({
    path: "../components/wit/v0.1.0",
    world: "component",
    exports: { default: async },
});
