//! Compiles `proto/*.proto` with protox (pure Rust), so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/trm.proto", "proto/admin.proto", "proto/audit.proto"];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    let mut cfg = prost_build::Config::new();
    cfg.compile_fds(fds)?;
    Ok(())
}
