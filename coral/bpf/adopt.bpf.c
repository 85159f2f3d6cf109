// SPDX-License-Identifier: GPL-2.0 OR MIT
//
// Adopting frames the switch floods for a dead front (docs/DESIGN.md 5,
// "Frames flooded for a dead front").
//
// A tc ingress program on a primary's LAN interface, ahead of the front's
// program (tcx, first). Clients address frames for a service address to the
// MAC of the node that fronts it. When that node's link or switch port goes
// down, the switch forgets the MAC and floods those frames to every port,
// ours included; the kernel drops them (not our MAC). This program looks
// only at IPv4 frames whose destination MAC is the peer's and whose
// destination address is one we serve as primary:
//   - before the grant (the address's value is ADOPT_HOLD) it copies the
//     frame into a ring and lets it go on (the kernel drops it): user space
//     keeps the copies of the last moments and injects them into the local
//     stack once the witness granted us the address;
//   - after the grant (ADOPT_TAKE, set by user space when the node goes
//     simplex) it marks the frame as ours (PACKET_HOST), so the local stack
//     takes it like a frame to our own MAC.
// Every other frame goes on to the next program untouched.
//
// Built by Debian's clang from coral/build.rs; loaded by coral/src/io/adopt.rs.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

// Keep in step with coral/src/io/adopt.rs.
#define ADOPT_HOLD 0
#define ADOPT_TAKE 1

enum counter {
	C_SEEN,      // frames to the peer's MAC and one of our addresses
	C_HELD,      // before the grant: copied to the ring
	C_RING_FULL, // before the grant: no room (or too big): not kept
	C_ADOPTED,   // after the grant: passed to the local stack as ours
	C_MAX,
};

struct config {
	__u8 peer_mac[6];
	__u8 pad[2];
};

struct rec_hdr {
	__u32 len;  // frame length in bytes
	__u32 pad;
	__u64 ns;   // bpf_ktime_get_ns() at the copy (CLOCK_MONOTONIC)
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} ADOPT_CFG SEC(".maps");

// Service address (network byte order) -> ADOPT_HOLD or ADOPT_TAKE.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} ADOPT_VIPS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, C_MAX);
	__type(key, __u32);
	__type(value, __u64);
} ADOPT_COUNTERS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} ADOPT_RING SEC(".maps");

static __always_inline void count(__u32 c)
{
	__u64 *v = bpf_map_lookup_elem(&ADOPT_COUNTERS, &c);
	if (v)
		*v += 1;
}

#define MAX_FRAME (65536 + 256)

#define TRY_BUCKET(B)                                                        \
	if (len <= (B)) {                                                    \
		struct rec_hdr *r = bpf_ringbuf_reserve(&ADOPT_RING,         \
							sizeof(*r) + (B), 0);\
		if (!r)                                                      \
			return -1;                                           \
		r->len = len;                                                \
		r->pad = 0;                                                  \
		r->ns = bpf_ktime_get_ns();                                  \
		if (bpf_skb_load_bytes(skb, 0, (void *)(r + 1), len) < 0) {  \
			bpf_ringbuf_discard(r, 0);                           \
			return -1;                                           \
		}                                                            \
		bpf_ringbuf_submit(r, 0);                                    \
		return 0;                                                    \
	}

static __noinline int keep(struct __sk_buff *skb)
{
	__u32 len = skb->len;
	if (len < ETH_HLEN || len > MAX_FRAME)
		return -1;
	TRY_BUCKET(128)
	TRY_BUCKET(512)
	TRY_BUCKET(1536)
	TRY_BUCKET(8192)
	TRY_BUCKET(MAX_FRAME)
	return -1;
}

SEC("classifier")
int coral_adopt(struct __sk_buff *skb)
{
	struct {
		struct ethhdr eth;
		struct iphdr ip;
	} __attribute__((packed)) h;
	if (bpf_skb_load_bytes(skb, 0, &h, sizeof(h)) < 0)
		return TC_ACT_UNSPEC;
	if (h.eth.h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_UNSPEC;
	__u32 zero = 0;
	struct config *cfg = bpf_map_lookup_elem(&ADOPT_CFG, &zero);
	if (!cfg)
		return TC_ACT_UNSPEC;
	// Byte by byte: clang turns a memcmp into a call BPF cannot link.
	__u8 diff = 0;
#pragma unroll
	for (int i = 0; i < 6; i++)
		diff |= h.eth.h_dest[i] ^ cfg->peer_mac[i];
	if (diff)
		return TC_ACT_UNSPEC;
	__u32 dst = h.ip.daddr;
	__u32 *state = bpf_map_lookup_elem(&ADOPT_VIPS, &dst);
	if (!state)
		return TC_ACT_UNSPEC;
	count(C_SEEN);
	if (*state == ADOPT_TAKE) {
		if (bpf_skb_change_type(skb, PACKET_HOST) < 0)
			return TC_ACT_UNSPEC;
		count(C_ADOPTED);
		return TC_ACT_OK;
	}
	count(keep(skb) == 0 ? C_HELD : C_RING_FULL);
	return TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
