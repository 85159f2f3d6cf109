// SPDX-License-Identifier: GPL-2.0 OR MIT
//
// The front's kernel fast path (docs/ARCHITECTURE.md, "The eBPF front").
//
// A tc ingress program on the backup's LAN interface. For an IPv4 frame to
// a fronted service address it
//   1. copies the whole frame into a BPF ring buffer (the record), and only
//      then
//   2. rewrites the source MAC to the front's own and the destination MAC to
//      the primary's and redirects the frame out of the same interface.
// A full ring means the frame is dropped and counted, never forwarded
// unrecorded: the client retransmits it.
//
// The program decides nothing user space could decide: the mode (forward,
// hold, hold-data, idle), the addresses, the MACs and the per-connection verdicts are
// all set by user space in maps. Every other frame (ARP, the log channel,
// heartbeats, anything not to a fronted address) passes to the kernel
// untouched.
//
// Built by Debian's clang from coral/build.rs; loaded by coral/src/ebpf_front.rs.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

// Keep in step with coral/src/ebpf_front.rs.
#define MODE_FORWARD 0
#define MODE_HOLD 1
#define MODE_IDLE 2
#define MODE_HOLD_DATA 3

#define VERDICT_RECORD_ONLY 1
#define VERDICT_DROP 2
#define VERDICT_WATCH 3

#define CFG_WAKEUP_PER_RECORD 1
#define CFG_REFUSE_NEW_CONNS 2
#define CFG_HAVE_VERDICTS 4
#define CFG_PASS_LOCAL 8

#define KIND_FORWARDED 0
#define KIND_HELD 1
#define KIND_RECORD_ONLY 2
#define KIND_WATCHED 3

enum counter {
	C_SEEN,          // IPv4 frames to a fronted address
	C_RECORDED,      // written to the ring
	C_FORWARDED,     // recorded, then redirected to the primary
	C_RING_FULL,     // dropped: no room in the ring (never forwarded)
	C_HELD,          // recorded and dropped in hold mode
	C_VERDICT_DROP,  // dropped by a verdict without a record
	C_RECORD_ONLY,   // recorded, not forwarded, by a verdict
	C_TOO_BIG,       // larger than the largest record: dropped
	C_REWRITE_FAIL,  // recorded, but the MAC rewrite failed: dropped
	C_WATCHED,       // idle mode: recorded, passed to the local stack
	C_SYN_REFUSED,   // new connection refused (table full)
	C_IDLE_PASS,     // idle mode: passed to the local stack unrecorded
	C_LOCAL_PASS,    // forward mode: a flow with a local socket (kept at a
	                 // hand-over), passed to the local stack unrecorded
	C_HOLD_ACK_PASS, // hold-data mode: a pure ACK of a flow with a local
	                 // socket, passed to the local stack unrecorded
	C_MAX,
};

struct config {
	__u8 own_mac[6];
	__u8 primary_mac[6];
	__u32 flags;
};

struct conn_key {
	__u32 client_ip;  // network byte order
	__u32 vip;        // network byte order
	__u16 client_port; // network byte order
	__u16 vip_port;    // network byte order
};

struct rec_hdr {
	__u32 len;  // frame length in bytes
	__u32 kind; // KIND_*
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} CORAL_CFG SEC(".maps");

// The mode in a map of its own: user space flips it with one 4-byte write.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} CORAL_MODE SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} CORAL_VIPS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct conn_key);
	__type(value, __u32);
} CORAL_VERDICTS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, C_MAX);
	__type(key, __u32);
	__type(value, __u64);
} CORAL_COUNTERS SEC(".maps");

// Program runs under way on each CPU: user space waits for zero after a
// mode change (quiesce). Changed with atomic adds, which are full barriers
// on x86-64: the increment is visible before the mode is read.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} CORAL_INFLIGHT SEC(".maps");

// Size set by user space before loading (a power of two, page multiple).
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} CORAL_RING SEC(".maps");

static __always_inline void count(__u32 c)
{
	__u64 *v = bpf_map_lookup_elem(&CORAL_COUNTERS, &c);
	if (v)
		*v += 1;
}

// Records come in a few fixed sizes: the ring's reserve call wants a size
// the verifier knows. The largest holds a 64 KB GSO frame with headers.
#define MAX_FRAME (65536 + 256)

