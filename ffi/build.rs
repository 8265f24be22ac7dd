//! Gives the shared library its soname: `libbreakerbox.so.0`, the name a
//! program linked against it looks for at run time. It changes only with
//! the ABI's major version (see the header's ABI STABILITY section).

fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets CARGO_PKG_VERSION_MAJOR");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libbreakerbox.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
