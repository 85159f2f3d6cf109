//! # faultinject: the faults the experiments inject
//! (under construction)