#define TRY_BUCKET(B)                                                        \
	if (len <= (B)) {                                                    \
		struct rec_hdr *r = bpf_ringbuf_reserve(&CORAL_RING,         \
							sizeof(*r) + (B), 0);\
		if (!r)                                                      \
			return -1;                                           \
		r->len = len;                                                \
		r->kind = kind;                                              \
		if (bpf_skb_load_bytes(skb, 0, (void *)(r + 1), len) < 0) {  \
			bpf_ringbuf_discard(r, BPF_RB_NO_WAKEUP);            \
			return -2;                                           \
		}                                                            \
		bpf_ringbuf_submit(r, wake);                                 \
		return 0;                                                    \
	}

// Copy the whole frame into the ring. 0 = recorded; -1 = ring full;
// -2 = copy failed; -3 = too big.
static __noinline int record(struct __sk_buff *skb, __u32 kind, __u64 wake)
{
	__u32 len = skb->len;
	if (len < ETH_HLEN || len > MAX_FRAME)
		return -3;
	TRY_BUCKET(128)
	TRY_BUCKET(256)
	TRY_BUCKET(512)
	TRY_BUCKET(1024)
	TRY_BUCKET(1536)
	TRY_BUCKET(4096)
	TRY_BUCKET(8192)
	TRY_BUCKET(16384)
	TRY_BUCKET(32768)
	TRY_BUCKET(MAX_FRAME)
	return -3;
}

static __always_inline int record_counted(struct __sk_buff *skb, __u32 kind, __u64 wake)
{
	int r = record(skb, kind, wake);
	if (r == 0) {
		count(C_RECORDED);
		return 0;
	}
	count(r == -3 ? C_TOO_BIG : C_RING_FULL);
	return r;
}

// A frame of a TCP flow that has a socket on this node (not a listener):
// a connection this node kept when it handed the address's primary role
// over. Pure SYNs are never local: new connections go to the primary.
static __always_inline int local_flow(struct __sk_buff *skb, __u32 saddr, __u32 daddr, __u32 ihl)
{
	struct {
		__u16 sport;
		__u16 dport;
		__u32 seq;
		__u32 ack;
		__u8 off;
		__u8 flags;
	} __attribute__((packed)) t;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + ihl, &t, sizeof(t)) < 0)
		return 0;
	if ((t.flags & 0x12) == 0x02)
		return 0;
	struct bpf_sock_tuple tuple = {};
	tuple.ipv4.saddr = saddr;
	tuple.ipv4.daddr = daddr;
	tuple.ipv4.sport = t.sport;
	tuple.ipv4.dport = t.dport;
	struct bpf_sock *sk =
		bpf_skc_lookup_tcp(skb, &tuple, sizeof(tuple.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return 0;
	int local = sk->state != BPF_TCP_LISTEN;
	bpf_sk_release(sk);
	return local;
}

// A TCP segment that carries nothing but an acknowledgement (and window
// and options): no payload, no SYN, FIN or RST.
static __always_inline int pure_ack(struct __sk_buff *skb, __u32 ihl, __u32 tot_len)
{
	struct {
		__u8 skip[12];
		__u8 off;
		__u8 flags;
	} __attribute__((packed)) t;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + ihl, &t, sizeof(t)) < 0)
		return 0;
	if ((t.flags & 0x17) != 0x10)
		return 0;
	return tot_len == ihl + (__u32)(t.off >> 4) * 4;
}

