//! Builds the eBPF programs (`bpf/front.bpf.c`, the front, and
//! `bpf/adopt.bpf.c`, frames flooded for a dead front) with the system's
//! clang (Debian's `clang` package; `libbpf-dev` for `bpf/bpf_helpers.h`).
//! `scripts/install-deps.sh` (`make deps`) installs both. The object lands
//! in `OUT_DIR` and is embedded in the binary by `src/io/ebpf_front.rs` and
//! `src/io/adopt.rs`.

fn main() {
    println!("cargo:rerun-if-env-changed=CLANG");
    println!("cargo:rerun-if-changed=bpf/build_bpf.rs");
    for name in ["front", "adopt"] {
        build_bpf(name);
    }
}

include!("bpf/build_bpf.rs");
