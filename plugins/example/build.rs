//! Link settings for the no_std wasm guest. `memcmp` and friends come from
//! wasi-libc; they are plain functions, so linking libc adds no WASI imports.
//! DWARF is stripped (the name section stays, so trap backtraces still name
//! functions): it is most of the file and the host never reads it.
fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo::rustc-link-lib=c");
        println!("cargo::rustc-link-arg-cdylib=--strip-debug");
    }
}
