//! Generates the gRPC admin API from proto/admin.proto with a vendored protoc,
//! so that no protoc needs to be installed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().build_client(true).build_server(true).compile_with_config(
        config,
        &["../../proto/admin.proto", "../../proto/agent.proto"],
        &["../../proto"],
    )?;
    Ok(())
}
