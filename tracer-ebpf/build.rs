//! Rebuild the programs when the linker changes (as aya-template does).
fn main() {
    // The Python frame walk is a global BPF function: the verifier checks it once, on its own,
    // instead of once for every path of `sys_exit` that reaches it (bpf-linker keeps an exported
    // symbol global; its BTF then says so).
    // (Only for the BPF target: on the host the bin is an empty stub linked by `cc`.)
    if std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|a| a == "bpf") {
        println!("cargo:rustc-link-arg-bins=--export=tracer_python_stack");
    }
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
