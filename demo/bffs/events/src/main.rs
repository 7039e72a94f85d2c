//! `events-bff`: configured from the `EVENTS_BFF_*` environment, served until SIGTERM
//! (`oberon_bff::run`).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    oberon_bff::run(events_bff::NAME, events_bff::PREFIX, events_bff::service).await
}
