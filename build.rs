//! Release links of the `ticketing` binary place the functions a start touches next to each other
//! (`link/ticketing.order`, made by `link/profile-startup.py`). Rust emits every function in a
//! section of its own, so the linker may lay them out in any order. In the default order the
//! start-up code is spread over the whole 22 MB code segment, and the kernel's readahead and
//! fault-around map the neighbouring pages of each one touched: the idle server held twice the
//! code it had run. Clustered, the `memory` benchmark's idle figure went from 17 to 14 MB.
//!
//! The list names mangled symbols, whose hashes change with the toolchain, dependency versions
//! and features. Names the binary does not have are skipped silently, so a stale list costs the
//! memory back and nothing else; the script reports how much of a list a binary still matches.

use std::path::Path;

const ORDER_FILE: &str = "link/ticketing.order";

fn main() {
    println!("cargo:rerun-if-changed={ORDER_FILE}");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=TICKETING_LINK_ORDER");

    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    // `--symbol-ordering-file` is an LLD option; rustc links this target with its own LLD.
    let lld_target = std::env::var("TARGET").is_ok_and(|t| t == "x86_64-unknown-linux-gnu");
    let wanted = std::env::var("TICKETING_LINK_ORDER").as_deref() != Ok("off");
    if !(release && lld_target && wanted) {
        return;
    }
    let Ok(dir) = std::env::var("CARGO_MANIFEST_DIR") else {
        return;
    };
    let list = Path::new(&dir).join(ORDER_FILE);
    if list.is_file() {
        println!(
            "cargo:rustc-link-arg-bin=ticketing=-Wl,--symbol-ordering-file={}",
            list.display()
        );
        println!("cargo:rustc-link-arg-bin=ticketing=-Wl,--no-warn-symbol-ordering");
    }
}
