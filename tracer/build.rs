//! Builds the eBPF programs (`tracer-ebpf`) with the pinned toolchain and embeds them.
//!
//! The toolchain must carry an LLVM no newer than bpf-linker's (22): 1.98.0 ships LLVM 22.1.8.
//! `cargo xtask` installs it; `RUSTC_BOOTSTRAP=1` lets aya-build use `-Z build-std=core` on it.

const EBPF_TOOLCHAIN: &str = "1.98.0";

fn main() -> anyhow::Result<()> {
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
