//! The node's mode machines: one core [`VipMachine`] per service address,
//! with the role the address started in and its service port. The node's
//! loop feeds them inputs and polls their actions through this type; the
//! machines decide, this only finds the right one.

use std::net::Ipv4Addr;

use coral_core::{Action, Input, Instant, NodeView, VipMachine, VipStatus};

use crate::config::ServiceRole;
use crate::reintegration::node_view;

/// One service address's machine and what the node needs beside it.
#[derive(Debug)]
pub struct Slot {
    /// The address's mode machine.
    pub machine: VipMachine,
    /// The role the address started in here (a joined node's fronted
    /// addresses become `Primary` once the join completes).
    pub role: ServiceRole,
    /// The service port.
    pub port: u16,
}

/// Every service address's machine, in configuration order.
#[derive(Debug, Default)]
pub struct Machines {
    slots: Vec<Slot>,
    /// The status our heartbeats report (the machines', as last handed to
    /// the heartbeat thread).
    reported: Vec<VipStatus>,
}

impl FromIterator<Slot> for Machines {
    fn from_iter<I: IntoIterator<Item = Slot>>(iter: I) -> Self {
        Machines {
            slots: iter.into_iter().collect(),
            reported: Vec::new(),
        }
    }
}

impl Machines {
    /// Give `input` to the machine of `vip`, or to every machine (`None`).
    pub fn feed(&mut self, now: Instant, vip: Option<Ipv4Addr>, input: Input) {
        for s in &mut self.slots {
            if vip.is_none_or(|v| v == s.machine.vip()) {
                s.machine.handle(now, input);
            }
        }
    }

    /// The earliest deadline any machine handed out.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|s| s.machine.next_deadline())
            .min()
    }

    /// The first due action of any machine, in configuration order, with
    /// the index of the machine that handed it out.
    pub fn poll(&mut self, now: Instant) -> Option<(usize, Action)> {
        self.slots
            .iter_mut()
            .enumerate()
            .find_map(|(i, s)| s.machine.poll(now).map(|a| (i, a)))
    }

    /// Every machine's status.
    pub fn statuses(&self) -> Vec<VipStatus> {
        self.slots.iter().map(|s| s.machine.status()).collect()
    }

    /// What our heartbeats must report from now on, if it changed since
    /// the last call.
    pub fn status_changed(&mut self) -> Option<Vec<VipStatus>> {
        let st = self.statuses();
        if st == self.reported {
            return None;
        }
        self.reported = st.clone();
        Some(st)
    }

    /// The node as a join sees it (simplex for every address? which epoch?).
    pub fn view(&self) -> NodeView {
        node_view(
            self.slots
                .iter()
                .map(|s| (s.machine.mode().tag(), s.machine.epoch())),
        )
    }

    /// The mode of `vip`'s machine, as written in a `fenced` row (empty for
    /// an address with no machine).
    pub fn mode_name(&self, vip: Ipv4Addr) -> String {
        self.slots
            .iter()
            .find(|s| s.machine.vip() == vip)
            .map(|s| format!("{:?}", s.machine.mode()))
            .unwrap_or_default()
    }

    /// Machine `i` (an index [`Machines::poll`] returned).
    pub fn slot(&mut self, i: usize) -> &mut Slot {
        &mut self.slots[i]
    }
}
