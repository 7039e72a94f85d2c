//! `checkout-bff`: configured from the `CHECKOUT_BFF_*` environment, served until
//! SIGTERM (`oberon_bff::run`).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    oberon_bff::run(
        checkout_bff::NAME,
        checkout_bff::PREFIX,
        checkout_bff::service,
    )
    .await
}
