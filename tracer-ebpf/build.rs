//! Rebuild the programs when the linker changes (as aya-template does).
fn main() {
    // The Python frame walk is a global BPF function: the verifier checks it once, on its own,
    // instead of once for every path of `sys_exit` that reaches it (bpf-linker keeps an exported
    // symbol global; its BTF then says so).
    println!("cargo:rustc-link-arg-bins=--export=tracer_python_stack");
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
