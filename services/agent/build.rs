//! Generates the agent gateway client from proto/agent.proto with a vendored protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Outside the package, so cargo would not notice a change by itself.
    println!("cargo:rerun-if-changed=../../proto/agent.proto");
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().build_server(false).build_client(true).compile_with_config(
        config,
        &["../../proto/agent.proto"],
        &["../../proto"],
    )?;
    Ok(())
}
