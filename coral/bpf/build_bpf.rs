use std::path::PathBuf;
use std::process::Command;

// Shared by the build scripts of the crates that embed eBPF programs
// (`coral/build.rs`, `experiments/build.rs`, through `include!`): compiles
// `bpf/NAME.bpf.c` of the including crate with the system's clang into
// `OUT_DIR/NAME.bpf.o`. Debian's `clang` and `libbpf-dev` (for
// `bpf/bpf_helpers.h`) are installed by `scripts/install-deps.sh`.

/// Compile `bpf/{name}.bpf.c` into `OUT_DIR/{name}.bpf.o`; panics with
/// what to install when clang or the headers are missing.
fn build_bpf(name: &str) {
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
                "cannot run {clang:?} ({e}): the eBPF programs need clang and libbpf-dev; \
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
