//! `bff-template`: configured from the `BFF_TEMPLATE_*` environment, served until
//! SIGTERM (`oberon_bff::run`).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    oberon_bff::run(
        bff_template::NAME,
        bff_template::PREFIX,
        bff_template::service,
    )
    .await
}
