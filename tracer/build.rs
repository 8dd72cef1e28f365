//! Builds the eBPF programs (`tracer-ebpf`) with the pinned toolchain and embeds them, and
//! generates pprof's messages from `proto/profile.proto` (compiled by protox, a pure-Rust
//! protobuf compiler, so the build needs no `protoc`).
//!
//! The toolchain must carry an LLVM no newer than bpf-linker's (22): 1.98.0 ships LLVM 22.1.8.
//! `cargo xtask` installs it; `RUSTC_BOOTSTRAP=1` lets aya-build use `-Z build-std=core` on it.

const EBPF_TOOLCHAIN: &str = "1.98.0";

fn main() -> anyhow::Result<()> {
    pprof_messages()?;
    let package = aya_build::Package {
        name: "tracer-ebpf",
        root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../tracer-ebpf"),
        ..Default::default()
    };
    if std::env::var_os("RUSTC_BOOTSTRAP").is_none() {
        // SAFETY: no other threads exist in a build script.
        unsafe { std::env::set_var("RUSTC_BOOTSTRAP", "1") };
    }
    aya_build::build_ebpf([package], aya_build::Toolchain::Custom(EBPF_TOOLCHAIN))
}

/// `perftools.profiles.rs` in `OUT_DIR`, included by `src/output/pprof/proto.rs`.
fn pprof_messages() -> anyhow::Result<()> {
    println!("cargo:rerun-if-changed=proto/profile.proto");
    let descriptors = protox::compile(["profile.proto"], ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
