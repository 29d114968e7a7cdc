//! The `whatsapp-gateway` binary: a shim over the library's CLI.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    whatsapp_gateway::cli::main().await
}
