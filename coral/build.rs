//! Builds the eBPF programs (`bpf/front.bpf.c`, the front, and
//! `bpf/adopt.bpf.c`, frames flooded for a dead front) with the system's
//! clang (Debian's `clang` package; `libbpf-dev` for `bpf/bpf_helpers.h`).
//! `scripts/install-deps.sh` (`make deps`) installs both. The object lands
//! in `OUT_DIR` and is embedded in the binary by `src/io/ebpf_front.rs` and
//! `src/io/adopt.rs`.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=CLANG");
    for name in ["front", "adopt"] {
        build(name);
    }
}

fn build(name: &str) {
    let src = format!("bpf/{name}.bpf.c");
    println!("cargo:rerun-if-changed={src}");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let out =
        PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join(format!("{name}.bpf.o"));

    // Debian keeps <asm/types.h> under the multiarch include directory,
    // which clang does not search when targeting BPF.
    let multiarch = Command::new(&clang)
        .arg("-print-multiarch")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {clang:?} ({e}): the eBPF front needs clang and libbpf-dev; \
                 run `make deps` (scripts/install-deps.sh) or set CLANG"
            )
        });
    let multiarch = String::from_utf8_lossy(&multiarch.stdout)
        .trim()
        .to_string();

    let mut cmd = Command::new(&clang);
    cmd.args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"]);
    if !multiarch.is_empty() {
        cmd.arg(format!("-I/usr/include/{multiarch}"));
    }
    cmd.args(["-c", &src, "-o"]).arg(&out);
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run {clang:?}: {e}"));
    if !status.success() {
        panic!(
            "{clang} failed on {src} ({status}); if bpf/bpf_helpers.h or linux/bpf.h is \
             missing, run `make deps` (scripts/install-deps.sh installs libbpf-dev and \
             linux-libc-dev)"
        );
    }
}
