// Shared helpers for the codec targets (included with `include!`).
use coral_core::Channel;

const FUZZ_KEY: &[u8] = b"coral fuzz key, 32 bytes long!!!";

fn channel_of(b: u8) -> Channel {
    match b % 4 {
        0 => Channel::Log,
        1 => Channel::Heartbeat,
        2 => Channel::Witness,
        _ => Channel::Join,
    }
}
