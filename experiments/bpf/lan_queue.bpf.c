// SPDX-License-Identifier: GPL-2.0 OR MIT
//
// The testbed switch's heartbeat receive queue (docs/DESIGN.md 7,
// "Heartbeats get a receive queue of their own").
//
// A tc egress program on every switch port of the netns topology. Every
// LAN link has two queues each way, and each host's interface receives
// each queue in a NAPI kernel thread of its own: queue 1 carries the
// frames marked DSCP EF (the nodes' heartbeats), queue 0 everything else.
// A host under a CPU quota then receives its data in an ordinary thread
// inside the quota, and its heartbeats in a real-time thread that never
// waits behind that data.
//
// The program chooses the queue the way the kernel's transmit hash reads
// it for a forwarded frame: skb->queue_mapping holds the receive queue
// recorded plus one, and with no XPS map on a veth the transmit queue is
// that receive queue (skb_tx_hash); a veth hands a frame to the peer's
// receive queue of the same number. So EF frames get 2 (queue 1) and all
// others 1 (queue 0), whatever queue they came in on.
//
// Built by Debian's clang from experiments/build.rs; attached by
// experiments/src/conditions.rs.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

// DSCP EF (46) in the TOS byte.
#define TOS_EF (46 << 2)
#define DSCP_MASK 0xfc

// Queue numbers plus one, as skb_tx_hash reads a recorded receive queue.
#define QUEUE_DATA 1
#define QUEUE_HEARTBEAT 2

SEC("classifier")
int coral_lan_queue(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);

	skb->queue_mapping = QUEUE_DATA;
	if ((void *)(ip + 1) > end)
		return TC_ACT_OK;
	if (eth->h_proto == bpf_htons(ETH_P_IP) && (ip->tos & DSCP_MASK) == TOS_EF)
		skb->queue_mapping = QUEUE_HEARTBEAT;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
