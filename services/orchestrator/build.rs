//! Generates the gRPC admin API and the agent gateway (proto/admin.proto,
//! proto/agent.proto) with a vendored protoc, so that no protoc needs to be
//! installed, on the codec of src/codec.rs; and rebuilds the crate when a migration
//! is added.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // sqlx::migrate! embeds the migrations at compile time; a new one must rebuild
    // the crate.
    println!("cargo:rerun-if-changed=../../migrations");
    // Naming one path above turns off cargo's default of watching the package, so
    // the protos are named too.
    println!("cargo:rerun-if-changed=../../proto/admin.proto");
    println!("cargo:rerun-if-changed=../../proto/agent.proto");
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .codec_path("crate::codec::LeanCodec")
        .compile_with_config(
            config,
            &["../../proto/admin.proto", "../../proto/agent.proto"],
            &["../../proto"],
        )?;
    Ok(())
}
