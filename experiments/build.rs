//! Builds the testbed's eBPF program (`bpf/lan_queue.bpf.c`, the switch
//! ports' heartbeat receive queue) with the system's clang, as
//! `coral/build.rs` builds the node's; the object lands in `OUT_DIR` and is
//! embedded in coral-exp by `src/conditions.rs`.

fn main() {
    println!("cargo:rerun-if-env-changed=CLANG");
    println!("cargo:rerun-if-changed=../coral/bpf/build_bpf.rs");
    build_bpf("lan_queue");
}

include!("../coral/bpf/build_bpf.rs");
