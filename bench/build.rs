//! Generates the tonic peer's code from `proto/bench.proto` with the `protoc`
//! that `protoc-bin-vendored` ships, so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // `bytes` fields as `bytes::Bytes`: the payload is shared, not copied, on decode.
    config.bytes(["."]);
    tonic_prost_build::configure().compile_with_config(
        config,
        &["proto/bench.proto"],
        &["proto"],
    )?;
    Ok(())
}
