//! The demo backends' gRPC contracts, generated from `proto/` (the repository's versioned
//! protobuf packages) at build time, and fixture servers that implement them.
//!
//! - [`events::v1`]: `oberon.demo.events.v1`, the events catalogue (`EventsService`).
//! - [`checkout::v1`]: `oberon.demo.checkout.v1`, buyers' orders (`OrdersService`).
//!
//! Each package module holds the messages, a `*_service_client` module (the tonic
//! client) and a `*_service_server` module (the trait a server implements). The module
//! path follows the package: a `v2` would be `events::v2`, beside `v1`, both served.
//!
//! [`fixtures`] serves both services from the demo's fixture files (`demo/backends`). A
//! BFF calls them through `oberon_bff::Backend::call`, which holds the deadline, sends
//! the request id and the trace, and retries what may be retried.

pub mod fixtures;

/// Package `oberon.demo.events`.
pub mod events {
    /// Package `oberon.demo.events.v1`: `EventsService.GetEvent`.
    pub mod v1 {
        tonic::include_proto!("oberon.demo.events.v1");
    }
}

/// Package `oberon.demo.checkout`.
pub mod checkout {
    /// Package `oberon.demo.checkout.v1`: `OrdersService.ListOrders`.
    pub mod v1 {
        tonic::include_proto!("oberon.demo.checkout.v1");
    }
}