static __always_inline int handle(struct __sk_buff *skb)
{
	struct {
		struct ethhdr eth;
		struct iphdr ip;
	} __attribute__((packed)) h;
	if (bpf_skb_load_bytes(skb, 0, &h, sizeof(h)) < 0)
		return TC_ACT_OK;
	if (h.eth.h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	__u32 dst = h.ip.daddr;
	if (!bpf_map_lookup_elem(&CORAL_VIPS, &dst))
		return TC_ACT_OK;

	__u32 zero = 0;
	__u32 *modep = bpf_map_lookup_elem(&CORAL_MODE, &zero);
	struct config *cfg = bpf_map_lookup_elem(&CORAL_CFG, &zero);
	if (!modep || !cfg)
		return TC_ACT_OK;
	__u32 mode = *modep;
	__u32 flags = cfg->flags;
	// Without a wake-up per record the consumer drains on its own
	// schedule (log entries, a timer); a ring a quarter full wakes it at
	// once, so a slow timer never lets the ring fill.
	__u64 wake = BPF_RB_NO_WAKEUP;
	if (flags & CFG_WAKEUP_PER_RECORD)
		wake = 0;
	else if (bpf_ringbuf_query(&CORAL_RING, BPF_RB_AVAIL_DATA) >=
		 bpf_ringbuf_query(&CORAL_RING, BPF_RB_RING_SIZE) / 4)
		wake = BPF_RB_FORCE_WAKEUP;
	count(C_SEEN);

	// The connection's verdict, when user space has set any.
	__u32 verdict = 0;
	if (h.ip.protocol == IPPROTO_TCP && (flags & (CFG_HAVE_VERDICTS | CFG_REFUSE_NEW_CONNS))) {
		__u32 ihl = (h.ip.ihl & 0xf) * 4;
		struct {
			__u16 sport;
			__u16 dport;
			__u32 seq;
			__u32 ack;
			__u8 off;
			__u8 flags;
		} __attribute__((packed)) t;
		if (ihl < 20 || bpf_skb_load_bytes(skb, ETH_HLEN + ihl, &t, sizeof(t)) < 0)
			return TC_ACT_SHOT;
		struct conn_key k = {
			.client_ip = h.ip.saddr,
			.vip = dst,
			.client_port = t.sport,
			.vip_port = t.dport,
		};
		__u32 *v = (flags & CFG_HAVE_VERDICTS) ? bpf_map_lookup_elem(&CORAL_VERDICTS, &k) : 0;
		if (v)
			verdict = *v;
		// SYN without ACK from an unknown connection while the table is full.
		if (!v && (flags & CFG_REFUSE_NEW_CONNS) && (t.flags & 0x12) == 0x02 &&
		    mode == MODE_FORWARD) {
			count(C_SYN_REFUSED);
			return TC_ACT_SHOT;
		}
	}

	if (mode == MODE_IDLE) {
		// The address is local now: the kernel handles its frames. Those of
		// connections caught mid-handshake are still recorded.
		if (verdict == VERDICT_WATCH) {
			if (record_counted(skb, KIND_WATCHED, wake) == 0)
				count(C_WATCHED);
		} else {
			count(C_IDLE_PASS);
		}
		return TC_ACT_OK;
	}
	if (verdict == VERDICT_DROP) {
		count(C_VERDICT_DROP);
		return TC_ACT_SHOT;
	}
	if (mode == MODE_HOLD_DATA && h.ip.protocol == IPPROTO_TCP) {
		// The lease and the address are in place (a takeover's step 4):
		// a bare ACK for a rebuilt socket goes to it now rather than
		// being held and re-injected. Data, SYN, FIN and RST are still
		// held, and so is everything of a flow without a socket (a
		// handshake's last ACK included: the table must see it).
		__u32 ihl = (h.ip.ihl & 0xf) * 4;
		if (ihl >= 20 && pure_ack(skb, ihl, bpf_ntohs(h.ip.tot_len)) &&
		    local_flow(skb, h.ip.saddr, dst, ihl)) {
			count(C_HOLD_ACK_PASS);
			return TC_ACT_OK;
		}
	}
	if (mode == MODE_HOLD || mode == MODE_HOLD_DATA) {
		if (record_counted(skb, KIND_HELD, wake) == 0)
			count(C_HELD);
		return TC_ACT_SHOT;
	}
	if ((flags & CFG_PASS_LOCAL) && h.ip.protocol == IPPROTO_TCP &&
	    local_flow(skb, h.ip.saddr, dst, (h.ip.ihl & 0xf) * 4)) {
		count(C_LOCAL_PASS);
		return TC_ACT_OK;
	}
	if (verdict == VERDICT_RECORD_ONLY) {
		if (record_counted(skb, KIND_RECORD_ONLY, wake) == 0)
			count(C_RECORD_ONLY);
		return TC_ACT_SHOT;
	}
	// Record first; only a recorded frame is forwarded.
	if (record_counted(skb, KIND_FORWARDED, wake) != 0)
		return TC_ACT_SHOT;
	__u8 macs[12];
	__builtin_memcpy(macs, cfg->primary_mac, 6);
	__builtin_memcpy(macs + 6, cfg->own_mac, 6);
	if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0) < 0) {
		count(C_REWRITE_FAIL);
		return TC_ACT_SHOT;
	}
	count(C_FORWARDED);
	return bpf_redirect(skb->ifindex, 0);
}

SEC("classifier")
int coral_front(struct __sk_buff *skb)
{
	__u32 zero = 0;
	__u64 *inflight = bpf_map_lookup_elem(&CORAL_INFLIGHT, &zero);
	if (!inflight)
		return TC_ACT_OK;
	__sync_fetch_and_add(inflight, 1);
	int rc = handle(skb);
	__sync_fetch_and_add(inflight, -1);
	return rc;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
